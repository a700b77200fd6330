"""GET /v1/reports/...: completions, compliance, program analytics, transcripts, audit.

Every report answers JSON, or CSV with ``Accept: text/csv`` (the whole report, streamed; the
JSON lists are paged with ``limit`` and ``cursor``). Each carries ``as_of``, the time of the
newest event it reflects (also the ``X-As-Of`` header).
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from lms_common.api import page, unit_of_work
from lms_common.auth import current_principal, require
from reporting import reports
from reporting.api import schemas as s
from reporting.export import as_of_header, csv_chunks, csv_response, csv_stream, csv_table_chunks, wants_csv
from reporting.queries import Reading, paginate_groups, paginate_rows
from reporting.scope import LEARNER, REPORTS, report_scope, transcript_scope

blp = Blueprint("reports", __name__, url_prefix="/v1/reports", description="Reports built from the suite's events")

CSV_DOC = {"description": "the same report as CSV with Accept: text/csv, streamed whole"}


def _reading(session: Any, args: dict[str, Any]) -> Reading:
    reading = Reading.open(session, report_scope(current_principal(), args.get("org_id")))
    return reports.located(reading, args.get("location_id"))


def _listed(items: list[Any], cursor: str | None, extra: dict[str, Any]) -> Any:
    body, status, headers = page(items, cursor)
    return {**extra, **body}, status, {**headers, **as_of_header(extra.get("as_of"))}


def _stream(name: str, columns: list[str], reading: Reading, *, query: Any, keys: Any, shape: Any) -> Any:
    return csv_response(name, columns, reading.as_of(), lambda session: reports.rows_of(session, query, keys, shape))


@blp.route("/completions")
@require(REPORTS)
@blp.arguments(s.CompletionArgs, location="query")
@blp.response(200, s.CompletionsOut)
@blp.alt_response(404, description="the location is not in the caller's scope")
@blp.doc(responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
def completions(args: dict[str, Any]) -> Any:
    """Completions: enrolled, in progress, completed and rate, by course, program, location or month

    `from`/`to` select the enrollments made in that window; `group_by` picks the breakdown.
    """
    with unit_of_work() as session:
        reading = _reading(session, args)
        groups, as_of = reports.completion_groups(reading, args), reading.as_of()
        if wants_csv():
            response = csv_response("completions", reports.COMPLETION_COLUMNS, as_of, lambda _session: groups)
            return response
        items, cursor = paginate_groups(groups, args["limit"], args.get("cursor"))
        totals = reports.completion_totals(reading, args)
        return _listed(items, cursor, {"as_of": as_of, "group_by": args["group_by"], "totals": totals})


@blp.route("/compliance")
@require(REPORTS)
@blp.arguments(s.ComplianceArgs, location="query")
@blp.response(200, s.ComplianceOut)
@blp.alt_response(404, description="the location is not in the caller's scope")
@blp.doc(responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
def compliance(args: dict[str, Any]) -> Any:
    """Compliance: each mandatory assignment per user with due date and status; overdue per location"""
    with unit_of_work() as session:
        reading = _reading(session, args)
        query = reports.compliance_query(reading, args.get("status"))
        if wants_csv():
            return _stream(
                "compliance",
                reports.COMPLIANCE_COLUMNS,
                reading,
                query=query,
                keys=reports.COMPLIANCE_KEYS,
                shape=reports.compliance_row,
            )
        rows, cursor = paginate_rows(session, query, reports.COMPLIANCE_KEYS, args["limit"], args.get("cursor"))
        extra = {"as_of": reading.as_of(), "overdue_by_location": reports.overdue_by_location(reading)}
        return _listed([reports.compliance_row(row) for row in rows], cursor, extra)


@blp.route("/programs/<program_id>")
@require(REPORTS)
@blp.arguments(s.ScopedArgs, location="query")
@blp.response(200, s.ProgramOut)
@blp.alt_response(404, description="no such program in the caller's scope")
@blp.doc(responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
def program(args: dict[str, Any], program_id: str) -> Any:
    """Program analytics: members against learners who started, completions per course, pace

    CSV answers the funnel, one row per course.
    """
    with unit_of_work() as session:
        reading = _reading(session, args)
        body = {"as_of": reading.as_of(), **reports.program_report(reading, program_id)}
        if wants_csv():
            return csv_response("program", reports.FUNNEL_COLUMNS, body["as_of"], lambda _session: body["funnel"])
        return body, 200, as_of_header(body["as_of"])


@blp.route("/learners/<user_id>/transcript")
@require(REPORTS, LEARNER)
@blp.response(200, s.TranscriptOut)
@blp.alt_response(404, description="no such learner in the caller's scope")
@blp.doc(responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
def transcript(user_id: str) -> Any:
    """A learner's transcript: courses, programs, assignments and certificates

    Learners read their own; admins those of their scope. CSV answers the courses.
    """
    with unit_of_work() as session:
        reading = Reading.open(session, transcript_scope(current_principal(), user_id))
        body = {"as_of": reading.as_of(), **reports.transcript(reading, user_id)}
        if wants_csv():
            return csv_response(
                "transcript", reports.TRANSCRIPT_COLUMNS, body["as_of"], lambda _session: body["courses"]
            )
        return body, 200, as_of_header(body["as_of"])


@blp.route("/audit")
@require(REPORTS)
@blp.arguments(s.AuditArgs, location="query")
@blp.response(200, s.AuditOut)
@blp.doc(responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
def audit(args: dict[str, Any]) -> Any:
    """Audit: who completed which course or program and when, with score and certificate code"""
    with unit_of_work() as session:
        reading = _reading(session, args)
        query = reports.audit_query(reading, args)
        if wants_csv():
            columns = reports.AUDIT_COLUMNS
            return csv_stream(
                "audit",
                reading.as_of(),
                lambda session: csv_table_chunks(columns, reports.audit_csv_batches(session, query)),
            )
        rows, cursor = paginate_rows(session, query, reports.AUDIT_KEYS, args["limit"], args.get("cursor"))
        return _listed([reports.audit_row(row) for row in rows], cursor, {"as_of": reading.as_of()})


__all__ = ["blp", "csv_chunks"]
