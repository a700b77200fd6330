"""The catalog's use cases, one function each: check the rules, change the models, add events.

Every function takes the unit of work's session and the :class:`~catalog.access.Actor`; every
lookup is filtered by the actor's organization (another tenant's id answers 404). A refused
step raises a problem with a ``code`` and a detail saying exactly why. Aggregates are loaded
``FOR UPDATE`` before a change so their event versions never collide.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Engine, Select, bindparam, or_, select, true
from sqlalchemy.orm import Session

from catalog import events, scorm
from catalog.access import Actor
from catalog.models import (
    ACTIVE,
    DRAFT,
    INACTIVE,
    PUBLISHED,
    Cohort,
    CohortCourse,
    CohortInstructor,
    Course,
    Instructor,
    Lesson,
    Module,
    Product,
    ProductCourse,
    Program,
    ProgramCourse,
    Question,
    Quiz,
    ScormPackage,
)
from lms_common.api import keyset_page, keyset_params, keyset_statement
from lms_common.contracts import catalog as contract
from lms_common.db import ReadStatement, raw_reads, utcnow
from lms_common.errors import Conflict, NotFound, Unprocessable

T = TypeVar("T")
L = TypeVar("L", ProductCourse, ProgramCourse, CohortCourse)
A = TypeVar("A", Course, Product, Program)

# What makes each aggregate public: learners see only these; the rest only its editors.
PUBLIC: dict[type[Any], Callable[[Any], bool]] = {
    Course: lambda c: c.status == PUBLISHED,
    Product: lambda p: p.status == ACTIVE,
    Program: lambda p: p.published,
}


# --- lookups ----------------------------------------------------------------------------------


def _get(session: Session, model: type[T], object_id: str, actor: Actor, *, lock: bool = False) -> T:
    row = session.get(model, object_id, with_for_update=lock or None)
    if row is None or getattr(row, "org_id", None) != actor.org:
        raise NotFound(f"no {model.__name__.lower()} {object_id}", code="not_found")
    return row


def _hidden(model: type[Any], object_id: str) -> NotFound:
    return NotFound(f"no {model.__name__.lower()} {object_id}", code="not_found")


def _visible(session: Session, actor: Actor, model: type[A], object_id: str, *, lock: bool = False) -> A:
    """An aggregate the actor may see: public ones, and unpublished ones only to their editors."""
    row = _get(session, model, object_id, actor, lock=lock)
    if not actor.sees(row.created_by, PUBLIC[model](row)):
        raise _hidden(model, object_id)
    return row


def _editable(session: Session, actor: Actor, model: type[A], object_id: str) -> A:
    """An aggregate the actor may change, locked for the rest of the transaction."""
    row = _visible(session, actor, model, object_id, lock=True)
    actor.check_edit(row.created_by, model.__name__.lower())
    return row


def get_course(session: Session, actor: Actor, course_id: str) -> Course:
    """A course the actor may see (drafts only to those who may edit them)."""
    return _visible(session, actor, Course, course_id)


def editable_course(session: Session, actor: Actor, course_id: str) -> Course:
    return _editable(session, actor, Course, course_id)


def get_module(session: Session, actor: Actor, module_id: str) -> Module:
    module = _get(session, Module, module_id, actor)
    get_course(session, actor, module.course_id)
    return module


def get_lesson(session: Session, actor: Actor, lesson_id: str) -> Lesson:
    """A lesson the actor may see: learners only published lessons of published courses."""
    lesson = _get(session, Lesson, lesson_id, actor)
    course = get_course(session, actor, lesson.course_id)
    if not actor.sees(course.created_by, lesson.status == PUBLISHED):
        raise _hidden(Lesson, lesson_id)
    return lesson


def _editable_module(session: Session, actor: Actor, module_id: str) -> tuple[Module, Course]:
    module = _get(session, Module, module_id, actor)
    return module, editable_course(session, actor, module.course_id)


def _editable_lesson(session: Session, actor: Actor, lesson_id: str) -> tuple[Lesson, Course]:
    lesson = _get(session, Lesson, lesson_id, actor)
    return lesson, editable_course(session, actor, lesson.course_id)


def _visible_courses(session: Session, actor: Actor, course_ids: Sequence[str]) -> list[Course]:
    """The courses named in a request body, in order; 422 naming those unknown to the actor."""
    duplicates = sorted({c for c in course_ids if list(course_ids).count(c) > 1})
    if duplicates:
        raise Unprocessable(f"course_ids lists {', '.join(duplicates)} more than once", code="duplicate_courses")
    found = {
        c.id: c for c in session.scalars(select(Course).where(Course.org_id == actor.org, Course.id.in_(course_ids)))
    }
    unknown = [
        c for c in course_ids if c not in found or not actor.sees(found[c].created_by, found[c].status == PUBLISHED)
    ]
    if unknown:
        raise Unprocessable(
            f"no such courses: {', '.join(unknown)}", code="unknown_courses", errors={"course_ids": unknown}
        )
    return [found[c] for c in course_ids]


def _names(courses: Sequence[Course]) -> str:
    return ", ".join(f"'{c.title}' ({c.id})" for c in courses)


# --- ordering ---------------------------------------------------------------------------------


def _insert_at(items: list[T], item: T, position: int | None) -> list[T]:
    """The siblings with ``item`` at ``position`` (the end when absent or past it), renumbered."""
    ordered = list(items)
    ordered.insert(len(ordered) if position is None else min(position, len(ordered)), item)
    for index, sibling in enumerate(ordered):
        sibling.position = index  # type: ignore[attr-defined]
    return ordered


def _reorder(items: Sequence[T], ids: Sequence[str], what: str) -> list[T]:
    """The items in the order of ``ids``, which must name each of them exactly once."""
    by_id = {item.id: item for item in items}  # type: ignore[attr-defined]
    if len(ids) != len(set(ids)) or set(ids) != set(by_id):
        raise Unprocessable(
            f"{what}_ids must list each {what} of its parent exactly once (expected {len(by_id)} ids)",
            code="order_mismatch",
        )
    ordered = [by_id[i] for i in ids]
    for index, item in enumerate(ordered):
        item.position = index  # type: ignore[attr-defined]
    return ordered


def _relink(current: Sequence[L], course_ids: Sequence[str], make: Callable[[str], L]) -> list[L]:
    """Course links in the new order, keeping existing rows (their keys stay unique)."""
    existing = {link.course_id: link for link in current}
    links = [existing.get(course_id) or make(course_id) for course_id in course_ids]
    for index, link in enumerate(links):
        link.position = index
    return links


# --- courses ----------------------------------------------------------------------------------


def create_course(
    session: Session, actor: Actor, title: str, description: str = "", also_product: dict[str, Any] | None = None
) -> tuple[Course, Product | None]:
    """A draft course, and with ``also_product`` a product holding it, in one transaction."""
    course = Course(org_id=actor.org, title=title, description=description, created_by=actor.user, status=DRAFT)
    session.add(course)
    events.course_event(session, course, contract.COURSE_CREATED)
    product = None
    if also_product is not None:
        product = _new_product(session, actor, also_product.get("title") or title, [course.id])
    return course, product


def update_course(session: Session, actor: Actor, course_id: str, changes: dict[str, Any]) -> Course:
    course = editable_course(session, actor, course_id)
    for name in ("title", "description"):
        if name in changes:
            setattr(course, name, changes[name])
    events.course_changed(session, course)
    return course


def publish_course(session: Session, actor: Actor, course_id: str) -> Course:
    """Publish a course; it needs at least one published lesson. Publishing twice is a no-op."""
    course = editable_course(session, actor, course_id)
    if course.status == PUBLISHED:
        return course
    if not events.published_lessons(session, course.id):
        raise Conflict(
            f"course '{course.title}' has no published lesson: publish at least one lesson first",
            code="course_has_no_published_lesson",
        )
    course.status, course.published_at = PUBLISHED, utcnow()
    events.course_changed(session, course, contract.COURSE_PUBLISHED)
    return course


def unpublish_course(session: Session, actor: Actor, course_id: str) -> Course:
    """Back to draft, unless an active product or a published program still holds the course."""
    course = editable_course(session, actor, course_id)
    if course.status == DRAFT:
        return course
    _refuse_if_held(session, course)
    course.status, course.published_at = DRAFT, None
    events.course_changed(session, course, contract.COURSE_UNPUBLISHED)
    return course


def _refuse_if_held(session: Session, course: Course) -> None:
    products = session.scalars(
        select(Product).join(ProductCourse).where(ProductCourse.course_id == course.id, Product.status == ACTIVE)
    ).all()
    if products:
        names = ", ".join(f"'{p.title}' ({p.id})" for p in products)
        raise Conflict(
            f"course '{course.title}' is in the active products {names}: deactivate them before unpublishing it",
            code="course_in_active_product",
            product_ids=[p.id for p in products],
        )
    programs = session.scalars(
        select(Program).join(ProgramCourse).where(ProgramCourse.course_id == course.id, Program.published.is_(True))
    ).all()
    if programs:
        names = ", ".join(f"'{p.title}' ({p.id})" for p in programs)
        raise Conflict(
            f"course '{course.title}' is in the published programs {names}: unpublish them first",
            code="course_in_published_program",
            program_ids=[p.id for p in programs],
        )


def _course_filter(scope: str) -> ColumnElement[bool]:
    if scope == MANAGER:
        return true()
    if scope == AUTHOR:
        return or_(Course.status == PUBLISHED, Course.created_by == bindparam("user"))
    return Course.status == PUBLISHED


def _title_like(column: Any, q: str) -> ColumnElement[bool]:
    return column.ilike(_like_pattern(q), escape="\\")  # type: ignore[no-any-return]


def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# The course list is the catalog's busiest read: its statement is built and compiled once per
# shape, and each request only binds its values (see ReadStatement).
COURSE_COLUMNS = (
    Course.id, Course.title, Course.description, Course.status, Course.created_by, Course.derived_from,
    Course.version, Course.created_at, Course.updated_at, Course.published_at,
)  # fmt: skip
COURSE_KEYS = (Course.created_at, Course.id)
COURSE_KEY_POSITIONS = (7, 0)
MANAGER, AUTHOR, LEARNER = "manager", "author", "learner"


def course_page(engine: Engine, actor: Actor, args: Mapping[str, Any]) -> tuple[list[tuple[Any, ...]], str | None]:
    """One page of the courses the actor may see (rows of ``COURSE_COLUMNS``) in creation
    order, filtered by ``status`` and title (``q``), and the next page's cursor."""
    status, q, limit, cursor = args.get("status"), args.get("q"), args["limit"], args.get("cursor")
    scope = MANAGER if actor.manager else AUTHOR if actor.author else LEARNER
    statement = _course_list(scope, bool(status), bool(q), bool(cursor))
    params = {"org": actor.org, "user": actor.user, "status": status, "q": _like_pattern(q) if q else None}
    with raw_reads(engine) as reads:
        rows = statement.rows(reads, {**params, **keyset_params(COURSE_KEYS, limit, cursor)})
    return keyset_page(rows, limit, COURSE_KEY_POSITIONS)


