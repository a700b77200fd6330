"""Request and response bodies of the catalog API (requests are strict: unknown fields are 422)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from catalog.models import LESSON_KINDS, QUESTION_KINDS
from lms_common.api import PageArgs, StrictSchema, page_schema

MAX_IDS = validate.Length(max=500)
URL = validate.And(validate.Length(max=2000), validate.URL(schemes={"http", "https"}))


class UUIDText(fields.UUID):
    """A UUID, handed to the use cases as its canonical text (ids are stored as text)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:  # type: ignore[override]
        return str(super()._deserialize(value, attr, data, **kwargs))


def _ids(required: bool = False) -> fields.List[Any]:
    return fields.List(UUIDText(), required=required, validate=MAX_IDS)


def _title() -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=200))


def _position() -> fields.Integer:
    return fields.Integer(load_default=None, validate=validate.Range(min=0))


def _user_ids(required: bool = False) -> fields.List[Any]:
    return fields.List(fields.String(validate=validate.Length(min=1, max=200)), required=required, validate=MAX_IDS)


class Search(PageArgs):
    q = fields.String(validate=validate.Length(min=1, max=200), metadata={"description": "title contains (any case)"})


# --- courses, modules, lessons ----------------------------------------------------------------


class AlsoProduct(StrictSchema):
    title = fields.String(validate=validate.Length(min=1, max=200))


class CourseCreate(StrictSchema):
    title = _title()
    description = fields.String(load_default="", validate=validate.Length(max=20_000))
    also_product = fields.Nested(AlsoProduct, metadata={"description": "also create a product holding the course"})


class CourseUpdate(StrictSchema):
    title = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=20_000))


class CourseDuplicate(StrictSchema):
    title = fields.String(validate=validate.Length(min=1, max=200))


class CourseQuery(Search):
    status = fields.String(validate=validate.OneOf(["draft", "published"]))


class ModuleOrder(StrictSchema):
    module_ids = _ids(required=True)


class LessonOrder(StrictSchema):
    lesson_ids = _ids(required=True)


class ModuleCreate(StrictSchema):
    title = _title()
    position = _position()


class ModuleUpdate(StrictSchema):
    title = fields.String(validate=validate.Length(min=1, max=200))
    position = fields.Integer(validate=validate.Range(min=0))


class LessonCreate(StrictSchema):
    title = _title()
    kind = fields.String(required=True, validate=validate.OneOf(LESSON_KINDS))
    body = fields.String(load_default=None, validate=validate.Length(max=1_000_000))
    url = fields.String(load_default=None, validate=URL)
    position = _position()


class LessonUpdate(StrictSchema):
    title = fields.String(validate=validate.Length(min=1, max=200))
    body = fields.String(allow_none=True, validate=validate.Length(max=1_000_000))
    url = fields.String(allow_none=True, validate=URL)
    position = fields.Integer(validate=validate.Range(min=0))


class ScormUpload(Schema):
    package = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class CourseOut(Schema):
    id = fields.String()
    title = fields.String()
    description = fields.String()
    status = fields.String()
    created_by = fields.String()
    derived_from = fields.String(allow_none=True)
    version = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    published_at = fields.DateTime(allow_none=True)
    product_id = fields.String(metadata={"description": "the product made with also_product"})


class ScormOut(Schema):
    scorm_version = fields.String()
    launch_path = fields.String()
    title = fields.String()
    file_count = fields.Integer()


