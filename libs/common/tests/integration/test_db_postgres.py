"""On PostgreSQL: pooled connections whose server side went away are replaced before use, and
read-only sessions run without a transaction."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from lms_common import metrics
from lms_common.db import make_engine, make_read_session_factory, make_session_factory, session_scope


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