@functools.cache
def _course_list(scope: str, status: bool, q: bool, after: bool) -> ReadStatement:
    query = select(*COURSE_COLUMNS).where(Course.org_id == bindparam("org"), _course_filter(scope))
    if status:
        query = query.where(Course.status == bindparam("status"))
    if q:
        query = query.where(Course.title.ilike(bindparam("q"), escape="\\"))
    return ReadStatement(keyset_statement(query, COURSE_KEYS, after=after))


def _copy_title(title: str) -> str:
    """``<title> (copy)``, shortening the title so that it still fits its 200 characters."""
    suffix = " (copy)"
    return f"{title[: 200 - len(suffix)]}{suffix}"


def duplicate_course(session: Session, actor: Actor, course_id: str, title: str | None = None) -> Course:
    """A deep copy as a new draft (modules, lessons, quizzes, SCORM packages), ``derived_from`` it.

    The original stays as it is, so enrollments and certificates keep pointing at it.
    """
    original = get_course(session, actor, course_id)
    copy = Course(
        org_id=actor.org,
        title=title or _copy_title(original.title),
        description=original.description,
        created_by=actor.user,
        status=DRAFT,
        derived_from=original.id,
    )
    session.add(copy)
    session.flush()
    quizzes = [quiz for module in original.modules for quiz in _copy_module(session, module, copy)]
    events.course_event(session, copy, contract.COURSE_CREATED)
    for quiz in quizzes:
        events.quiz_changed(session, quiz)
    return copy


