"""Inserting many rows at once: COPY on PostgreSQL, an INSERT executed for many rows elsewhere.

The reporting worker inserts every event it consumes into the log, and most of them create a
projection row or two: COPY costs the worker a fraction of the CPU of an INSERT per row (which
psycopg sends through a pipeline, adapting each row's parameters in Python).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Table, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from lms_common.db import is_postgres


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (each with the same columns) in the session's transaction."""
    if not rows:
        return
    if is_postgres(session):
        _copy(session, table, rows)
    else:
        session.execute(insert(table), list(rows))


def _copy(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    names = list(rows[0])
    encoders = [_encoder(table.c[name].type) for name in names]
    sql = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    connection = session.connection()
    driver: Any = connection.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row([encode(row[name]) for name, encode in zip(names, encoders, strict=True)])
    except driver.Error as exc:
        # As SQLAlchemy reports a failed statement, so that a lost connection reads as one.
        lost = connection.dialect.is_disconnect(exc, driver, None)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(sql, None, exc, type(exc), connection_invalidated=lost) from exc


def _encoder(column_type: Any) -> Callable[[Any], Any]:
    """JSON columns take the text SQLAlchemy would have sent (``None`` too is JSON's null)."""
    return json.dumps if isinstance(column_type, JSON) else _same


def _same(value: Any) -> Any:
    return value
