"""The correlation id of the work in hand (an HTTP request or a consumed message).

It is taken from ``X-Request-ID`` (or generated) for requests and from the message headers for
events, appears in every log line, and travels on into the events that work publishes.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def current_correlation_id() -> str | None:
    return _correlation_id.get()


@contextmanager
def correlation(correlation_id: str) -> Iterator[None]:
    """Run the block with this correlation id, in logs and in published events."""
    token = _correlation_id.set(correlation_id)
    try:
        yield
    finally:
        _correlation_id.reset(token)


def begin_correlation(correlation_id: str) -> object:
    """Start a correlation that ends with :func:`end_correlation` (for request hooks)."""
    return _correlation_id.set(correlation_id)


def end_correlation(token: object) -> None:
    _correlation_id.reset(token)  # type: ignore[arg-type]


def add_correlation_id(_logger: Any, _method: str, line: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the correlation id in hand, read when a line is written.

    Binding it in structlog's context for every message instead (``bound_contextvars``) copied
    the whole context each time: a tenth of a busy worker's CPU, for lines mostly never written.
    """
    correlation_id = _correlation_id.get()
    if correlation_id is not None:
        line.setdefault("correlation_id", correlation_id)
    return line