def _copy_module(session: Session, module: Module, course: Course) -> list[Quiz]:
    new = Module(org_id=course.org_id, course_id=course.id, title=module.title, position=module.position)
    session.add(new)
    session.flush()
    quizzes = []
    for lesson in module.lessons:
        copy = Lesson(
            org_id=course.org_id,
            module_id=new.id,
            course_id=course.id,
            title=lesson.title,
            kind=lesson.kind,
            status=lesson.status,
            body=lesson.body,
            url=lesson.url,
            position=lesson.position,
            published_at=lesson.published_at,
        )
        session.add(copy)
        session.flush()
        if lesson.scorm is not None:
            _copy_scorm(session, lesson, copy)
        if lesson.quiz is not None:
            quizzes.append(_copy_quiz(session, lesson.quiz, copy))
    return quizzes


def _copy_scorm(session: Session, lesson: Lesson, copy: Lesson) -> None:
    package = lesson.scorm
    assert package is not None
    fields = {
        name: getattr(package, name)
        for name in (
            "scorm_version",
            "launch_path",
            "title",
            "file_count",
            "uncompressed_bytes",
            "sha256",
            "storage_path",
            "uploaded_by",
            "uploaded_at",
        )
    }
    session.add(ScormPackage(org_id=copy.org_id, lesson_id=copy.id, **fields))