class LessonOut(Schema):
    id = fields.String()
    module_id = fields.String()
    course_id = fields.String()
    title = fields.String()
    kind = fields.String()
    status = fields.String()
    body = fields.String(allow_none=True)
    url = fields.String(allow_none=True)
    position = fields.Integer()
    quiz_id = fields.String(allow_none=True)
    scorm = fields.Nested(ScormOut, allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    published_at = fields.DateTime(allow_none=True)


class ModuleOut(Schema):
    id = fields.String()
    course_id = fields.String()
    title = fields.String()
    position = fields.Integer()
    lessons = fields.List(fields.Nested(LessonOut))


class OutlineOut(CourseOut):
    modules = fields.List(fields.Nested(ModuleOut))


CoursePage = page_schema(CourseOut, "CoursePage")


# --- products and programs --------------------------------------------------------------------


class ProductCreate(StrictSchema):
    title = _title()
    course_ids = _ids(required=True)


class ProductUpdate(StrictSchema):
    title = fields.String(validate=validate.Length(min=1, max=200))


class CourseIds(StrictSchema):
    course_ids = _ids(required=True)


class ProductQuery(Search):
    status = fields.String(validate=validate.OneOf(["inactive", "active"]))


class ProductOut(Schema):
    id = fields.String()
    title = fields.String()
    status = fields.String()
    course_ids = fields.List(fields.String())
    created_by = fields.String()
    version = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


ProductPage = page_schema(ProductOut, "ProductPage")


class ProgramCreate(StrictSchema):
    title = _title()
    enforce_course_order = fields.Boolean(load_default=False)
    course_ids = _ids(required=True)


class ProgramUpdate(StrictSchema):
    title = fields.String(validate=validate.Length(min=1, max=200))
    enforce_course_order = fields.Boolean()
    course_ids = _ids()


class ProgramQuery(Search):
    published = fields.Boolean()


class ProgramOut(Schema):
    id = fields.String()
    title = fields.String()
    enforce_course_order = fields.Boolean()
    published = fields.Boolean()
    course_ids = fields.List(fields.String())
    course_count = fields.Integer()
    created_by = fields.String()
    version = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


ProgramPage = page_schema(ProgramOut, "ProgramPage")


# --- quizzes ----------------------------------------------------------------------------------


class Answer(fields.Field):  # type: ignore[type-arg]
    """true/false, a text, or a list of texts, depending on the question's kind."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, str) and len(value) <= 1000):
            return value
        if isinstance(value, list) and len(value) <= 100 and all(isinstance(v, str) and len(v) <= 1000 for v in value):
            return value
        raise ValidationError("must be true/false, a text, or a list of texts")


class QuestionIn(StrictSchema):
    prompt = fields.String(required=True, validate=validate.Length(min=1, max=5000))
    kind = fields.String(required=True, validate=validate.OneOf(QUESTION_KINDS))
    choices = fields.List(fields.String(validate=validate.Length(min=1, max=1000)), validate=validate.Length(max=100))
    answer = Answer(required=True)


QUESTIONS = validate.Length(min=1, max=500)
PASS_PERCENT = validate.Range(min=0, max=100)


class QuizCreate(StrictSchema):
    lesson_id = UUIDText(required=True)
    pass_percent = fields.Integer(required=True, validate=PASS_PERCENT)
    max_attempts = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
    questions = fields.List(fields.Nested(QuestionIn), required=True, validate=QUESTIONS)


class QuizUpdate(StrictSchema):
    pass_percent = fields.Integer(validate=PASS_PERCENT)
    max_attempts = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    questions = fields.List(fields.Nested(QuestionIn), validate=QUESTIONS)


class QuestionOut(Schema):
    id = fields.String()
    prompt = fields.String()
    kind = fields.String()
    choices = fields.List(fields.String())
    answer = fields.Raw(metadata={"description": "only for those who may edit the quiz"})


class QuizOut(Schema):
    id = fields.String()
    lesson_id = fields.String()
    course_id = fields.String()
    pass_percent = fields.Integer()
    max_attempts = fields.Integer(allow_none=True)
    version = fields.Integer()
    questions = fields.List(fields.Nested(QuestionOut))


# --- cohorts ----------------------------------------------------------------------------------


class CohortCreate(StrictSchema):
    title = _title()
    course_ids = _ids(required=True)
    starts_on = fields.Date(required=True)
    ends_on = fields.Date(required=True)
    seats = fields.Integer(required=True, validate=validate.Range(min=1, max=1_000_000))
    instructor_ids = _user_ids(required=True)


class CohortUpdate(StrictSchema):
    title = fields.String(validate=validate.Length(min=1, max=200))
    course_ids = _ids()
    starts_on = fields.Date()
    ends_on = fields.Date()
    seats = fields.Integer(validate=validate.Range(min=1, max=1_000_000))
    instructor_ids = _user_ids()


class CohortQuery(Search):
    course_id = UUIDText()


class CohortOut(Schema):
    id = fields.String()
    title = fields.String()
    course_ids = fields.List(fields.String())
    starts_on = fields.Date()
    ends_on = fields.Date()
    seats = fields.Integer()
    instructor_ids = fields.List(fields.String())
    created_by = fields.String()
    version = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


CohortPage = page_schema(CohortOut, "CohortPage")
