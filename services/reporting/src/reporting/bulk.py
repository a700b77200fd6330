"""The reporting worker's hot statements on PostgreSQL, sent on the driver's own cursor.

The worker inserts every event it consumes into the log, and most of them create a projection
row or two: COPY (:func:`insert_rows`) costs the worker a fraction of the CPU of an INSERT per
row (which psycopg sends through a pipeline, adapting each row's parameters in Python). Other
databases get an INSERT executed for many rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Table, insert
from sqlalchemy.orm import Session

from lms_common.db import is_postgres, session_cursor


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
    with session_cursor(session) as cursor, cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([encode(row[name]) for name, encode in zip(names, encoders, strict=True)])


def _encoder(column_type: Any) -> Callable[[Any], Any]:
    """JSON columns take the text SQLAlchemy would have sent (``None`` too is JSON's null)."""
    return json.dumps if isinstance(column_type, JSON) else _same


def _same(value: Any) -> Any:
    return value
