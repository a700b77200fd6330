"""Planner statistics kept fresh by the worker while the users grow.

A provisioning run looks its people up by organization and email or employee id. Planned
against statistics older than the table (never analyzed, autovacuum off, or a burst of
onboardings growing it faster than autovacuum's one-minute naptime), PostgreSQL reads every
user of the organization by ``org_id`` alone and filters them: 18,540 rows for 100 emails at
18,640 users, a cost per batch that grows with the table. Analyzed, the lookup of 100 emails
among 50,000 users probes the unique indexes of (org, email) and (org, employee id). So
the worker analyzes a table itself once it changed by autovacuum's own threshold since its
last analyze (50 rows and a tenth of its size), looking at most every few seconds.

The class is reporting's ``reporting.statistics`` word for word: one module for
``lms_common`` to hold once every service wants it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import String

from lms_common.db import is_postgres

CHECK_SECONDS = 5.0

STALE = text(
    """
    SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.schemaname = current_schema() AND s.relname = ANY(:tables)
      AND s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)
    ORDER BY s.relname
    """
).bindparams(bindparam("tables", type_=ARRAY(String)))


class StatisticsKeeper:
    """Analyzes those of ``tables`` that changed enough, from within a batch's transaction.

    ``lock`` is an advisory lock key: one worker analyzes at a time, the others skip rather
    than wait for its commit (``ANALYZE`` holds its table's lock until then).
    """

    def __init__(
        self,
        tables: Collection[str],
        lock: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = CHECK_SECONDS,
    ):
        self.tables = sorted(tables)
        self.lock = lock
        self.clock = clock
        self.interval = interval
        self._next_check = 0.0

    def refresh(self, session: Session) -> list[str]:
        """Analyze the stale tables (looking at most once per ``interval``); the tables analyzed."""
        now = self.clock()
        if now < self._next_check or not is_postgres(session):
            return []
        self._next_check = now + self.interval
        stale = list(session.scalars(STALE, {"tables": self.tables}))
        if not stale or not session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": self.lock}):
            return []
        for table in stale:  # names from the catalog, and ours
            session.execute(text(f'ANALYZE "{table}"'))
        return stale


# What a provisioning run reads, besides the few organizations, roles and locations.
KEEPER = StatisticsKeeper(("users", "role_assignments"), lock=0x49444E54)  # "IDNT"