def _copy_quiz(session: Session, quiz: Quiz, lesson: Lesson) -> Quiz:
    copy = Quiz(
        org_id=lesson.org_id,
        lesson_id=lesson.id,
        course_id=lesson.course_id,
        pass_percent=quiz.pass_percent,
        max_attempts=quiz.max_attempts,
    )
    copy.questions = [
        Question(position=q.position, prompt=q.prompt, kind=q.kind, choices=list(q.choices), answer=q.answer)
        for q in quiz.questions
    ]
    session.add(copy)
    session.flush()
    return copy


# --- modules and lessons ----------------------------------------------------------------------


def add_module(session: Session, actor: Actor, course_id: str, title: str, position: int | None = None) -> Module:
    course = editable_course(session, actor, course_id)
    module = Module(org_id=actor.org, course_id=course.id, title=title)
    course.modules = _insert_at(course.modules, module, position)
    events.course_changed(session, course)
    return module


def update_module(session: Session, actor: Actor, module_id: str, changes: dict[str, Any]) -> Module:
    module, course = _editable_module(session, actor, module_id)
    if "title" in changes:
        module.title = changes["title"]
    if changes.get("position") is not None:
        siblings = [m for m in course.modules if m.id != module.id]
        course.modules = _insert_at(siblings, module, changes["position"])
    events.course_changed(session, course)
    return module


def reorder_modules(session: Session, actor: Actor, course_id: str, module_ids: Sequence[str]) -> Course:
    """Put every module of the course at the position of its id in ``module_ids``, atomically."""
    course = editable_course(session, actor, course_id)
    course.modules = _reorder(course.modules, module_ids, "module")
    events.course_changed(session, course)
    return course


LESSON_FIELDS = ("title", "body", "url")


def add_lesson(session: Session, actor: Actor, module_id: str, fields: dict[str, Any]) -> Lesson:
    """A draft lesson of one kind (text, video, pdf, link, quiz, scorm) in a module."""
    module, course = _editable_module(session, actor, module_id)
    lesson = Lesson(
        org_id=actor.org,
        course_id=course.id,
        kind=fields["kind"],
        status=DRAFT,
        **{name: fields.get(name) for name in LESSON_FIELDS},
    )
    module.lessons = _insert_at(module.lessons, lesson, fields.get("position"))
    events.course_changed(session, course)
    return lesson


def update_lesson(session: Session, actor: Actor, lesson_id: str, changes: dict[str, Any]) -> Lesson:
    lesson, course = _editable_lesson(session, actor, lesson_id)
    for name in LESSON_FIELDS:
        if name in changes:
            setattr(lesson, name, changes[name])
    if lesson.status == PUBLISHED:
        _check_complete(lesson)
    if changes.get("position") is not None:
        module = lesson.module
        module.lessons = _insert_at([x for x in module.lessons if x.id != lesson.id], lesson, changes["position"])
    lesson.updated_at = utcnow()
    events.course_changed(session, course)
    return lesson


def reorder_lessons(session: Session, actor: Actor, module_id: str, lesson_ids: Sequence[str]) -> Module:
    module, course = _editable_module(session, actor, module_id)
    module.lessons = _reorder(module.lessons, lesson_ids, "lesson")
    events.course_changed(session, course)
    return module


