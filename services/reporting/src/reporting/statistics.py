"""Planner statistics kept fresh by the worker while the projections grow.

The reports join the projections: the compliance report joins every assignment to its learner
and looks for a newer cycle of it. Planned against statistics older than the rows (a table
never analyzed, autovacuum off, or a burst of onboardings growing the tables faster than
autovacuum's one-minute naptime), PostgreSQL believes they hold a handful of rows and joins
them with nested loops over the whole tables: the compliance report of 12,649 assignments took
105 s (160 million rows compared), and tens of milliseconds once analyzed. So the worker
analyzes a table itself once it changed by autovacuum's own threshold since its last analyze
(50 rows and a tenth of its size), looking at most every few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.orm import Session

from lms_common.db import is_postgres

CHECK_SECONDS = 5.0
# One analyzer at a time among the workers; the others skip rather than wait for its commit.
ADVISORY_LOCK = 0x5245504F  # "REPO"

STALE = text(
    """
    SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.schemaname = current_schema() AND s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)
    ORDER BY s.relname
    """
)


class StatisticsKeeper:
    """Analyzes the tables that changed enough, from within a batch's transaction."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, interval: float = CHECK_SECONDS):
        self.clock = clock
        self.interval = interval
        self._next_check = 0.0

    def refresh(self, session: Session) -> list[str]:
        """Analyze the stale tables (at most once per ``interval``); the tables analyzed."""
        now = self.clock()
        if now < self._next_check or not is_postgres(session):
            return []
        self._next_check = now + self.interval
        stale = list(session.scalars(STALE))
        if not stale or not session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK}):
            return []
        for table in stale:  # names from the catalog, quoted all the same
            session.execute(text(f'ANALYZE "{table}"'))
        return stale


KEEPER = StatisticsKeeper()
