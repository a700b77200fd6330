"""What the API answers: plain dicts built from the models inside the unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from catalog.models import PUBLISHED, Cohort, Course, Lesson, Module, Product, Program, Quiz


def course(c: Course, product_id: str | None = None) -> dict[str, Any]:
    view = {
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "status": c.status,
        "created_by": c.created_by,
        "derived_from": c.derived_from,
        "version": c.version,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "published_at": c.published_at,
    }
    if product_id:
        view["product_id"] = product_id
    return view


def course_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """:func:`course` as ``CourseOut`` dumps it, from a row of ``services.COURSE_COLUMNS``."""
    id_, title, description, status, created_by, derived_from, version, created_at, updated_at, published_at = row
    return {
        "id": id_,
        "title": title,
        "description": description,
        "status": status,
        "created_by": created_by,
        "derived_from": derived_from,
        "version": version,
        "created_at": _iso(created_at),
        "updated_at": _iso(updated_at),
        "published_at": _iso(published_at),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def lesson(x: Lesson) -> dict[str, Any]:
    package = x.scorm
    scorm = None
    if package is not None:
        scorm = {
            "scorm_version": package.scorm_version,
            "launch_path": package.launch_path,
            "title": package.title,
            "file_count": package.file_count,
        }
    return {
        "id": x.id,
        "module_id": x.module_id,
        "course_id": x.course_id,
        "title": x.title,
        "kind": x.kind,
        "status": x.status,
        "body": x.body,
        "url": x.url,
        "position": x.position,
        "quiz_id": x.quiz.id if x.quiz is not None else None,
        "scorm": scorm,
        "created_at": x.created_at,
        "updated_at": x.updated_at,
        "published_at": x.published_at,
    }


def module(m: Module, drafts: bool = True) -> dict[str, Any]:
    """A module with its lessons; without ``drafts`` only the published ones (a learner's view)."""
    lessons = [lesson(x) for x in m.lessons if drafts or x.status == PUBLISHED]
    return {"id": m.id, "course_id": m.course_id, "title": m.title, "position": m.position, "lessons": lessons}


def outline(c: Course, drafts: bool) -> dict[str, Any]:
    return {**course(c), "modules": [module(m, drafts) for m in c.modules]}


def product(p: Product) -> dict[str, Any]:
    return {
        "id": p.id,
        "title": p.title,
        "status": p.status,
        "course_ids": [link.course_id for link in p.links],
        "created_by": p.created_by,
        "version": p.version,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


def program(p: Program) -> dict[str, Any]:
    course_ids = [link.course_id for link in p.links]
    return {
        "id": p.id,
        "title": p.title,
        "enforce_course_order": p.enforce_course_order,
        "published": p.published,
        "course_ids": course_ids,
        "course_count": len(course_ids),
        "created_by": p.created_by,
        "version": p.version,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


def quiz(q: Quiz, answers: bool) -> dict[str, Any]:
    """A quiz; the answer key only for those who may edit it (learners never see it)."""
    questions = []
    for question in q.questions:
        item = {"id": question.id, "prompt": question.prompt, "kind": question.kind, "choices": question.choices}
        if answers:
            item["answer"] = question.answer
        questions.append(item)
    return {
        "id": q.id,
        "lesson_id": q.lesson_id,
        "course_id": q.course_id,
        "pass_percent": q.pass_percent,
        "max_attempts": q.max_attempts,
        "version": q.version,
        "questions": questions,
    }


def cohort(c: Cohort) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "course_ids": [link.course_id for link in c.links],
        "starts_on": c.starts_on,
        "ends_on": c.ends_on,
        "seats": c.seats,
        "instructor_ids": [i.user_id for i in c.instructors],
        "created_by": c.created_by,
        "version": c.version,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }
