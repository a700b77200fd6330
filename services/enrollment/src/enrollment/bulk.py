"""Set-based writes: many enrollments, sources and their outbox events in a few statements.

A batch first lists its (user, course, source) targets in ``bulk_targets``; :func:`enroll_batch`
then inserts the missing enrollments with ``INSERT ... SELECT``, their sources, and one
EnrollmentCreated per new enrollment built as JSON by the database itself, so 150,000
enrollments cost seconds, not one ORM flush (and one jsonschema check) each. The first event of
each such insert comes back from it and is validated against the contract: the SQL that builds the
payloads is checked on every call, at the cost of one row. A batch of assignments needs no
``bulk_targets``: :func:`enroll_assigned` reads its targets from the assignments themselves; nor
does a handful of targets (:func:`enroll_few`), whose rows and events are computed here.
"""

from __future__ import annotations

import json
import operator
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from functools import reduce
from typing import Any
from typing import cast as type_cast

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from enrollment.events import SOURCE, stamp
from enrollment.models import Assignment, BulkTarget, Course, Enrollment, EnrollmentSource
from lms_common import outbox
from lms_common.context import current_correlation_id
from lms_common.contracts import SUITE_EVENTS
from lms_common.contracts import enrollment as contract
from lms_common.db import UTCDateTime, is_postgres, new_id
from lms_common.envelope import Event, EventType, decode
from lms_common.outbox import OutboxMessage

# uuid4-shaped text from SQLite's randomness (PostgreSQL has gen_random_uuid()).
_SQLITE_UUID = (
    "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2)"
    " || '-8' || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))"
)
UNIQUE_VIOLATION = "23505"


def new_uuid(session: Session) -> ColumnElement[str]:
    if is_postgres(session):
        return cast(func.gen_random_uuid(), String)
    return literal_column(_SQLITE_UUID, String)


def ordered_uuid(session: Session, prefix: ColumnElement[str] | None = None) -> ColumnElement[str]:
    """Ids for the rows of one ``INSERT ... SELECT`` that increase in insertion order.

    UUIDv7 (RFC 9562): the statement's millisecond, 42 random bits chosen once per statement and
    the row's number (32 bits). A batch's rows, their sources and their outbox events then go
    to the right-hand end of each index on these ids instead of to random pages: at 150,000
    rows per statement and more, random ids spread each insert over every page of indexes
    larger than the buffer cache, each page written again (whole, after a checkpoint) to WAL.
    A statement kept for many batches takes the first 23 characters as a bound parameter
    (``prefix``, given :func:`uuid7_prefix` on each execution). SQLite gets random ids.
    """
    if not is_postgres(session):
        return new_uuid(session)
    first = literal(uuid7_prefix(), String) if prefix is None else prefix
    return first + func.lpad(func.to_hex(func.row_number().over()), 8, "0")


def uuid7_prefix() -> str:
    """The part of :func:`ordered_uuid`'s ids that one statement's rows share."""
    ms, bits = time.time_ns() // 1_000_000, secrets.randbits(42)
    return (
        f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7{bits >> 30:03x}-"
        f"{0x8 | (bits >> 28) & 0x3:x}{(bits >> 16) & 0xFFF:03x}-{bits & 0xFFFF:04x}"
    )


_BUILT: dict[tuple[Any, ...], Any] = {}


