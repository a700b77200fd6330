"""Events catalog publishes: the state enrollment and reporting replicate (event-carried state).

Every payload carries the whole state of its aggregate and a ``version`` that grows by one with
each change of that aggregate: a consumer keeps the highest version it has seen and drops an
event whose version is not higher, so an older event delivered late never overwrites a newer
state.
"""

from __future__ import annotations

from typing import Any

from lms_common.contracts.schema import DATE, ID, UUID, array, obj
from lms_common.envelope import EventType

VERSION = {"type": "integer", "minimum": 1}
TITLE = {"type": "string", "minLength": 1, "maxLength": 200}
IDS = array(UUID)

COURSE = obj(
    {
        "course_id": UUID,
        "version": VERSION,
        "title": TITLE,
        "status": {"enum": ["draft", "published"]},
        "lesson_ids": IDS,
        "quiz_ids": IDS,
        "derived_from": {"anyOf": [UUID, {"type": "null"}]},
        "created_by": ID,
    }
)
PRODUCT = obj(
    {
        "product_id": UUID,
        "version": VERSION,
        "title": TITLE,
        "status": {"enum": ["inactive", "active"]},
        "course_ids": IDS,
    }
)
PROGRAM = obj(
    {
        "program_id": UUID,
        "version": VERSION,
        "title": TITLE,
        "published": {"type": "boolean"},
        "enforce_course_order": {"type": "boolean"},
        "course_ids": IDS,
    }
)
ANSWER: dict[str, Any] = {
    "anyOf": [
        {"type": "boolean"},
        {"type": "string", "maxLength": 1000},
        array({"type": "string", "maxLength": 1000}, max_items=100),
    ]
}
QUESTION = obj(
    {
        "question_id": UUID,
        "kind": {"enum": ["single_choice", "multiple_choice", "true_false", "short_text"]},
        "choices": array({"type": "string", "maxLength": 1000}, max_items=100),
        "answer": ANSWER,
    }
)
QUIZ = obj(
    {
        "quiz_id": UUID,
        "version": VERSION,
        "lesson_id": UUID,
        "course_id": UUID,
        "pass_percent": {"type": "integer", "minimum": 0, "maximum": 100},
        "max_attempts": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
        "questions": array(QUESTION, max_items=500),
    }
)
COHORT = obj(
    {
        "cohort_id": UUID,
        "version": VERSION,
        "title": TITLE,
        "course_ids": IDS,
        "starts_on": DATE,
        "ends_on": DATE,
        "seats": {"type": "integer", "minimum": 1},
        "instructor_ids": array(ID),
    }
)


def _course(name: str, summary: str) -> EventType:
    return EventType(domain="catalog", name=name, schema=COURSE, summary=summary)


def _product(name: str, summary: str) -> EventType:
    return EventType(domain="catalog", name=name, schema=PRODUCT, summary=summary)


COURSE_CREATED = _course("CourseCreated", "A course was created (as a draft, or duplicated from another).")
COURSE_UPDATED = _course(
    "CourseUpdated", "A course, its modules, its lessons or its quizzes changed: the new ordered lesson ids."
)
COURSE_PUBLISHED = _course("CoursePublished", "A course was published: learners may take its published lessons.")
COURSE_UNPUBLISHED = _course("CourseUnpublished", "A course was unpublished: it is a draft again.")
PRODUCT_UPDATED = _product("ProductUpdated", "A product was created or its title or ordered courses changed.")
PRODUCT_ACTIVATED = _product("ProductActivated", "A product was activated: its grants open its courses.")
PRODUCT_DEACTIVATED = _product("ProductDeactivated", "A product was deactivated: its courses close to grants.")
PROGRAM_PUBLISHED = EventType(
    domain="catalog", name="ProgramPublished", schema=PROGRAM, summary="A program was published."
)
PROGRAM_UPDATED = EventType(
    domain="catalog",
    name="ProgramUpdated",
    schema=PROGRAM,
    summary="A program was created, changed or unpublished: its ordered courses and enforce flag.",
)
QUIZ_CHANGED = EventType(
    domain="catalog",
    name="QuizChanged",
    schema=QUIZ,
    summary="A quiz was created or changed, with its answer key (enrollment grades on the server).",
)
COHORT_UPDATED = EventType(
    domain="catalog", name="CohortUpdated", schema=COHORT, summary="A cohort was created or changed."
)

EVENTS: list[EventType] = [
    COURSE_CREATED,
    COURSE_UPDATED,
    COURSE_PUBLISHED,
    COURSE_UNPUBLISHED,
    PRODUCT_UPDATED,
    PRODUCT_ACTIVATED,
    PRODUCT_DEACTIVATED,
    PROGRAM_PUBLISHED,
    PROGRAM_UPDATED,
    QUIZ_CHANGED,
    COHORT_UPDATED,
]
