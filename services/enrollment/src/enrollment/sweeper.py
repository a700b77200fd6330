"""The overdue sweep inside every worker process, so it needs no scheduler of its own.

It runs every quarter of an hour: organizations' days begin at different hours (UTC), and an
assignment is overdue from its organization's midnight. The sweep is idempotent and takes its
rows with ``SKIP LOCKED``, so the sweeps of several worker replicas never publish one
AssignmentOverdue twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session, sessionmaker

from enrollment.assignments import sweep_overdue
from lms_common.db import session_scope, utcnow

log = structlog.get_logger("enrollment.sweeper")

EVERY_SECONDS = 900.0


@dataclass
class OverdueSweeper:
    factory: sessionmaker[Session]
    stop: threading.Event
    every_seconds: float = EVERY_SECONDS

    def sweep_once(self) -> int:
        with session_scope(self.factory) as session:
            return sweep_overdue(session, utcnow())

    def run(self) -> None:
        while not self.stop.wait(self.every_seconds):
            try:
                count = self.sweep_once()
            except Exception:
                log.exception("overdue sweep failed; trying again next time")
                continue
            if count:
                log.info("assignments newly overdue", count=count)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="overdue-sweeper", daemon=True)
        thread.start()
        return thread
