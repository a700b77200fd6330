"""Database plumbing: UTC timestamps, units of work, URLs and SQLite tuning."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from lms_common.db import (
    PING_AFTER_IDLE_SECONDS,
    _ping_if_suspect,
    insert_rows,
    make_engine,
    make_read_session_factory,
    normalise_url,
    session_scope,
)
from lms_common.inbox import InboxMessage

PARIS_SUMMER = timezone(timedelta(hours=2))


def count_inbox(factory: sessionmaker[Session]) -> int:
    with session_scope(factory) as session:
        return session.scalar(select(func.count()).select_from(InboxMessage)) or 0


class WorkFailedError(Exception):
    pass


def test_naive_datetime_is_refused(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError, match="naive datetimes are not stored"), session_scope(session_factory) as s:
        s.add(InboxMessage(event_id="e1", event_type="T", handled_at=datetime(2026, 1, 1, 10)))
        s.flush()


def test_timestamp_comes_back_aware_in_utc(session_factory: sessionmaker[Session]) -> None:
    stored = datetime(2026, 7, 1, 12, 30, 15, 123456, tzinfo=PARIS_SUMMER)
    with session_scope(session_factory) as session:
        session.add(InboxMessage(event_id="e1", event_type="T", handled_at=stored))
    with session_scope(session_factory) as session:
        loaded = session.scalars(select(InboxMessage.handled_at)).one()
    assert loaded.tzinfo is UTC
    assert loaded == stored
    assert loaded.hour == 10


def test_insert_rows_on_sqlite_inserts_as_sqlalchemy_does(session_factory: sessionmaker[Session]) -> None:
    table = InboxMessage.__table__
    stored = datetime(2026, 7, 1, 12, 30, tzinfo=PARIS_SUMMER)
    with session_scope(session_factory) as session:
        insert_rows(session, table, [{"event_id": "e1", "event_type": "T", "handled_at": stored}])
        insert_rows(session, table, [{"event_id": "e2", "event_type": "T"}])
        insert_rows(session, table, [])
    with session_scope(session_factory) as session:
        rows = session.execute(select(InboxMessage.event_id, InboxMessage.handled_at).order_by("event_id")).all()
    assert rows[0] == ("e1", stored)
    assert rows[1].handled_at is not None, "the column's default fills what the rows leave out"


def test_insert_rows_names_a_column_the_table_lacks(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="inbox has no column colour"), session_scope(session_factory) as session:
        insert_rows(session, InboxMessage.__table__, [{"event_id": "e1", "event_type": "T", "colour": "red"}])
    assert count_inbox(session_factory) == 0


def test_session_scope_commits_a_block_that_ends_normally(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        session.add(InboxMessage(event_id="e1", event_type="T"))
    assert count_inbox(session_factory) == 1


def test_session_scope_rolls_back_a_block_that_raises(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(WorkFailedError), session_scope(session_factory) as session:
        session.add(InboxMessage(event_id="e1", event_type="T"))
        session.flush()
        raise WorkFailedError
    assert count_inbox(session_factory) == 0


def test_released_savepoint_is_rolled_back_with_its_unit_of_work(session_factory: sessionmaker[Session]) -> None:
    # On SQLite the savepoint is the first statement: it must not become the outer transaction.
    with pytest.raises(WorkFailedError), session_scope(session_factory) as session:
        with session.begin_nested():
            session.add(InboxMessage(event_id="e1", event_type="T"))
        raise WorkFailedError
    assert count_inbox(session_factory) == 0


def test_rolled_back_savepoint_keeps_the_rest_of_the_unit_of_work(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        session.add(InboxMessage(event_id="kept", event_type="T"))
        savepoint = session.begin_nested()
        session.add(InboxMessage(event_id="dropped", event_type="T"))
        session.flush()
        savepoint.rollback()
    with session_scope(session_factory) as session:
        assert session.scalars(select(InboxMessage.event_id)).all() == ["kept"]


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://lms:s3cret@db:5432/lms",
        "postgresql+psycopg2://lms:s3cret@db:5432/lms",
        "postgresql+pg8000://db/lms",
    ],
)
def test_normalise_url_uses_psycopg_for_postgresql(given: str) -> None:
    url = make_url(normalise_url(given))
    assert url.get_dialect().driver == "psycopg"
    assert (url.host, url.database) == ("db", "lms")


def test_normalise_url_keeps_the_password_whole() -> None:
    assert make_url(normalise_url("postgresql+psycopg2://lms:p%40ss%2Fw@db/lms")).password == "p@ss/w"


def test_normalise_url_leaves_sqlite_alone() -> None:
    assert normalise_url("sqlite:///var/catalog.sqlite3") == "sqlite:///var/catalog.sqlite3"


def test_new_sqlite_file_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'new.sqlite3'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 10000
    engine.dispose()
    assert (tmp_path / "var" / "new.sqlite3").is_file()


# --- disconnect handling of pooled PostgreSQL connections --------------------------------------


class FakeConnection:
    """A DBAPI connection over one end of a socket pair; the other end plays the server."""

    def __init__(self) -> None:
        self.ours, self.server = socket.socketpair()
        self.pings = 0
        self.server_gone = False

    def fileno(self) -> int:
        return self.ours.fileno()

    def cursor(self) -> FakeConnection:
        return self

    def execute(self, _sql: str) -> None:
        self.pings += 1
        if self.server_gone:
            raise OSError("server closed the connection unexpectedly")

    def close(self) -> None:
        pass


class FakeRecord:
    def __init__(self, idle_seconds: float | None = None) -> None:
        self.info: dict[str, float] = {}
        if idle_seconds is not None:
            self.info["checked_in_at"] = time.monotonic() - idle_seconds


def test_a_quiet_connection_used_recently_is_not_pinged() -> None:
    connection = FakeConnection()
    _ping_if_suspect(connection, FakeRecord(idle_seconds=1), None)
    assert connection.pings == 0


def test_a_connection_idle_for_long_is_pinged() -> None:
    connection = FakeConnection()
    _ping_if_suspect(connection, FakeRecord(idle_seconds=PING_AFTER_IDLE_SECONDS + 1), None)
    assert connection.pings == 1


def test_a_connection_the_server_closed_is_replaced() -> None:
    connection = FakeConnection()
    connection.server.close()
    connection.server_gone = True
    with pytest.raises(DisconnectionError):
        _ping_if_suspect(connection, FakeRecord(idle_seconds=1), None)


def test_a_connection_the_server_spoke_on_is_pinged_and_kept_when_it_answers() -> None:
    connection = FakeConnection()
    connection.server.send(b"N")  # e.g. a notice
    _ping_if_suspect(connection, FakeRecord(idle_seconds=1), None)
    assert connection.pings == 1


def test_a_read_only_session_reads_committed_rows(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        session.add(InboxMessage(event_id="e1", event_type="T"))
    reads = make_read_session_factory(session_factory.kw["bind"])
    with session_scope(reads) as session:
        assert session.scalars(select(InboxMessage.event_id)).all() == ["e1"]


def test_a_read_only_session_refuses_to_write(session_factory: sessionmaker[Session]) -> None:
    reads = make_read_session_factory(session_factory.kw["bind"])
    with pytest.raises(RuntimeError, match="cannot write"), session_scope(reads) as session:
        session.add(InboxMessage(event_id="e1", event_type="T"))
    assert count_inbox(session_factory) == 0