def built_once(session: Session, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """The statement ``build()`` makes, made once per dialect and ``key`` and kept.

    SQLAlchemy keeps each statement's compiled SQL under a cache key, but a statement built
    anew for every batch is constructed and walked for that key again each time: a third of
    the worker's CPU in a burst of onboardings. A kept statement memoizes its key, and takes
    what changes from one batch to the next as bound parameters given on execution; never a
    ``literal()`` of such a value, which would be kept with it. ``key`` names the statement's
    shape: module-level functions and constants, never anything made per call.
    """
    full_key = (session.get_bind().dialect.name, *key)
    statement = _BUILT.get(full_key)
    if statement is None:  # two threads building one each is harmless
        statement = _BUILT[full_key] = build()
    return statement


def value(session: Session, python_value: Any) -> ColumnElement[Any]:
    """A constant for a JSON builder: typed for PostgreSQL, JSON booleans on SQLite."""
    if isinstance(python_value, bool):
        if is_postgres(session):
            return cast(literal(python_value), Boolean)
        return func.json("true" if python_value else "false")
    if python_value is None:
        return literal_column("NULL")
    if isinstance(python_value, int):
        return cast(literal(python_value), Integer)
    return cast(literal(str(python_value)), String)


def json_object(session: Session, pairs: dict[str, Any]) -> ColumnElement[Any]:
    """A JSON object built by the database: column expressions as they are, constants typed."""
    if is_postgres(session):
        return _pg_json_object(pairs)
    args: list[Any] = []
    for key, item in pairs.items():
        args += [literal_column(f"'{key}'"), item if _is_sql(item) else value(session, item)]
    return func.json_object(*args)


def _pg_json_object(pairs: dict[str, Any]) -> ColumnElement[Any]:
    """Compact JSON text concatenated by PostgreSQL: keys and constants encoded once, here.

    ``json_build_object`` looks up the type of each of its arguments on every row and adds
    ``" : "`` between keys and values; concatenating ``to_json()`` of the columns into text
    made once by Python halves the cost of 150,000 events, and the bodies are smaller. Columns
    typed JSON (another such object, a JSON column) are embedded as they are; a NULL is ``null``.
    """
    parts: list[Any] = []
    pending = "{"
    for key, item in pairs.items():
        pending += ("" if pending == "{" else ",") + json.dumps(key) + ":"
        if not _is_sql(item):
            pending += json.dumps(item if item is None or isinstance(item, (bool, int)) else str(item))
            continue
        expression = item.__clause_element__() if hasattr(item, "__clause_element__") else item
        as_text = cast(expression, Text) if isinstance(expression.type, JSON) else cast(func.to_json(expression), Text)
        parts += [literal(pending, Text), func.coalesce(as_text, literal_column("'null'"))]
        pending = ""
    parts.append(literal(pending + "}", Text))
    return type_coerce(reduce(operator.add, parts), JSON)


def _is_sql(item: Any) -> bool:
    return isinstance(item, ColumnElement) or hasattr(item, "__clause_element__")


def _as_bytes(session: Session, json: ColumnElement[Any]) -> ColumnElement[Any]:
    if is_postgres(session):
        return func.convert_to(cast(json, String), literal_column("'UTF8'"))
    return cast(json, LargeBinary)


RowsBuilder = Callable[[Session], Select[Any]]


def insert_events(
    session: Session, event_type: EventType, rows: RowsBuilder, params: dict[str, Any], now: datetime
) -> int:
    """Add one event per row of ``rows(session)`` (columns ``event_id``, ``orgid``, ``data``) to
    the outbox; how many.

    ``rows`` is a module-level function building a select of bound parameters, given values
    by ``params``; the insert is built once for it (:func:`built_once`). The envelope's own
    values are the parameters ``event_time``, ``event_created_at`` and ``event_headers``.
    """
    if "<" in rows.__qualname__:  # a lambda or a nested function is a new key on every call
        raise ValueError(f"insert_events needs a module-level rows builder, not {rows.__qualname__}")
    notify = outbox.relay_wakeup(session) is not None
    statement, sampled = built_once(
        session, ("events", event_type.name, rows, notify), lambda: _events_insert(session, event_type, rows, notify)
    )
    headers = {"x-request-id": current_correlation_id() or new_id()}
    values = {**params, "event_time": stamp(now), "event_created_at": now, "event_headers": headers}
    return _insert_checked(session, statement, sampled, values)


def _events_insert(session: Session, event_type: EventType, rows: RowsBuilder, notify: bool) -> tuple[Any, bool]:
    """The outbox ``INSERT ... SELECT`` of :func:`insert_events`, and whether it returns a
    count and a sample body (PostgreSQL) rather than every body (SQLite)."""
    source = rows(session).subquery()
    envelope = json_object(
        session,
        {
            "specversion": "1.0",
            "id": source.c.event_id,
            "source": SOURCE,
            "type": event_type.name,
            "time": bindparam("event_time", type_=String),
            "datacontenttype": "application/json",
            "orgid": source.c.orgid,
            # SQLite forgets that a subquery's column is JSON; json() says it again.
            "data": source.c.data if is_postgres(session) else func.json(source.c.data),
        },
    )
    chosen = select(
        source.c.event_id,
        literal(event_type.name),
        literal(event_type.routing_key),
        _as_bytes(session, envelope),
        bindparam("event_headers", type_=JSON),
        bindparam("event_created_at", type_=UTCDateTime),
        literal(0),
    )
    table = type_cast(Table, OutboxMessage.__table__)
    columns = ["event_id", "event_type", "routing_key", "body", "headers", "created_at", "attempts"]
    statement = insert(table).from_select(columns, chosen)
    if not is_postgres(session):  # SQLite has neither a count in SQL nor NOTIFY: the bodies come back
        return statement.returning(table.c.body), False
    first = select(source.c.event_id).limit(1).scalar_subquery()
    inserted_rows = statement.returning(case((table.c.event_id == first, table.c.body)).label("sample")).cte("inserted")
    sample = select(inserted_rows.c.sample).where(inserted_rows.c.sample.is_not(None)).limit(1).scalar_subquery()
    wakeup = [func.pg_notify(outbox.NOTIFY_CHANNEL, "")] if notify else []
    return select(func.count(), sample, *wakeup).select_from(inserted_rows), True


def _insert_checked(session: Session, statement: Any, sampled: bool, params: dict[str, Any]) -> int:
    """Run the outbox insert of :func:`_events_insert`; how many rows it inserted.

    The insert returns the body of one event, the first of its rows (the same SQL made them
    all), which is validated against the contract: the SQL that builds the payloads is checked
    on every call without reading a row back. On PostgreSQL (an ``INSERT`` in a ``WITH``
    clause) the database counts the rows returned, so one row comes back whatever the size of
    the batch, with the NOTIFY that wakes the relay where the transaction has yet to send it
    (:func:`outbox.relay_wakeup`); it is sent even if nothing was inserted, a harmless wake-up.
    """
    if sampled:
        count, body = session.execute(statement, params).one()[:2]
    else:
        bodies = session.scalars(statement, params).all()
        count, body = len(bodies), next(iter(bodies), None)
    if count and body is None:  # an event id the SQL makes anew on each evaluation, say
        raise ValueError("none of the inserted events could be checked against its contract")
    if body is not None:
        SUITE_EVENTS.validate(decode(bytes(body)))
    return int(count)


def inserted(session: Session, statement: Any, params: dict[str, Any] | None = None) -> int:
    """Run an ``INSERT``; how many rows it inserted.

    SQLAlchemy keeps the driver's row count only for UPDATE and DELETE unless asked: without
    ``preserve_rowcount`` an ``INSERT ... SELECT`` on psycopg reports -1. It is asked here, on
    execution, so that a kept statement stays the same object (see :func:`built_once`).
    """
    result = session.execute(statement, params, execution_options={"preserve_rowcount": True})
    return int(type_cast(CursorResult[Any], result).rowcount)


def fresh_insert(session: Session, table: Any, columns: list[str], rows: Select[*tuple[Any, ...]]) -> Any:
    """The ``INSERT ... SELECT`` of ``rows`` for :func:`insert_fresh`, in the session's dialect."""
    return _dialect(session).insert(table).from_select(columns, rows)


def insert_ignoring_duplicates(session: Session, table: Any, columns: list[str], rows: Select[*tuple[Any, ...]]) -> int:
    """``INSERT ... SELECT`` that skips rows a concurrent writer inserted first (PostgreSQL)."""
    statement = fresh_insert(session, table, columns, rows)
    return inserted(session, statement.on_conflict_do_nothing() if is_postgres(session) else statement)


def insert_fresh(session: Session, statement: Any, params: dict[str, Any] | None = None) -> int:
    """Run :func:`fresh_insert`'s ``statement``, rows that are new but for a rare concurrent
    writer; how many it inserted, skipping duplicates as :func:`insert_ignoring_duplicates` does.

    ``ON CONFLICT`` costs PostgreSQL a probe of every unique index before each row and one more
    WAL record after it: about a third of a 150,000-row insert. So the plain ``INSERT`` runs
    first, in a savepoint; a unique violation (another transaction inserted one of the rows
    first, or the rows repeat a key) rolls it back and the statement runs again ignoring
    duplicates.
    """
    if not is_postgres(session):
        return inserted(session, statement, params)
    try:
        with session.begin_nested():
            return inserted(session, statement, params)
    except IntegrityError as error:
        if getattr(error.orig, "sqlstate", None) != UNIQUE_VIOLATION:
            raise
    return inserted(session, statement.on_conflict_do_nothing(), params)


# --- enrollment batches ---------------------------------------------------------------------------


def add_target_values(session: Session, batch_id: str, rows: list[dict[str, str]]) -> None:
    if rows:
        session.execute(insert(type_cast(Table, BulkTarget.__table__)), [{**row, "batch_id": batch_id} for row in rows])


def without_jit(session: Session) -> None:
    """No JIT compilation for the rest of this transaction (PostgreSQL).

    The estimates of a large batch's ``INSERT ... SELECT`` statements pass the JIT's thresholds,
    and inlining and optimizing a plan that runs once cost 0.2 s of a 150,000-row batch for no
    gain: the work is in the inserts (heap, indexes, WAL), not in expressions.
    """
    if is_postgres(session):
        session.execute(text("SET LOCAL jit = off"))


_BY_INDEX = "enrollment.by_index"  # session.info: sequential scans are off in this transaction


@contextmanager
def by_index(session: Session) -> Iterator[None]:
    """No sequential scans inside (PostgreSQL): the lookups of a batch go through their indexes.

    Where a table is new or was empty at its last ``ANALYZE``, the planner takes it for a few
    pages and would scan it once per outer row of a correlated lookup, including the pages the
    same ``INSERT`` is adding to it: quadratic time for the first chunk of a job into an empty
    table. Every scan of an assignment statement has an index (the batch's rows by
    ``batch_id``, earlier rows by their unique keys, users by id or location).
    """
    if not is_postgres(session) or session.info.get(_BY_INDEX):  # inside another: already so
        yield
        return
    # The target list is evaluated in order: the setting as it was, then the change.
    prior = session.scalar(text("SELECT current_setting('enable_seqscan'), set_config('enable_seqscan', 'off', true)"))
    session.info[_BY_INDEX] = True
    try:
        yield
    finally:
        del session.info[_BY_INDEX]
    session.execute(text("SELECT set_config('enable_seqscan', :prior, true)"), {"prior": prior})


def by_index_for_a_run(session: Session, events: Sized) -> AbstractContextManager[None]:
    """:func:`by_index` for a run of several events; a lone event, the latency path of one
    purchase, is planned on the statistics the worker keeps and spares the two round trips."""
    return by_index(session) if len(events) > 1 else nullcontext()


def analyze(session: Session, *tables: str) -> None:
    """Refresh PostgreSQL's statistics after a large insert in this transaction.

    Without them the planner believes the freshly filled tables are empty and joins them with
    nested loops over sequential scans: quadratic time for a 150,000-row batch.
    """
    if is_postgres(session):
        for table in tables:
            session.execute(text(f"ANALYZE {table}"))


# A batch of up to this many targets is written by :func:`enroll_few`, with plain inserts of
# values computed here: for a handful of rows, bulk_targets' insert and delete, the reopening of
# sources and the events' check cost more round trips than the writes themselves.
FEW = 20
ENROLLMENT_COLUMNS = [
    "id", "org_id", "user_id", "course_id", "progress_percent", "first_source", "first_source_id", "enrolled_at",
    "batch_id",
]  # fmt: skip


def enroll(
    session: Session,
    targets: list[dict[str, str]],
    now: datetime,
    *,
    large: bool = False,
    preceding: Sequence[Event] = (),
    titles: Mapping[str, str | None] | None = None,
) -> int:
    """Enroll each target (``org_id``, ``user_id``, ``course_id``, ``kind``, ``ref``); how many
    enrollments are new: :func:`enroll_few` for a handful naming each user and course once,
    else :func:`enroll_batch` through ``bulk_targets``. Both give the same rows and events.

    ``preceding``: events the enrollments' own follow (a new grant's ProductGranted), written in
    the same insert when few. ``titles``: course titles the caller has read already."""
    if len(targets) <= FEW and len({(t["user_id"], t["course_id"]) for t in targets}) == len(targets):
        return enroll_few(session, targets, now, preceding=preceding, titles=titles)
    outbox.add_many(session, preceding)
    batch = new_id()
    add_target_values(session, batch, targets)
    return enroll_batch(session, batch, now, large=large)


def enroll_few(
    session: Session,
    targets: list[dict[str, str]],
    now: datetime,
    *,
    preceding: Sequence[Event] = (),
    titles: Mapping[str, str | None] | None = None,
) -> int:
    """:func:`enroll_batch` for a few targets, one per user and course, with values computed here.

    The latency path of a purchase (one grant, its courses) costs three statements: the
    enrollments missing, their sources inserted or reopened in one upsert, and their events,
    after ``preceding``, validated one by one by :func:`outbox.add_many`; and a read of the
    course titles when it enrolls in a course ``titles`` does not name.
    """
    if not targets:
        outbox.add_many(session, preceding)
        return 0
    batch = new_id()
    rows = [
        dict(zip(ENROLLMENT_COLUMNS, (str(uuid.uuid4()), t["org_id"], t["user_id"], t["course_id"], 0, t["kind"],
                                      t["ref"], now, batch), strict=True))
        for t in targets
    ]  # fmt: skip
    table = type_cast(Table, Enrollment.__table__)
    made = session.execute(_dialect(session).insert(table).on_conflict_do_nothing().returning(table), rows)
    new = {row.id: row for row in made}
    ids = {(row.user_id, row.course_id): row.id for row in new.values()}
    if len(ids) < len(targets):  # the others were enrolled already, or by a concurrent writer just now
        ids |= {(user, course): ident for ident, user, course in _enrollments_of(session, targets)}
    _upsert_sources(session, [{"enrollment_id": ids[t["user_id"], t["course_id"]], "kind": t["kind"],
                               "ref": t["ref"], "active": True} for t in targets])  # fmt: skip
    courses = {row.course_id for row in new.values()}
    if courses and (titles is None or not courses <= titles.keys()):
        titles = dict(session.execute(select(Course.id, Course.title).where(Course.id.in_(courses))).all())
    created = [_created_event(row, (titles or {}).get(row.course_id) or "", now) for row in new.values()]
    outbox.add_many(session, [*preceding, *created])
    return len(new)


def _enrollments_of(session: Session, targets: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    pairs = [(t["user_id"], t["course_id"]) for t in targets]
    e = Enrollment
    by_user = tuple_(e.user_id, e.course_id.concat("")).in_(pairs)  # the unique index: see enrollment_of
    return list(session.execute(select(e.id, e.user_id, e.course_id).where(by_user)).all())


def _upsert_sources(session: Session, sources: list[dict[str, Any]]) -> None:
    """Insert the sources, reopening those inactive: :func:`_open_sources` for known enrollments."""
    table = type_cast(Table, EnrollmentSource.__table__)
    statement = _dialect(session).insert(table)
    keys = ["enrollment_id", "kind", "ref"]
    session.execute(
        statement.on_conflict_do_update(index_elements=keys, set_={"active": True}, where=table.c.active.is_(False)),
        sources,
    )


def _dialect(session: Session) -> Any:
    return postgresql if is_postgres(session) else sqlite


def _created_event(row: Any, course_title: str, now: datetime) -> Event:
    """The EnrollmentCreated :func:`_enrollment_created` builds in SQL for a new enrollment."""
    data = {
        "enrollment_id": row.id, "org_id": row.org_id, "user_id": row.user_id, "course_id": row.course_id,
        "course_title": course_title, "source": row.first_source, "source_id": row.first_source_id,
        "enrolled_at": stamp(now),
    }  # fmt: skip
    return Event(type=contract.ENROLLMENT_CREATED.name, data=data, orgid=row.org_id, source=SOURCE, id=row.id, time=now)


def enroll_batch(session: Session, batch_id: str, now: datetime, *, large: bool = False) -> int:
    """Enroll every target of the batch: new enrollments, (re)opened sources, EnrollmentCreated."""
    if large:
        analyze(session, "bulk_targets")
    created = _insert_enrollments(session, batch_id, now)
    if large:
        analyze(session, "enrollments")
    _open_sources(session, batch_id)
    if created:
        insert_events(session, contract.ENROLLMENT_CREATED, _enrollment_created, _created_params(batch_id, now), now)
    session.execute(delete(BulkTarget).where(BulkTarget.batch_id == batch_id))
    return created


def found(*conditions: ColumnElement[bool]) -> ColumnElement[Any]:
    """1 if a row matches ``conditions`` (correlated to the outer row), else NULL: test it with
    ``is_(None)``.

    Unlike ``NOT EXISTS``, which PostgreSQL may turn into a hash anti-join that reads every row
    the outer rows could match, a scalar subquery is evaluated once per outer row, through an
    index of its conditions: the cost per row stays flat however large the table grows.
    """
    return select(literal(1)).where(*conditions).limit(1).scalar_subquery()


def enrollment_of(user_id: Any, course_id: Any) -> ColumnElement[bool]:
    """The enrollment of this user in this course, looked up by user in the unique index
    (user_id, course_id).

    The course is compared as an expression the index of enrollments by course cannot serve:
    where the table's statistics are missing, both indexes look alike to the planner, and the
    one by course reads every enrollment of the course for each lookup.
    """
    return and_(Enrollment.user_id == user_id, Enrollment.course_id.concat("") == course_id)


def enroll_assigned(session: Session, batch_id: str, now: datetime) -> int:
    """:func:`enroll_batch` for the course assignments of a batch, read from the assignments.

    The batch's assignments are its targets already (one per user and course: their ids are
    fresh), so no ``bulk_targets`` are written, grouped and deleted; and a source naming a new
    assignment cannot exist yet, so sources are inserted without looking for old ones to
    reopen. The enrollments and sources are inserted by :func:`insert_fresh`, each statement
    built once (:func:`built_once`).
    """
    params = {"batch_id": batch_id, "enrolled_at": now, "id_prefix": uuid7_prefix()}
    created = insert_fresh(session, built_once(session, ("assigned enrollments",), lambda: _assigned(session)), params)
    if created:  # a new enrollment names its assignment already: its source needs no lookup
        insert_fresh(session, built_once(session, ("new sources",), lambda: _new_sources(session)), params)
    assigned = built_once(session, ("course assignments",), _course_assignments_counted)
    if created < (session.scalar(assigned, params) or 0):
        insert_fresh(session, built_once(session, ("older sources",), lambda: _older_sources(session)), params)
    if created:
        insert_events(session, contract.ENROLLMENT_CREATED, _enrollment_created, _created_params(batch_id, now), now)
    return created


_BATCH = "batch_id"  # the bound parameter naming a batch in the statements built once
SOURCE_COLUMNS = ["enrollment_id", "kind", "ref", "active"]


def _of_batch(column: ColumnElement[str | None] | InstrumentedAttribute[str | None]) -> ColumnElement[bool]:
    return column == bindparam(_BATCH, type_=String)


def _course_assignments() -> ColumnElement[bool]:
    return and_(_of_batch(Assignment.batch_id), Assignment.course_id.is_not(None))


def _course_assignments_counted() -> Select[Any]:
    return select(func.count()).select_from(Assignment).where(_course_assignments())


def _assigned(session: Session) -> Any:
    """The enrollments missing for a batch's course assignments, each sourced by its assignment."""
    a = Assignment
    rows = select(
        ordered_uuid(session, bindparam("id_prefix", type_=String)), a.org_id, a.user_id, a.course_id, literal(0),
        literal("assignment"), a.id, bindparam("enrolled_at", type_=UTCDateTime), bindparam(_BATCH, type_=String),
    ).where(_course_assignments(), found(enrollment_of(a.user_id, a.course_id)).is_(None))  # fmt: skip
    return fresh_insert(session, Enrollment.__table__, ENROLLMENT_COLUMNS, rows)


def _new_sources(session: Session) -> Any:
    e = Enrollment
    new = select(e.id, literal("assignment"), e.first_source_id, literal(True)).where(_of_batch(e.batch_id))
    return fresh_insert(session, EnrollmentSource.__table__, SOURCE_COLUMNS, new)


def _older_sources(session: Session) -> Any:
    """The assignment source of each enrollment that a batch's course assignment found already
    there: on PostgreSQL one probe of the unique index per assignment, not a join that may read
    every enrollment of the courses."""
    a, e = Assignment, Enrollment
    batch = bindparam(_BATCH, type_=String)
    older = and_(enrollment_of(a.user_id, a.course_id), or_(e.batch_id.is_(None), e.batch_id != batch))
    if is_postgres(session):
        # LIMIT keeps PostgreSQL from flattening the subquery into a join it could hash.
        enrollment = select(e.id).where(older).limit(1).lateral("enrollment")
        joined = select(enrollment.c.id).select_from(a).join(enrollment, true())
    else:  # no LATERAL; SQLite's joins are index lookups anyway
        joined = select(e.id).select_from(a).join(e, older)
    rows = joined.add_columns(literal("assignment"), a.id, literal(True)).where(a.batch_id == batch)
    return fresh_insert(session, EnrollmentSource.__table__, SOURCE_COLUMNS, rows)


def _insert_enrollments(session: Session, batch_id: str, now: datetime) -> int:
    t = BulkTarget
    firsts = (
        select(t.org_id, t.user_id, t.course_id, func.min(t.kind).label("kind"), func.min(t.ref).label("ref"))
        .where(t.batch_id == batch_id)
        .group_by(t.org_id, t.user_id, t.course_id)
        .subquery()
    )
    enrolled = exists().where(enrollment_of(firsts.c.user_id, firsts.c.course_id))
    rows = select(
        new_uuid(session),
        firsts.c.org_id,
        firsts.c.user_id,
        firsts.c.course_id,
        literal(0),
        firsts.c.kind,
        firsts.c.ref,
        literal(now, UTCDateTime),
        literal(batch_id),
    ).where(~enrolled)
    columns = [
        "id",
        "org_id",
        "user_id",
        "course_id",
        "progress_percent",
        "first_source",
        "first_source_id",
        "enrolled_at",
        "batch_id",
    ]
    return insert_ignoring_duplicates(session, Enrollment.__table__, columns, rows)


def _open_sources(session: Session, batch_id: str) -> None:
    t, s = BulkTarget, EnrollmentSource
    join = enrollment_of(t.user_id, t.course_id)
    targeted = (
        select(Enrollment.id)
        .join(t, join)
        .where(t.batch_id == batch_id, Enrollment.id == s.enrollment_id, t.kind == s.kind, t.ref == s.ref)
    )
    session.execute(update(s).where(s.active.is_(False), exists(targeted)).values(active=True))
    known = exists().where(s.enrollment_id == Enrollment.id, s.kind == t.kind, s.ref == t.ref)
    rows = (
        select(Enrollment.id, t.kind, t.ref, literal(True))
        .join(t, join)
        .where(t.batch_id == batch_id, ~known)
        .distinct()
    )
    insert_ignoring_duplicates(session, s.__table__, ["enrollment_id", "kind", "ref", "active"], rows)


def _created_params(batch_id: str, now: datetime) -> dict[str, Any]:
    return {_BATCH: batch_id, "enrolled_stamp": stamp(now)}


def _enrollment_created(session: Session) -> Select[Any]:
    """EnrollmentCreated of each enrollment of a batch (:func:`_created_params`)."""
    e = Enrollment
    data = json_object(
        session,
        {
            "enrollment_id": e.id,
            "org_id": e.org_id,
            "user_id": e.user_id,
            "course_id": e.course_id,
            "course_title": func.coalesce(Course.title, ""),
            "source": e.first_source,
            "source_id": e.first_source_id,
            "enrolled_at": bindparam("enrolled_stamp", type_=String),
        },
    )
    return (
        select(e.id.label("event_id"), e.org_id.label("orgid"), data.label("data"))
        .outerjoin(Course, Course.id == e.course_id)
        .where(_of_batch(e.batch_id))
    )
