"""JSON log lines (structlog): one per request and one per handled message.

Every line carries the service name and, while work is in hand, its correlation id.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from lms_common.context import add_correlation_id

Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]


def add_service(service: str) -> Processor:
    """structlog processor: the service's name on every line, whichever thread writes it (a
    value bound in structlog's context would stay with the thread that bound it)."""

    def processor(_logger: Any, _method: str, line: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        line.setdefault("service", service)
        return line

    return processor


def configure_logging(service: str, level: str = "INFO") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_service(service),
            add_correlation_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library: keep their warnings, as plain lines on stderr.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
    logging.getLogger("pika").setLevel(logging.WARNING if numeric <= logging.INFO else numeric)
