"""Answering a report as JSON or, with ``Accept: text/csv``, as a streamed CSV file.

The CSV body is produced by a generator reading through a server-side cursor in its own
session, a chunk of rows at a time, so an export of any size runs in constant memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from flask import Response, request, stream_with_context
from sqlalchemy.orm import Session

from lms_common.api import runtime
from lms_common.db import session_scope

CSV = "text/csv"
FLUSH_BYTES = 64 * 1024


def wants_csv() -> bool:
    """Whether the caller asked for CSV rather than JSON."""
    return request.accept_mimetypes.best_match(["application/json", CSV]) == CSV


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def csv_chunks(columns: list[str], rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The CSV text of ``rows``, in pieces of about 64 KiB."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_value(row.get(name)) for name in columns])
        if buffer.tell() >= FLUSH_BYTES:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_table_chunks(columns: list[str], batches: Iterable[Sequence[Sequence[Any]]]) -> Iterator[str]:
    """The CSV text of rows given as value tuples in ``columns`` order, a batch at a time.

    ``None`` is written as an empty field (as :func:`csv_chunks` writes it); each batch is
    written by the csv module in one call.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for batch in batches:
        writer.writerows(batch)
        if buffer.tell() >= FLUSH_BYTES:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_response(
    name: str, columns: list[str], as_of: str | None, rows: Callable[[Session], Iterable[Mapping[str, Any]]]
) -> Response:
    """Stream ``rows(session)`` as CSV; the session lives as long as the response body."""
    return csv_stream(name, as_of, lambda session: csv_chunks(columns, rows(session)))


def csv_stream(name: str, as_of: str | None, chunks: Callable[[Session], Iterable[str]]) -> Response:
    """Stream the CSV text ``chunks(session)``; the session lives as long as the response body."""
    factory = runtime().session_factory

    def generate() -> Iterator[str]:
        with session_scope(factory) as session:
            yield from chunks(session)

    response = Response(stream_with_context(generate()), mimetype=CSV)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    response.headers["X-As-Of"] = as_of or ""
    return response


def as_of_header(as_of: str | None) -> dict[str, str]:
    return {"X-As-Of": as_of or ""}
