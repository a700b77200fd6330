"""Liveness and readiness: ``/healthz`` while the process lives, ``/readyz`` while its database
and the broker answer (a failing check names what is down; answers are cached for a moment so
a busy prober does not open a broker connection per probe)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pika
from sqlalchemy import Engine, text

from lms_common.messaging import connection_parameters

CACHE_SECONDS = 2.0


def check_database(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return f"database: {type(exc).__name__}"
    return None


def check_broker(url: str) -> str | None:
    try:
        params = connection_parameters(url, heartbeat=0, name="readiness-probe")
        params.socket_timeout = 2
        params.blocked_connection_timeout = 2
        pika.BlockingConnection(params).close()
    except Exception as exc:
        return f"broker: {type(exc).__name__}"
    return None


class Readiness:
    def __init__(self, checks: list[Callable[[], str | None]]):
        self.checks = checks
        self._answer: list[str] = []
        self._at = float("-inf")
        self._lock = threading.Lock()

    def problems(self) -> list[str]:
        with self._lock:
            if time.monotonic() - self._at >= CACHE_SECONDS:
                self._answer = [problem for check in self.checks if (problem := check()) is not None]
                self._at = time.monotonic()
            return list(self._answer)