def _missing_content(lesson: Lesson) -> str | None:
    if lesson.kind == "text" and not (lesson.body or "").strip():
        return "a text lesson needs a body"
    if lesson.kind in ("video", "pdf", "link") and not lesson.url:
        return f"a {lesson.kind} lesson needs a url"
    if lesson.kind == "quiz" and (lesson.quiz is None or not lesson.quiz.questions):
        return "a quiz lesson needs a quiz with questions (POST /v1/quizzes)"
    if lesson.kind == "scorm" and lesson.scorm is None:
        return "a scorm lesson needs an uploaded SCORM package (POST /v1/lessons/{id}/scorm)"
    return None


def _check_complete(lesson: Lesson) -> None:
    missing = _missing_content(lesson)
    if missing:
        raise Conflict(f"lesson '{lesson.title}' cannot be published: {missing}", code="lesson_incomplete")


def publish_lesson(session: Session, actor: Actor, lesson_id: str) -> Lesson:
    """Publish one lesson once its content is there; publishing twice is a no-op."""
    lesson, course = _editable_lesson(session, actor, lesson_id)
    if lesson.status == PUBLISHED:
        return lesson
    _check_complete(lesson)
    lesson.status, lesson.published_at = PUBLISHED, utcnow()
    events.course_changed(session, course)
    return lesson


def unpublish_lesson(session: Session, actor: Actor, lesson_id: str) -> Lesson:
    """Back to draft, unless it is the last published lesson of a published course."""
    lesson, course = _editable_lesson(session, actor, lesson_id)
    if lesson.status == DRAFT:
        return lesson
    if course.status == PUBLISHED and len(events.published_lessons(session, course.id)) == 1:
        raise Conflict(
            f"lesson '{lesson.title}' is the last published lesson of the published course '{course.title}':"
            " unpublish the course first",
            code="last_published_lesson",
        )
    lesson.status, lesson.published_at = DRAFT, None
    events.course_changed(session, course)
    return lesson


def upload_scorm(
    session: Session, actor: Actor, lesson_id: str, data: bytes, storage: Path, *, limits: scorm.Limits | None = None
) -> Lesson:
    """Validate a SCORM zip for a scorm lesson, keep it and record its launch file (replacing any)."""
    lesson, course = _editable_lesson(session, actor, lesson_id)
    if lesson.kind != "scorm":
        raise Conflict(
            f"lesson '{lesson.title}' is a {lesson.kind} lesson, not a scorm lesson", code="lesson_not_scorm"
        )
    package = scorm.inspect(data, limits or scorm.Limits())
    digest = hashlib.sha256(data).hexdigest()
    path = storage / "scorm" / f"{digest}.zip"  # content-addressed: duplicates and copies share it
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if lesson.scorm is not None:
        session.delete(lesson.scorm)
        session.flush()
    lesson.scorm = ScormPackage(
        org_id=actor.org, sha256=digest, storage_path=str(path), uploaded_by=actor.user, **package.__dict__
    )
    lesson.updated_at = utcnow()
    events.course_changed(session, course)
    return lesson


# --- products ---------------------------------------------------------------------------------


def _new_product(session: Session, actor: Actor, title: str, course_ids: Sequence[str]) -> Product:
    product = Product(org_id=actor.org, title=title, created_by=actor.user, status=INACTIVE)
    product.links = [ProductCourse(course_id=c, position=i) for i, c in enumerate(course_ids)]
    session.add(product)
    session.flush()
    events.product_changed(session, product)
    return product


def create_product(session: Session, actor: Actor, title: str, course_ids: Sequence[str]) -> Product:
    """An inactive product holding these courses in this order."""
    _visible_courses(session, actor, course_ids)
    return _new_product(session, actor, title, course_ids)


def get_product(session: Session, actor: Actor, product_id: str) -> Product:
    return _visible(session, actor, Product, product_id)


def _editable_product(session: Session, actor: Actor, product_id: str) -> Product:
    return _editable(session, actor, Product, product_id)


def _refuse_unpublished(courses: Sequence[Course], product: Product) -> None:
    unpublished = [c for c in courses if c.status != PUBLISHED]
    if unpublished:
        raise Conflict(
            f"product '{product.title}' needs every course published; not published: {_names(unpublished)}",
            code="product_courses_unpublished",
            course_ids=[c.id for c in unpublished],
        )


def update_product(session: Session, actor: Actor, product_id: str, changes: dict[str, Any]) -> Product:
    product = _editable_product(session, actor, product_id)
    if "title" in changes:
        product.title = changes["title"]
    events.bump(product)
    events.product_changed(session, product)
    return product


