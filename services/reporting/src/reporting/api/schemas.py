"""Query arguments and answers of the reports (arguments are strict: unknown ones are 422)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from lms_common.api import PageArgs, StrictSchema
from reporting.queries import STATUSES
from reporting.reports import GROUPS

ID = validate.Length(min=1, max=200)


class Window(Schema):
    """``from`` and ``to``: inclusive dates."""

    from_ = fields.Date(data_key="from", attribute="from", metadata={"description": "first day (inclusive)"})
    to = fields.Date(metadata={"description": "last day (inclusive)"})

    @validates_schema
    def ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("from") and data.get("to") and data["from"] > data["to"]:
            raise ValidationError("from must not be after to", "from")


class OrgArg(Schema):
    org_id = fields.String(validate=ID, metadata={"description": "one organization of the caller's scope"})


class CompletionArgs(PageArgs, Window, OrgArg):
    course_id = fields.String(validate=ID)
    program_id = fields.String(validate=ID)
    location_id = fields.String(validate=ID, metadata={"description": "this location and its descendants"})
    group_by = fields.String(load_default="course", validate=validate.OneOf(GROUPS))


class ComplianceArgs(PageArgs, OrgArg):
    location_id = fields.String(validate=ID, metadata={"description": "this location and its descendants"})
    status = fields.String(validate=validate.OneOf(STATUSES))


class AuditArgs(PageArgs, Window, OrgArg):
    pass


class ScopedArgs(StrictSchema, OrgArg):
    pass


def _text() -> fields.String:
    return fields.String(allow_none=True)


def _count() -> fields.Integer:
    return fields.Integer()


class Tally(Schema):
    enrolled = _count()
    not_started = _count()
    in_progress = _count()
    completed = _count()
    completion_rate = fields.Float(metadata={"description": "completed / enrolled, 0 to 1"})


class CompletionGroup(Tally):
    key = _text()
    title = _text()


class CompletionsOut(Schema):
    as_of = _text()
    group_by = fields.String()
    totals = fields.Nested(Tally)
    items = fields.List(fields.Nested(CompletionGroup))
    next_cursor = _text()


class Person(Schema):
    user_id = fields.String()
    name = _text()
    email = _text()
    location_id = _text()
    department = _text()


class ComplianceItem(Person):
    assignment_id = fields.String()
    course_id = _text()
    program_id = _text()
    title = fields.String()
    cycle = _count()
    due_on = fields.String()
    status = fields.String(metadata={"enum": list(STATUSES)})
    completed_at = _text()


class LocationCount(Schema):
    location_id = _text()
    name = _text()
    assignments = _count()
    overdue = _count()


class ComplianceOut(Schema):
    as_of = _text()
    overdue_by_location = fields.List(fields.Nested(LocationCount))
    items = fields.List(fields.Nested(ComplianceItem))
    next_cursor = _text()


class FunnelStep(Schema):
    position = _count()
    course_id = fields.String()
    title = _text()
    started = _count()
    completed = _count()


class ProgramOut(Schema):
    as_of = _text()
    program_id = fields.String()
    title = fields.String()
    member_count = _count()
    started = _count()
    completed = _count()
    funnel = fields.List(fields.Nested(FunnelStep))
    average_days_between_courses = fields.Float(allow_none=True)


class LearnerOut(Person):
    disabled = fields.Boolean()


class TranscriptCourse(Schema):
    enrollment_id = fields.String()
    course_id = fields.String()
    title = _text()
    status = fields.String()
    progress_percent = _count()
    enrolled_at = _text()
    completed_at = _text()
    score_percent = fields.Integer(allow_none=True)
    best_quiz_score = fields.Integer(allow_none=True)
    verification_code = _text()


class TranscriptProgram(Schema):
    program_id = fields.String()
    title = _text()
    member = fields.Boolean()
    added_at = _text()
    completed_at = _text()


class TranscriptAssignment(Schema):
    assignment_id = fields.String()
    course_id = _text()
    program_id = _text()
    title = fields.String()
    mandatory = fields.Boolean()
    cycle = _count()
    due_on = fields.String()
    status = fields.String()
    completed_at = _text()


class TranscriptCertificate(Schema):
    certificate_id = fields.String()
    course_id = _text()
    program_id = _text()
    title = fields.String()
    verification_code = fields.String()
    issued_at = fields.String()


class TranscriptOut(Schema):
    as_of = _text()
    user = fields.Nested(LearnerOut)
    courses = fields.List(fields.Nested(TranscriptCourse))
    programs = fields.List(fields.Nested(TranscriptProgram))
    assignments = fields.List(fields.Nested(TranscriptAssignment))
    certificates = fields.List(fields.Nested(TranscriptCertificate))


class AuditItem(Person):
    completed_at = fields.String()
    kind = fields.String(metadata={"enum": ["course", "program"]})
    course_id = _text()
    program_id = _text()
    title = fields.String()
    score_percent = fields.Integer(allow_none=True)
    certificate_id = _text()
    verification_code = _text()


class AuditOut(Schema):
    as_of = _text()
    items = fields.List(fields.Nested(AuditItem))
    next_cursor = _text()
