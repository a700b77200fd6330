"""ReadStatement on raw cursors: the same values as SQLAlchemy's own execution, keyset pages
that walk every row once, literal values and bound parameters processed by their types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, bindparam, insert, select

from lms_common.api import encode_cursor, keyset_page, keyset_params, keyset_statement
from lms_common.db import ReadStatement, UTCDateTime, make_engine, raw_reads
from lms_common.errors import Problem

metadata = MetaData()
things = Table(
    "raw_read_things",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(20)),
    Column("at", UTCDateTime()),
    Column("n", Integer),
    Column("note", String(50), nullable=True),
)
START = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
KEYS = (things.c.at, things.c.id)


def seed(engine: Engine, count: int = 7) -> None:
    metadata.create_all(engine)
    zone = timezone(timedelta(hours=2))  # stored in UTC whatever zone it is given in
    rows = [
        {"id": f"t{i}", "kind": "even" if i % 2 == 0 else "odd", "n": i, "note": None if i % 3 else f"note {i}",
         "at": (START + timedelta(minutes=i // 2)).astimezone(zone)}  # pairs share a time: the id breaks ties
        for i in range(count)
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(things), rows)


def core_rows(engine: Engine, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(statement, params)]


def check_reads_match_sqlalchemy(engine: Engine) -> None:
    seed(engine)
    query = select(things).where(things.c.kind == bindparam("kind"), things.c.n >= 1)  # a literal travels along
    statement = ReadStatement(query)
    with raw_reads(engine) as reads:
        found = statement.rows(reads, {"kind": "even"})
        assert found == core_rows(engine, query, {"kind": "even"})
        assert [row[0] for row in found] == ["t2", "t4", "t6"]
        assert all(row[2].tzinfo is UTC for row in found)
        assert statement.rows(reads, {"kind": "odd"}) == core_rows(engine, query, {"kind": "odd"})


def check_keyset_pages_walk_every_row_once(engine: Engine) -> None:
    seed(engine, count=11)
    first, rest = (ReadStatement(keyset_statement(select(things), KEYS, after=after)) for after in (False, True))
    seen: list[str] = []
    cursor = None
    with raw_reads(engine) as reads:
        for _ in range(10):
            statement = rest if cursor else first
            rows, cursor = keyset_page(statement.rows(reads, keyset_params(KEYS, 3, cursor)), 3, (2, 0))
            seen += [row[0] for row in rows]
            if cursor is None:
                break
    expected = core_rows(engine, select(things.c.id).order_by(*KEYS), {})
    assert seen == [row[0] for row in expected]
    assert len(seen) == 11


@pytest.fixture()
def engine(sqlite_url: str) -> Engine:
    return make_engine(sqlite_url)


def test_reads_match_sqlalchemy(engine: Engine) -> None:
    check_reads_match_sqlalchemy(engine)


def test_keyset_pages_walk_every_row_once(engine: Engine) -> None:
    check_keyset_pages_walk_every_row_once(engine)


def test_a_cursor_with_a_time_without_zone_is_refused() -> None:
    with pytest.raises(Problem) as refused:
        keyset_params(KEYS, 3, encode_cursor(["2026-11-24T03:00:00", "t1"]))
    assert refused.value.status == 400
