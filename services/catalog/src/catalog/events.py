"""The events catalog adds to its outbox, built from the current state of an aggregate.

Each change bumps the aggregate's ``version`` first, so the event carries the new version;
the bump and the event are written in the caller's transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import PUBLISHED, Cohort, Course, Lesson, Module, Product, Program, Quiz
from lms_common import outbox
from lms_common.contracts import catalog as contract
from lms_common.db import utcnow
from lms_common.envelope import Event, EventType

SOURCE = "/catalog"


def bump(aggregate: Course | Product | Program | Quiz | Cohort) -> None:
    """A new version of the aggregate: consumers drop any event with a lower one."""
    aggregate.version += 1
    aggregate.updated_at = utcnow()


def _add(session: Session, org: str, event_type: EventType, data: dict[str, Any], subject: str) -> None:
    event = Event(type=event_type.name, data=data, orgid=org, source=SOURCE, subject=subject)
    outbox.add(session, event)


def published_lessons(session: Session, course_id: str) -> list[tuple[str, str | None]]:
    """(lesson id, quiz id or None) of the course's published lessons, in learning order."""
    query = (
        select(Lesson.id, Quiz.id)
        .join(Module, Module.id == Lesson.module_id)
        .outerjoin(Quiz, Quiz.lesson_id == Lesson.id)
        .where(Lesson.course_id == course_id, Lesson.status == PUBLISHED)
        .order_by(Module.position, Module.id, Lesson.position, Lesson.id)
    )
    return [(lesson_id, quiz_id) for lesson_id, quiz_id in session.execute(query)]


def course_payload(session: Session, course: Course) -> dict[str, Any]:
    lessons = published_lessons(session, course.id)
    return {
        "course_id": course.id,
        "version": course.version,
        "title": course.title,
        "status": course.status,
        "lesson_ids": [lesson_id for lesson_id, _ in lessons],
        "quiz_ids": [quiz_id for _, quiz_id in lessons if quiz_id],
        "derived_from": course.derived_from,
        "created_by": course.created_by,
    }


def course_event(session: Session, course: Course, event_type: EventType = contract.COURSE_UPDATED) -> None:
    session.flush()
    _add(session, course.org_id, event_type, course_payload(session, course), f"courses/{course.id}")


def course_changed(session: Session, course: Course, event_type: EventType = contract.COURSE_UPDATED) -> None:
    """The course, its modules, lessons or quizzes changed: a new version and its event."""
    bump(course)
    course_event(session, course, event_type)


def product_changed(session: Session, product: Product, event_type: EventType = contract.PRODUCT_UPDATED) -> None:
    data = {
        "product_id": product.id,
        "version": product.version,
        "title": product.title,
        "status": product.status,
        "course_ids": [link.course_id for link in product.links],
    }
    _add(session, product.org_id, event_type, data, f"products/{product.id}")


def program_changed(session: Session, program: Program, event_type: EventType = contract.PROGRAM_UPDATED) -> None:
    data = {
        "program_id": program.id,
        "version": program.version,
        "title": program.title,
        "published": program.published,
        "enforce_course_order": program.enforce_course_order,
        "course_ids": [link.course_id for link in program.links],
    }
    _add(session, program.org_id, event_type, data, f"programs/{program.id}")


def quiz_changed(session: Session, quiz: Quiz) -> None:
    """QuizChanged with the answer key: enrollment grades attempts on the server."""
    questions = [
        {"question_id": q.id, "kind": q.kind, "choices": list(q.choices or []), "answer": q.answer}
        for q in quiz.questions
    ]
    data = {
        "quiz_id": quiz.id,
        "version": quiz.version,
        "lesson_id": quiz.lesson_id,
        "course_id": quiz.course_id,
        "pass_percent": quiz.pass_percent,
        "max_attempts": quiz.max_attempts,
        "questions": questions,
    }
    _add(session, quiz.org_id, contract.QUIZ_CHANGED, data, f"quizzes/{quiz.id}")


def cohort_changed(session: Session, cohort: Cohort) -> None:
    data = {
        "cohort_id": cohort.id,
        "version": cohort.version,
        "title": cohort.title,
        "course_ids": [link.course_id for link in cohort.links],
        "starts_on": cohort.starts_on.isoformat(),
        "ends_on": cohort.ends_on.isoformat(),
        "seats": cohort.seats,
        "instructor_ids": [i.user_id for i in cohort.instructors],
    }
    _add(session, cohort.org_id, contract.COHORT_UPDATED, data, f"cohorts/{cohort.id}")
