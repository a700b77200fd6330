"""On PostgreSQL: the worker's planner statistics, analyzed as tables are first filled and grow."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from lms_common.db import make_engine, make_session_factory
from lms_common.statistics import StatisticsKeeper


@pytest.fixture()
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)  # one backend: its counts are flushed
    yield engine
    engine.dispose()


def _table(engine: Engine, rows: int) -> str:
    name = f"grown_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.execute(text(f'CREATE TABLE "{name}" (id integer PRIMARY KEY)'))
    _add(engine, name, 0, rows)
    return name


def _add(engine: Engine, table: str, start: int, rows: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(f'INSERT INTO "{table}" SELECT generate_series(CAST(:a AS integer), CAST(:b AS integer))'),
            {"a": start, "b": start + rows - 1},
        )
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_stat_force_next_flush()"))


def _analyzed(engine: Engine, table: str) -> bool:
    with engine.begin() as connection:
        query = text("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = :t")
        return bool(connection.scalar(query, {"t": table}))


def test_a_table_with_rows_and_no_statistics_is_analyzed_at_once(engine: Engine) -> None:
    """Ten rows are under the threshold for a table that has statistics, but a table that has
    none is planned on guesses: the first look analyzes it."""
    table = _table(engine, 10)
    keeper = StatisticsKeeper([table], lock=7, clock=lambda: 0.0)
    with make_session_factory(engine).begin() as session:
        assert keeper.refresh(session) == [table]
    assert _analyzed(engine, table)


def test_young_tables_are_looked_at_every_half_second_and_grown_ones_every_five(engine: Engine) -> None:
    small, large = _table(engine, 10), _table(engine, 5000)
    now = [100.0]
    keeper = StatisticsKeeper([small, large], lock=7, clock=lambda: now[0])
    factory = make_session_factory(engine)
    with factory.begin() as session:
        assert sorted(keeper.refresh(session)) == sorted([small, large])
    _add(engine, small, 10, 20)  # 30 rows: changed since, under a thousand
    now[0] += 0.6
    with factory.begin() as session:
        assert keeper.refresh(session) == []  # under the threshold: looked at, not analyzed
    now[0] += 0.6
    with factory.begin() as session:
        keeper.refresh(session)
    assert keeper._next_check == pytest.approx(now[0] + 0.5)  # still young: looked at again soon

    _add(engine, small, 30, 2000)
    now[0] += 0.6
    with factory.begin() as session:
        assert keeper.refresh(session) == [small]  # grown past the threshold between two looks
    _add(engine, large, 5000, 100)  # changed, but a table of thousands: the usual interval
    now[0] += 0.6
    with factory.begin() as session:
        assert keeper.refresh(session) == []
    assert keeper._next_check == pytest.approx(now[0] + 5.0)


def test_an_empty_table_never_analyzed_is_looked_at_again_soon(engine: Engine) -> None:
    """A worker's first batch finds its tables empty; a burst fills them within seconds."""
    table = _table(engine, 0)
    keeper = StatisticsKeeper([table], lock=7, clock=lambda: 50.0)
    with make_session_factory(engine).begin() as session:
        assert keeper.refresh(session) == []
    assert keeper._next_check == pytest.approx(50.5)
