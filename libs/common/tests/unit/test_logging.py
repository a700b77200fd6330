"""Log lines: the service's name on each, and the correlation id of the work in hand."""

from __future__ import annotations

import io
import json
import threading

import pytest
import structlog

from lms_common.context import begin_correlation, correlation, end_correlation
from lms_common.logging import configure_logging


@pytest.fixture
def lines():  # type: ignore[no-untyped-def]
    configure_logging("catalog", "INFO")
    out = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(out))  # the processors stay

    def written() -> list[dict[str, object]]:
        return [json.loads(line) for line in out.getvalue().splitlines()]

    yield written
    structlog.reset_defaults()


def test_every_line_names_the_service_whichever_thread_writes_it(lines) -> None:  # type: ignore[no-untyped-def]
    log = structlog.get_logger("test")
    log.info("from the main thread")
    helper = threading.Thread(target=lambda: log.info("from a handler thread"))
    helper.start()
    helper.join()

    assert [(line["event"], line["service"]) for line in lines()] == [
        ("from the main thread", "catalog"),
        ("from a handler thread", "catalog"),
    ]


def test_a_line_carries_the_correlation_id_in_hand_and_only_then(lines) -> None:  # type: ignore[no-untyped-def]
    log = structlog.get_logger("test")
    with correlation("outer"):
        log.info("in outer")
        with correlation("inner"):
            log.info("in inner")
        log.info("outer again")
    log.info("after")
    token = begin_correlation("request-1")
    log.info("in a request")
    end_correlation(token)
    log.info("after the request")

    assert [(line["event"], line.get("correlation_id")) for line in lines()] == [
        ("in outer", "outer"),
        ("in inner", "inner"),
        ("outer again", "outer"),
        ("after", None),
        ("in a request", "request-1"),
        ("after the request", None),
    ]


def test_a_correlation_id_given_on_the_line_is_kept(lines) -> None:  # type: ignore[no-untyped-def]
    with correlation("in hand"):
        structlog.get_logger("test").info("explicit", correlation_id="given")

    assert lines()[0]["correlation_id"] == "given"
