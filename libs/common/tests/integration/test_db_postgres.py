"""On PostgreSQL: pooled connections whose server side went away are replaced before use, and
read-only sessions and raw reads run without a transaction."""

from __future__ import annotations

import datetime as dt
import itertools
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    create_engine,
    func,
    insert,
    select,
    text,
)
from sqlalchemy import event as sa_event
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # the same checks as on SQLite

from test_raw_reads import check_keyset_pages_walk_every_row_once, check_reads_match_sqlalchemy, metadata

from lms_common import inbox, metrics, outbox
from lms_common.context import correlation
from lms_common.db import (
    Base,
    BinaryList,
    ReadStatement,
    UTCDateTime,
    insert_rows,
    make_engine,
    make_read_session_factory,
    make_session_factory,
    raw_reads,
    session_cursor,
    session_scope,
    unnested,
    utcnow,
)
from lms_common.envelope import Event
from lms_common.inbox import InboxMessage
from lms_common.outbox import OutboxMessage


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(url: str, pid: int) -> None:
    admin = create_engine(url, poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()
    time.sleep(0.2)  # the backend's goodbye reaches our socket


def test_a_connection_whose_backend_was_terminated_is_replaced(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    first = backend_pid(engine)
    terminate(postgres_url, first)
    assert backend_pid(engine) != first
    engine.dispose()


def lost_connections() -> float:
    return float(metrics.DATABASE_DISCONNECTS._value.get())


def test_a_connection_lost_while_idle_or_mid_work_is_counted(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    before = lost_connections()
    terminate(postgres_url, backend_pid(engine))  # idle in the pool: found by the checkout's ping
    backend_pid(engine)
    assert lost_connections() - before == 1
    with engine.connect() as connection:  # lost in the middle of work
        terminate(postgres_url, int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one()))
        with pytest.raises(DBAPIError):
            connection.execute(text("SELECT 1"))
    assert lost_connections() - before == 2
    engine.dispose()


def test_a_unit_of_work_after_a_server_restart_of_every_connection_succeeds(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=3, max_overflow=0)
    factory = make_session_factory(engine)
    connections = [engine.connect() for _ in range(3)]
    pids = [int(c.execute(text("SELECT pg_backend_pid()")).scalar_one()) for c in connections]
    for connection in connections:
        connection.close()
    for pid in pids:
        terminate(postgres_url, pid)
    for _ in range(3):
        with session_scope(factory) as session:
            assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() not in pids
    engine.dispose()


def test_a_read_only_session_runs_each_statement_on_its_own(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    with session_scope(make_read_session_factory(engine)) as session:
        session.execute(text("SELECT 1"))
        time.sleep(0.01)
        # Inside a transaction now() is when it began, before this statement.
        assert session.execute(text("SELECT now() = statement_timestamp()")).scalar_one()
    with session_scope(make_session_factory(engine)) as session:
        session.execute(text("SELECT 1"))
        time.sleep(0.01)
        assert not session.execute(text("SELECT now() = statement_timestamp()")).scalar_one()
    engine.dispose()


def test_raw_reads_match_sqlalchemy_and_page_alike(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    check_reads_match_sqlalchemy(engine)
    metadata.drop_all(engine)
    check_keyset_pages_walk_every_row_once(engine)
    engine.dispose()


def test_raw_reads_run_without_a_transaction_and_hand_the_connection_back_as_it_was(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    now_is_statement_time = ReadStatement(select(func.now() == func.statement_timestamp()))
    with raw_reads(engine) as reads:
        now_is_statement_time.rows(reads, {})
        time.sleep(0.01)
        assert now_is_statement_time.rows(reads, {}) == [(True,)]
    with engine.connect() as connection:  # the same pooled connection, in a transaction again
        connection.execute(text("SELECT 1"))
        assert connection.connection.driver_connection.autocommit is False  # type: ignore[union-attr]
    engine.dispose()


def test_a_connection_lost_under_raw_reads_is_dropped_and_counted(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    before = lost_connections()
    backend = ReadStatement(select(func.pg_backend_pid()))
    with pytest.raises(Exception), raw_reads(engine) as reads:  # noqa: B017 - the driver's own error
        terminate(postgres_url, backend.rows(reads, {})[0][0])
        backend.rows(reads, {})
    assert lost_connections() - before == 1
    with raw_reads(engine) as reads:
        assert backend.rows(reads, {})  # a fresh connection
    engine.dispose()


def test_unnested_rows_join_like_the_rows_themselves_under_one_cached_statement(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    keys = [("org-1", "a"), ("org-1", "it's"), ("org-2", "ü-ß"), ("org-1", "a")]
    stored = [("org-1", "a", 1), ("org-1", "it's", 2), ("org-2", "b", 3)]
    table = (
        text("SELECT * FROM (VALUES ('org-1', 'a', 1), ('org-1', 'it''s', 2), ('org-2', 'b', 3)) AS t(o, k, n)")
        .columns(o=String(), k=String(), n=Integer())
        .subquery()
    )
    try:
        with engine.connect() as connection:
            statements = set()
            for batch in (keys, keys[:1], []):
                wanted = unnested("wanted", [("org", String()), ("key", String())], batch)
                query = select(table.c.n).join(wanted, and_(table.c.o == wanted.c.org, table.c.k == wanted.c.key))
                statements.add(str(query.compile(engine)))
                found = sorted(connection.execute(query).scalars())
                assert found == sorted(n for o, k, n in stored for key in batch if (o, k) == key)
            assert len(statements) == 1, "every batch runs the same statement text"
            counted = unnested("counted", [("n", Integer())], [(1,), (2,)])
            assert connection.execute(select(func.sum(counted.c.n))).scalar_one() == 3
    finally:
        engine.dispose()


def test_unnested_arrays_travel_in_binary_with_each_item_processed(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    sent: list[object] = []
    sa_event.listen(engine, "before_cursor_execute", lambda *args: sent.extend(args[3].values()))
    paris = dt.timezone(dt.timedelta(hours=1))
    rows = [
        ("a", dt.datetime(2026, 11, 24, 13, 0, tzinfo=paris)),
        (None, None),
        ("ü'\"{}", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
    ]
    try:
        with engine.connect() as connection:
            for batch in (rows, []):
                given = unnested("given", [("name", String()), ("at", UTCDateTime())], batch)
                back = connection.execute(select(given.c.name, given.c.at)).all()
                # UTCDateTime's own processing still applies to each item: Paris 13:00 is 12:00 UTC
                assert [tuple(row) for row in back] == [(n, at and at.astimezone(dt.UTC)) for n, at in batch]
        assert sent and all(isinstance(value, BinaryList) for value in sent)
    finally:
        engine.dispose()


def _twin(name: str) -> Table:
    """A table of every kind of column the services insert in batches."""
    return Table(
        name,
        Base.metadata,
        Column("id", String(36), primary_key=True),
        Column("org_id", String(36), nullable=False),
        Column("count", Integer, nullable=True),
        Column("active", Boolean, nullable=False, default=True),
        Column("details", JSON, nullable=True),
        Column("at", UTCDateTime, nullable=True),
        Column("kind", String(20), default="plain"),
        Column("token", String(36), default=lambda: "made-" + uuid.uuid4().hex[:8]),
        Column("note", String(20), server_default="from the server"),
    )


def test_rows_inserted_as_arrays_are_those_sqlalchemy_inserts(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    arrays, rows = _twin("inserted_as_arrays"), _twin("inserted_row_by_row")
    statements: list[str] = []
    sa_event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    paris = dt.timezone(dt.timedelta(hours=1))
    given = [
        {"id": "a", "org_id": "o", "count": 3, "active": False, "details": {"ü": [1, None, "x"]},
         "at": dt.datetime(2026, 11, 24, 13, tzinfo=paris)},
        {"id": "b", "org_id": "o", "count": None, "active": True, "details": None, "at": None},
        {"id": "it's", "org_id": "o\"{}", "count": -(2**31), "active": True, "details": [],
         "at": dt.datetime.now(dt.UTC)},
    ]  # fmt: skip
    try:
        for table in (arrays, rows):
            table.create(engine)
        factory = make_session_factory(engine)
        with session_scope(factory) as session:
            insert_rows(session, arrays, given)
            insert_rows(session, arrays, [{**given[0], "id": "c"}])
            insert_rows(session, arrays, [])
            session.execute(insert(rows), [*given, {**given[0], "id": "c"}])
        with session_scope(factory) as session:
            read = [[row._asdict() for row in session.execute(select(t).order_by(t.c.id))] for t in (arrays, rows)]
        tokens = [row.pop("token") for row in read[0]] + [row.pop("token") for row in read[1]]
        assert read[0] == read[1]
        assert all(token.startswith("made-") for token in tokens) and len(set(tokens)) == 8, "called for each row"
        assert all(row["note"] == "from the server" and row["kind"] == "plain" for row in read[0])
        by_arrays = [s for s in statements if s.startswith("INSERT INTO inserted_as_arrays")]
        assert len(by_arrays) == 2 and len(set(by_arrays)) == 1, "one statement per call, one text for every size"
        with pytest.raises(IntegrityError), session_scope(factory) as session:
            insert_rows(session, arrays, [{**given[1], "id": "d"}, {**given[1], "id": "a"}])
        with pytest.raises(ValueError, match="no column colour"), session_scope(factory) as session:
            insert_rows(session, arrays, [{**given[1], "colour": "red"}])
    finally:
        for table in (arrays, rows):
            table.drop(engine, checkfirst=True)
            Base.metadata.remove(table)
        engine.dispose()


def test_a_default_that_reads_the_insert_context_gets_it_from_sqlalchemy_s_insert(postgres_url: str) -> None:
    """Only SQLAlchemy's insert has an execution context to give such a default; the rows go
    in through it, with the values it computes, rather than with None."""
    engine = make_engine(postgres_url)
    table = Table(
        "doubled_by_default",
        Base.metadata,
        Column("id", String(36), primary_key=True),
        Column("count", Integer, nullable=False),
        Column("doubled", Integer, default=lambda context: context.get_current_parameters()["count"] * 2),
        Column("at", UTCDateTime, default=utcnow),
    )
    statements: list[str] = []
    sa_event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        table.create(engine)
        factory = make_session_factory(engine)
        with session_scope(factory) as session:
            insert_rows(session, table, [{"id": "a", "count": 2}, {"id": "b", "count": 5}])
        with session_scope(factory) as session:
            rows = session.execute(select(table.c.id, table.c.doubled, table.c.at).order_by(table.c.id)).all()
        assert [(row.id, row.doubled) for row in rows] == [("a", 4), ("b", 10)]
        assert all(row.at is not None for row in rows)
        assert not any("unnest" in statement for statement in statements if "doubled_by_default" in statement)
    finally:
        table.drop(engine, checkfirst=True)
        Base.metadata.remove(table)
        engine.dispose()


def test_the_inbox_on_postgresql_keeps_each_event_id_once_under_one_statement_text(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    InboxMessage.__table__.create(engine, checkfirst=True)
    statements: list[str] = []
    sa_event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        factory = make_session_factory(engine)
        with session_scope(factory) as session:
            assert inbox.record_many(session, [("e-1", "Ping"), ("e-2", "Ping"), ("e-1", "Ping")]) == {"e-1", "e-2"}
        with session_scope(factory) as session:
            assert inbox.record_many(session, [("e-2", "Ping"), ("e-3", "Pong")]) == {"e-3"}
            assert inbox.record(session, "e-3", "Pong") is False  # seen in this very transaction
        with session_scope(factory) as session:
            kept = session.execute(select(InboxMessage.event_id, InboxMessage.event_type)).all()
        assert sorted(kept) == [("e-1", "Ping"), ("e-2", "Ping"), ("e-3", "Pong")]
        inserts = {statement for statement in statements if statement.startswith("INSERT INTO inbox")}
        assert len(inserts) == 1, "batches of any size share one statement"
        assert "%(ids)b::varchar[]" in inserts.pop(), "the ids travel as a binary array"
    finally:
        InboxMessage.__table__.drop(engine)
        engine.dispose()


def _location(org: str, n: int) -> dict[str, object]:
    return {"org_id": org, "parent_id": None, "location_id": str(uuid.uuid4()), "name": f"L{n}", "code": f"C{n}"}


def test_the_outbox_on_postgresql_keeps_each_batch_in_order_under_one_statement_text(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    OutboxMessage.__table__.create(engine, checkfirst=True)
    statements: list[str] = []
    sa_event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    org = "org-1"
    # names outside ASCII: the bodies travel as a binary array and must come back byte for byte
    located = [{**_location(org, n), "name": f"Zürich 東京 ✓ {n}"} for n in range(120)]
    events = [Event("LocationCreated", location, org, "/identity") for location in located]
    try:
        factory = make_session_factory(engine)
        with session_scope(factory) as session, correlation("request-7"):
            assert outbox.add_many(session, events[:1]) == 1
            assert outbox.add_many(session, events[1:100], request_ids=[f"cause-{n}" for n in range(1, 100)]) == 99
        with session_scope(factory) as session:
            assert outbox.add_many(session, events[100:]) == 20
        with session_scope(factory) as session:
            stored = session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()
            assert [row.event_id for row in stored] == [event.id for event in events]
            assert [row.body for row in stored] == [event.to_json() for event in events]
            assert {row.routing_key for row in stored} == {"identity.LocationCreated"}
            assert [row.headers["x-request-id"] for row in stored[:3]] == ["request-7", "cause-1", "cause-2"]
            assert stored[100].headers == {"x-request-id": events[100].id}
            assert all(row.publish_after is None and row.attempts == 0 for row in stored)
            assert all(a.created_at <= b.created_at for a, b in itertools.pairwise(stored))
        inserts = {statement for statement in statements if statement.startswith("INSERT INTO outbox")}
        assert len(inserts) == 2, "one text that wakes the relay and one that does not, whatever the batch size"
        # psycopg escapes a body sent in text byte by byte in Python: 100 bodies cost 3.7 ms, 0.03 in binary
        assert all("%(bodies)b::bytea[]" in statement for statement in inserts)
    finally:
        OutboxMessage.__table__.drop(engine)
        engine.dispose()


def test_a_session_cursor_fails_as_a_statement_does_and_a_lost_connection_is_dropped(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    factory = make_session_factory(engine)
    with factory() as session:
        with session_cursor(session) as cursor:
            cursor.execute("CREATE TEMP TABLE once (n int PRIMARY KEY)")
            cursor.execute("INSERT INTO once VALUES (1)")
        with pytest.raises(IntegrityError), session_cursor(session) as cursor:
            cursor.execute("INSERT INTO once VALUES (1)")
        session.rollback()
    before = lost_connections()
    with factory() as session:
        pid = int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
        terminate(postgres_url, pid)
        with pytest.raises(DBAPIError) as failed, session_cursor(session) as cursor:
            cursor.execute("SELECT 1")
        assert failed.value.connection_invalidated
    assert lost_connections() - before == 1
    assert backend_pid(engine) != pid  # the pool hands out a new connection
    engine.dispose()


def test_a_batch_of_keys_is_looked_up_through_the_index_of_a_growing_table(postgres_url: str) -> None:
    """100 keys in a table of a few thousand rows: index probes, not a sequential scan, which
    PostgreSQL's spinning-disk default for a random page read would choose."""
    engine = make_engine(postgres_url)
    keys = [str(uuid.uuid4()) for _ in range(100)]
    explain = text("EXPLAIN SELECT event_id FROM keyed WHERE event_id IN :keys")
    with engine.begin() as connection:
        assert connection.scalar(text("SELECT current_setting('random_page_cost')")) == "1.1"
        connection.execute(text("CREATE TEMP TABLE keyed (event_id varchar(200) PRIMARY KEY, body text)"))
        connection.execute(text("INSERT INTO keyed SELECT gen_random_uuid()::text, repeat('x', 300)"
                                " FROM generate_series(1, 4000)"))  # fmt: skip
        connection.execute(text("ANALYZE keyed"))
        explained = connection.execute(explain.bindparams(bindparam("keys", expanding=True)), {"keys": keys})
        plan = "\n".join(row[0] for row in explained)
    assert "Seq Scan" not in plan and "keyed_pkey" in plan, plan
    engine.dispose()


def test_planner_settings_leave_the_callers_own_options_alone() -> None:
    from lms_common.db import _with_planner_settings

    assert _with_planner_settings({}) == {"options": "-c random_page_cost=1.1"}
    assert _with_planner_settings({"options": "-c statement_timeout=5000"}) == {
        "options": "-c statement_timeout=5000 -c random_page_cost=1.1"
    }
    assert _with_planner_settings({"options": "-c random_page_cost=2"}) == {"options": "-c random_page_cost=2"}
