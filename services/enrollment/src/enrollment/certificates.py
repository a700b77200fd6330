"""Certificates: issued on course and program completion, verifiable by a public code."""

from __future__ import annotations

import io
import secrets

from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfgen import canvas
from sqlalchemy import select
from sqlalchemy.orm import Session

from enrollment.events import publish, stamp
from enrollment.models import Certificate, User
from lms_common.contracts import enrollment as contract
from lms_common.errors import NotFound

# No 0/O or 1/I: codes are read aloud and typed by hand.
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def learner_name(session: Session, user_id: str) -> str:
    user = session.get(User, user_id)
    return (user.name if user else "") or user_id


def issue(
    session: Session, org: str, user_id: str, title: str, *, course_id: str | None = None, program_id: str | None = None
) -> Certificate:
    """A certificate with a fresh verification code, and CertificateIssued."""
    certificate = Certificate(
        org_id=org,
        user_id=user_id,
        course_id=course_id,
        program_id=program_id,
        title=title,
        learner_name=learner_name(session, user_id)[:200],
        verification_code=new_code(),
    )
    session.add(certificate)
    session.flush()
    payload = {
        "certificate_id": certificate.id,
        "org_id": org,
        "user_id": user_id,
        "course_id": course_id,
        "program_id": program_id,
        "title": title,
        "learner_name": certificate.learner_name,
        "verification_code": certificate.verification_code,
        "issued_at": stamp(certificate.issued_at),
    }
    publish(session, contract.CERTIFICATE_ISSUED, org, payload)
    return certificate


def by_code(session: Session, code: str) -> Certificate:
    certificate = session.scalar(select(Certificate).where(Certificate.verification_code == code.upper()))
    if certificate is None:
        raise NotFound("no certificate has this code", code="certificate_not_found")
    return certificate


def pdf(certificate: Certificate) -> bytes:
    """The certificate as a one-page PDF: learner, title, date and verification code."""
    buffer = io.BytesIO()
    width, height = landscape(A4)
    page = canvas.Canvas(buffer, pagesize=(width, height))
    page.setTitle(f"Certificate {certificate.verification_code}")
    page.setFont("Helvetica-Bold", 32)
    page.drawCentredString(width / 2, height - 150, "Certificate of Completion")
    page.setFont("Helvetica", 18)
    page.drawCentredString(width / 2, height - 220, "This certifies that")
    page.setFont("Helvetica-Bold", 26)
    page.drawCentredString(width / 2, height - 265, certificate.learner_name)
    page.setFont("Helvetica", 18)
    page.drawCentredString(width / 2, height - 310, "has completed")
    page.setFont("Helvetica-Bold", 22)
    page.drawCentredString(width / 2, height - 350, certificate.title)
    page.setFont("Helvetica", 14)
    page.drawCentredString(width / 2, height - 410, f"on {certificate.issued_at:%Y-%m-%d}")
    page.drawCentredString(width / 2, 80, f"Verification code: {certificate.verification_code}")
    page.showPage()
    page.save()
    return buffer.getvalue()
