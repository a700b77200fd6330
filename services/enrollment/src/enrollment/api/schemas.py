"""Request and response schemas of enrollment's API."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from lms_common.api import PageArgs, StrictSchema, page_schema


class Uuid(fields.UUID):
    """A UUID checked as such and handed on as its canonical text."""

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> str:  # type: ignore[override]
        return str(super()._deserialize(value, attr, data, **kwargs))


UUID_LIST = fields.List(Uuid(), validate=validate.Length(max=10_000))


class GrantCreate(StrictSchema):
    product_id = Uuid(required=True)
    user_id = Uuid()
    organization_id = fields.String(validate=validate.Length(min=1, max=200))
    seats = fields.Integer(validate=validate.Range(min=1, max=100_000))

    @validates_schema
    def one_owner(self, data: dict[str, Any], **_: object) -> None:
        if ("user_id" in data) == ("organization_id" in data):
            raise ValidationError("give exactly one of user_id and organization_id", "_schema")


class GrantOut(Schema):
    id = fields.String()
    product_id = fields.String()
    user_id = fields.String(allow_none=True)
    organization_id = fields.String(allow_none=True)
    status = fields.String()
    seats = fields.Integer(allow_none=True)
    seats_used = fields.Integer()
    source = fields.String()
    created_at = fields.DateTime()


class GrantQuery(PageArgs):
    user_id = Uuid()
    product_id = Uuid()


class Seats(StrictSchema):
    emails = fields.List(fields.Email(), required=True, validate=validate.Length(min=1, max=10_000))


class SeatsOut(Schema):
    grant = fields.Nested(GrantOut)
    holders = fields.List(fields.Dict())


class MyCourse(Schema):
    course_id = fields.String()
    title = fields.String()
    enrollment_id = fields.String()
    progress_percent = fields.Integer()
    status = fields.String()
    sources = fields.List(fields.String())


class EnrollmentCreate(StrictSchema):
    user_id = Uuid(required=True)
    course_id = Uuid(required=True)


class EnrollmentOut(Schema):
    id = fields.String()
    user_id = fields.String()
    course_id = fields.String()
    progress_percent = fields.Integer()
    status = fields.String()
    enrolled_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)
    lessons = fields.List(fields.Dict())


class EnrollmentQuery(PageArgs):
    user_id = Uuid()
    course_id = Uuid()


class Members(StrictSchema):
    user_ids = fields.List(Uuid(), required=True, validate=validate.Length(min=1, max=10_000))


class CohortMembersOut(Schema):
    cohort_id = fields.String()
    added = fields.List(fields.String())
    user_ids = fields.List(fields.String())
    members = fields.Integer()


class ProgressQuery(StrictSchema):
    user_id = Uuid()


class AssignmentCreate(StrictSchema):
    user_ids = UUID_LIST
    location_id = Uuid()
    department = fields.String(validate=validate.Length(min=1, max=200))
    course_ids = fields.List(Uuid(), load_default=list, validate=validate.Length(max=500))
    program_ids = fields.List(Uuid(), load_default=list, validate=validate.Length(max=500))
    due_on = fields.Date(required=True)
    mandatory = fields.Boolean(load_default=True)

    @validates_schema
    def one_audience(self, data: dict[str, Any], **_: object) -> None:
        given = [key for key in ("user_ids", "location_id", "department") if key in data]
        if len(given) != 1:
            raise ValidationError("give exactly one of user_ids, location_id and department", "_schema")
        if not data["course_ids"] and not data["program_ids"]:
            raise ValidationError("give course_ids or program_ids", "_schema")


class AssignmentOut(Schema):
    id = fields.String()
    user_id = fields.String()
    course_id = fields.String(allow_none=True)
    program_id = fields.String(allow_none=True)
    title = fields.String()
    due_on = fields.Date()
    mandatory = fields.Boolean()
    cycle = fields.Integer()
    status = fields.String()
    completed_at = fields.DateTime(allow_none=True)


class AssignmentQuery(PageArgs):
    user_id = Uuid()
    status = fields.String(validate=validate.OneOf(["assigned", "in_progress", "completed", "overdue"]))


class AssignResult(Schema):
    count = fields.Integer()
    items = fields.List(fields.Nested(AssignmentOut))


class JobOut(Schema):
    id = fields.String()
    status = fields.String()
    kind = fields.String()
    result = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    attempts = fields.Integer()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class Attempt(StrictSchema):
    answers = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), required=True)


class AttemptOut(Schema):
    id = fields.String()
    score_percent = fields.Integer()
    passed = fields.Boolean()
    attempt = fields.Integer()


class CertificateOut(Schema):
    id = fields.String()
    user_id = fields.String()
    course_id = fields.String(allow_none=True)
    program_id = fields.String(allow_none=True)
    title = fields.String()
    verification_code = fields.String()
    issued_at = fields.DateTime()


class CertificateQuery(PageArgs):
    user_id = Uuid()


class Verification(Schema):
    valid = fields.Boolean()
    learner_name = fields.String()
    title = fields.String()
    issued_at = fields.DateTime()


GrantPage = page_schema(GrantOut, "GrantPage")
MyCoursePage = page_schema(MyCourse, "MyCoursePage")
EnrollmentPage = page_schema(EnrollmentOut, "EnrollmentPage")
AssignmentPage = page_schema(AssignmentOut, "AssignmentPage")
CertificatePage = page_schema(CertificateOut, "CertificatePage")