def set_product_courses(session: Session, actor: Actor, product_id: str, course_ids: Sequence[str]) -> Product:
    """Replace and order the product's courses; an active product takes published courses only."""
    product = _editable_product(session, actor, product_id)
    courses = _visible_courses(session, actor, course_ids)
    if product.status == ACTIVE:
        if not courses:
            raise Conflict("an active product needs at least one course: deactivate it first", code="product_empty")
        _refuse_unpublished(courses, product)
    product.links = _relink(product.links, course_ids, lambda c: ProductCourse(course_id=c))
    events.bump(product)
    events.product_changed(session, product)
    return product


def activate_product(session: Session, actor: Actor, product_id: str) -> Product:
    """Activate once every course in it is published (409 naming those that are not)."""
    product = _editable_product(session, actor, product_id)
    if product.status == ACTIVE:
        return product
    if not product.links:
        raise Conflict(f"product '{product.title}' has no course: add one first", code="product_empty")
    courses = [session.get_one(Course, link.course_id) for link in product.links]
    _refuse_unpublished(courses, product)
    product.status = ACTIVE
    events.bump(product)
    events.product_changed(session, product, contract.PRODUCT_ACTIVATED)
    return product


def deactivate_product(session: Session, actor: Actor, product_id: str) -> Product:
    product = _editable_product(session, actor, product_id)
    if product.status == INACTIVE:
        return product
    product.status = INACTIVE
    events.bump(product)
    events.product_changed(session, product, contract.PRODUCT_DEACTIVATED)
    return product


def product_query(actor: Actor, status: str | None = None, q: str | None = None) -> Select[Product]:
    query = select(Product).where(Product.org_id == actor.org)
    if not actor.manager:
        mine = Product.created_by == actor.user if actor.author else Product.id.is_(None)
        query = query.where(or_(Product.status == ACTIVE, mine))
    if status:
        query = query.where(Product.status == status)
    if q:
        query = query.where(_title_like(Product.title, q))
    return query


# --- programs ---------------------------------------------------------------------------------


def _check_program_title(session: Session, actor: Actor, title: str, program_id: str | None = None) -> None:
    clash = session.scalar(
        select(Program.id).where(Program.org_id == actor.org, Program.title == title, Program.id != (program_id or ""))
    )
    if clash:
        raise Conflict(f"a program titled '{title}' already exists in this organization", code="program_title_taken")


def create_program(
    session: Session, actor: Actor, title: str, course_ids: Sequence[str], enforce_course_order: bool = False
) -> Program:
    """An unpublished program of ordered courses; its title is unique in the organization."""
    _check_program_title(session, actor, title)
    _visible_courses(session, actor, course_ids)
    program = Program(
        org_id=actor.org, title=title, enforce_course_order=enforce_course_order, created_by=actor.user, published=False
    )
    program.links = [ProgramCourse(course_id=c, position=i) for i, c in enumerate(course_ids)]
    session.add(program)
    session.flush()
    events.program_changed(session, program)
    return program


def get_program(session: Session, actor: Actor, program_id: str) -> Program:
    return _visible(session, actor, Program, program_id)


def _editable_program(session: Session, actor: Actor, program_id: str) -> Program:
    return _editable(session, actor, Program, program_id)


def _refuse_unpublished_in_program(program: Program, courses: Sequence[Course]) -> None:
    if not courses:
        raise Conflict(f"program '{program.title}' has no course: add one first", code="program_empty")
    unpublished = [c for c in courses if c.status != PUBLISHED]
    if unpublished:
        raise Conflict(
            f"program '{program.title}' needs every course published; not published: {_names(unpublished)}",
            code="program_courses_unpublished",
            course_ids=[c.id for c in unpublished],
        )


def update_program(session: Session, actor: Actor, program_id: str, changes: dict[str, Any]) -> Program:
    program = _editable_program(session, actor, program_id)
    if "title" in changes:
        _check_program_title(session, actor, changes["title"], program.id)
        program.title = changes["title"]
    if "enforce_course_order" in changes:
        program.enforce_course_order = changes["enforce_course_order"]
    if "course_ids" in changes:
        courses = _visible_courses(session, actor, changes["course_ids"])
        if program.published:
            _refuse_unpublished_in_program(program, courses)
        program.links = _relink(program.links, changes["course_ids"], lambda c: ProgramCourse(course_id=c))
    events.bump(program)
    events.program_changed(session, program)
    return program


def publish_program(session: Session, actor: Actor, program_id: str) -> Program:
    """Publish once it has courses and all of them are published; twice is a no-op."""
    program = _editable_program(session, actor, program_id)
    if program.published:
        return program
    _refuse_unpublished_in_program(program, [session.get_one(Course, link.course_id) for link in program.links])
    program.published = True
    events.bump(program)
    events.program_changed(session, program, contract.PROGRAM_PUBLISHED)
    return program


def unpublish_program(session: Session, actor: Actor, program_id: str) -> Program:
    program = _editable_program(session, actor, program_id)
    if not program.published:
        return program
    program.published = False
    events.bump(program)
    events.program_changed(session, program)
    return program


def program_query(actor: Actor, published: bool | None = None, q: str | None = None) -> Select[Program]:
    query = select(Program).where(Program.org_id == actor.org)
    if not actor.manager:
        mine = Program.created_by == actor.user if actor.author else Program.id.is_(None)
        query = query.where(or_(Program.published.is_(True), mine))
    if published is not None:
        query = query.where(Program.published.is_(published))
    if q:
        query = query.where(_title_like(Program.title, q))
    return query


# --- quizzes ----------------------------------------------------------------------------------


def _question_problem(question: dict[str, Any]) -> str | None:
    kind, choices, answer = question["kind"], question.get("choices") or [], question["answer"]
    if kind in ("single_choice", "multiple_choice") and (len(choices) < 2 or len(set(choices)) != len(choices)):
        return "needs at least two distinct choices"
    if kind == "single_choice" and (not isinstance(answer, str) or answer not in choices):
        return "the answer must be one of the choices"
    if kind == "multiple_choice" and (
        not isinstance(answer, list) or not answer or not all(isinstance(a, str) and a in choices for a in answer)
    ):
        return "the answer must be a non-empty list of choices"
    if kind == "true_false" and (not isinstance(answer, bool) or choices):
        return "the answer must be true or false, with no choices"
    if kind == "short_text" and not (isinstance(answer, str) and answer.strip()):
        return "the answer must be a non-empty text"
    return None


def _questions(questions: Sequence[dict[str, Any]]) -> list[Question]:
    problems = {str(i): [p] for i, q in enumerate(questions) if (p := _question_problem(q))}
    if problems:
        raise Unprocessable(
            "some questions are not valid; see errors", code="invalid_questions", errors={"questions": problems}
        )
    return [
        Question(
            position=i, prompt=q["prompt"], kind=q["kind"], choices=list(q.get("choices") or []), answer=q["answer"]
        )
        for i, q in enumerate(questions)
    ]


def create_quiz(session: Session, actor: Actor, fields: dict[str, Any]) -> Quiz:
    """The quiz of a quiz lesson (one per lesson): questions, pass mark and attempt limit."""
    lesson, course = _editable_lesson(session, actor, fields["lesson_id"])
    if lesson.kind != "quiz":
        raise Conflict(f"lesson '{lesson.title}' is a {lesson.kind} lesson, not a quiz lesson", code="lesson_not_quiz")
    if lesson.quiz is not None:
        raise Conflict(
            f"lesson '{lesson.title}' already has quiz {lesson.quiz.id}: change that one", code="lesson_has_quiz"
        )
    quiz = Quiz(
        org_id=actor.org,
        lesson_id=lesson.id,
        course_id=course.id,
        pass_percent=fields["pass_percent"],
        max_attempts=fields.get("max_attempts"),
    )
    quiz.questions = _questions(fields["questions"])
    lesson.quiz = quiz
    session.flush()
    events.quiz_changed(session, quiz)
    events.course_changed(session, course)
    return quiz


def get_quiz(session: Session, actor: Actor, quiz_id: str) -> Quiz:
    quiz = _get(session, Quiz, quiz_id, actor)
    get_lesson(session, actor, quiz.lesson_id)
    return quiz


def update_quiz(session: Session, actor: Actor, quiz_id: str, changes: dict[str, Any]) -> Quiz:
    quiz = _get(session, Quiz, quiz_id, actor, lock=True)
    lesson, _course = _editable_lesson(session, actor, quiz.lesson_id)
    for name in ("pass_percent", "max_attempts"):
        if name in changes:
            setattr(quiz, name, changes[name])
    if "questions" in changes:
        if not changes["questions"] and lesson.status == PUBLISHED:
            raise Conflict("the quiz of a published lesson needs questions", code="lesson_incomplete")
        quiz.questions = _questions(changes["questions"])
    events.bump(quiz)
    session.flush()
    events.quiz_changed(session, quiz)
    return quiz


def shows_answers(session: Session, actor: Actor, quiz: Quiz) -> bool:
    """Only those who may edit the course see the answer key; learners never do."""
    course = session.get_one(Course, quiz.course_id)
    return actor.author and actor.may_edit(course.created_by)


# --- cohorts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortFields:
    title: str
    course_ids: Sequence[str]
    starts_on: date
    ends_on: date
    seats: int
    instructor_ids: Sequence[str]


def _check_instructors(session: Session, actor: Actor, user_ids: Sequence[str]) -> None:
    approved = set(
        session.scalars(
            select(Instructor.user_id).where(
                Instructor.org_id == actor.org, Instructor.user_id.in_(user_ids), Instructor.status == "approved"
            )
        )
    )
    refused = [u for u in user_ids if u not in approved]
    if refused:
        raise Unprocessable(
            f"only approved instructors may lead a cohort; not approved: {', '.join(refused)}",
            code="instructor_not_approved",
            errors={"instructor_ids": refused},
        )


def _apply_cohort(session: Session, actor: Actor, cohort: Cohort, fields: CohortFields) -> None:
    if fields.ends_on < fields.starts_on:
        raise Unprocessable(
            "ends_on is before starts_on", code="invalid_dates", errors={"ends_on": ["must not be before starts_on"]}
        )
    _visible_courses(session, actor, fields.course_ids)
    instructor_ids = list(dict.fromkeys(fields.instructor_ids))
    _check_instructors(session, actor, instructor_ids)
    cohort.title, cohort.starts_on, cohort.ends_on, cohort.seats = (
        fields.title,
        fields.starts_on,
        fields.ends_on,
        fields.seats,
    )
    cohort.links = _relink(cohort.links, fields.course_ids, lambda c: CohortCourse(course_id=c))
    kept = {i.user_id: i for i in cohort.instructors}
    cohort.instructors = [kept.get(u) or CohortInstructor(user_id=u) for u in instructor_ids]


def create_cohort(session: Session, actor: Actor, fields: CohortFields) -> Cohort:
    """A scheduled group: courses, dates, seats and approved instructors."""
    cohort = Cohort(org_id=actor.org, created_by=actor.user)
    _apply_cohort(session, actor, cohort, fields)
    session.add(cohort)
    session.flush()
    events.cohort_changed(session, cohort)
    return cohort


def get_cohort(session: Session, actor: Actor, cohort_id: str, *, lock: bool = False) -> Cohort:
    return _get(session, Cohort, cohort_id, actor, lock=lock)


def update_cohort(session: Session, actor: Actor, cohort_id: str, changes: dict[str, Any]) -> Cohort:
    cohort = get_cohort(session, actor, cohort_id, lock=True)
    actor.check_edit(cohort.created_by, "cohort")
    current = CohortFields(
        cohort.title,
        [link.course_id for link in cohort.links],
        cohort.starts_on,
        cohort.ends_on,
        cohort.seats,
        [i.user_id for i in cohort.instructors],
    )
    _apply_cohort(session, actor, cohort, CohortFields(**{**current.__dict__, **changes}))
    events.bump(cohort)
    session.flush()
    events.cohort_changed(session, cohort)
    return cohort


def cohort_query(actor: Actor, q: str | None = None, course_id: str | None = None) -> Select[Cohort]:
    query = select(Cohort).where(Cohort.org_id == actor.org)
    if q:
        query = query.where(_title_like(Cohort.title, q))
    if course_id:
        query = query.where(Cohort.links.any(CohortCourse.course_id == course_id))
    return query


# --- instructors (identity's events) ----------------------------------------------------------


def record_instructor_status(session: Session, org: str, user_id: str, status: str, changed_at: Any) -> None:
    """Keep identity's latest instructor status; an older event than the one held changes nothing."""
    row = session.get(Instructor, (org, user_id), with_for_update=True)
    if row is None:
        session.add(Instructor(org_id=org, user_id=user_id, status=status, changed_at=changed_at))
    elif row.changed_at <= changed_at:
        row.status, row.changed_at = status, changed_at
