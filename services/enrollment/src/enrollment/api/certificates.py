"""Certificates: listing, reading (JSON or PDF) and the public verification."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask_smorest import Blueprint
from sqlalchemy import select

from enrollment import certificates, views
from enrollment.access import LEARN, READ, actor, visible_user
from enrollment.api import schemas as s
from enrollment.models import Certificate
from lms_common.api import page, paginate, unit_of_work
from lms_common.auth import require
from lms_common.errors import NotFound

blp = Blueprint("certificates", __name__, url_prefix="/v1", description="Certificates")


@blp.route("/certificates", methods=["GET"])
@require(LEARN, READ)
@blp.arguments(s.CertificateQuery, location="query")
@blp.response(200, s.CertificatePage)
def list_certificates(args: dict[str, Any]) -> Any:
    """List certificates (learners: their own); filter `user_id`"""
    who = actor()
    user_id = args.get("user_id") if who.may(READ) else who.user
    with unit_of_work() as session:
        query = select(Certificate).where(Certificate.org_id.in_(who.orgs()))
        if user_id:
            visible_user(session, who, user_id)
            query = query.where(Certificate.user_id == user_id)
        keys = [Certificate.issued_at, Certificate.id]
        rows, cursor = paginate(session, query, keys, args["limit"], args.get("cursor"))
        return page([views.certificate(row) for row in rows], cursor)


@blp.route("/certificates/<certificate_id>", methods=["GET"])
@require(LEARN, READ)
@blp.response(200, s.CertificateOut)
@blp.alt_response(200, description="the PDF, with Accept: application/pdf", content_type="application/pdf")
def get_certificate(certificate_id: str) -> Any:
    """Read a certificate; the PDF with `Accept: application/pdf`"""
    who = actor()
    with unit_of_work() as session:
        row = session.get(Certificate, certificate_id)
        if row is None or row.org_id not in who.orgs():
            raise NotFound("no such certificate", code="certificate_not_found")
        visible_user(session, who, row.user_id)
        if request.accept_mimetypes.best_match(["application/json", "application/pdf"]) == "application/pdf":
            name = f"certificate-{row.verification_code}.pdf"
            headers = {"Content-Disposition": f'inline; filename="{name}"'}
            return Response(certificates.pdf(row), mimetype="application/pdf", headers=headers)
        return views.certificate(row)


@blp.route("/certificates/verify/<code>", methods=["GET"])
@blp.response(200, s.Verification)
def verify_certificate(code: str) -> Any:
    """Verify a certificate by its code (public: no token)"""
    with unit_of_work() as session:
        row = certificates.by_code(session, code)
        return {"valid": True, "learner_name": row.learner_name, "title": row.title, "issued_at": row.issued_at}
