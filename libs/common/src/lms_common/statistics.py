"""Planner statistics kept fresh by the workers while their tables grow.

A set-based batch looks up what its events already did by joining their keys to the tables
(users by email, runs and effects by natural key, a report's assignments by learner). Planned
against statistics older than the rows (a table never analyzed, autovacuum off, or a burst
growing the tables faster than autovacuum's one-minute naptime), PostgreSQL believes a table
holds a handful of rows and reads it whole: a cost per batch that grows with the table. Seen
here: identity read 18,540 users to find 100 emails at 18,640 users; automation scanned 891
pages for the runs of 100 onboardings at 10,034 runs; reporting's compliance report of 12,649
assignments took 105 s as nested loops, and tens of milliseconds once analyzed.

So a worker analyzes the tables its lookups read once they changed by autovacuum's own
threshold since their last analyze (50 rows and a tenth of the table), looking at most every
few seconds, from within a batch's transaction.
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
