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
few seconds, from within a batch's transaction. A table that has rows but was never analyzed
is analyzed at once, and while a table is young (never analyzed, or under a thousand rows when
last analyzed) the worker looks every half second, whether or not the server has counted the
latest batches' rows yet (it publishes them up to a second late): a burst takes a new table
from a handful of rows to thousands within one interval, and on no statistics at all the
planner took an index on the organization alone for a lookup by full key (automation read
every run of the organization for each of 200 keys, 315 ms for one statement at 2,200 runs).
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
YOUNG_CHECK_SECONDS = 0.5
YOUNG_ROWS = 1000

# Each table with whether it is stale and whether it is young (reltuples is -1 until a table's
# first analyze).
TABLE_STATES = text(
    """
    SELECT s.relname,
           s.n_mod_since_analyze > CASE WHEN c.reltuples < 0 THEN 0 ELSE 50 + 0.1 * c.reltuples END,
           c.reltuples < :young_rows
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.schemaname = current_schema() AND s.relname = ANY(:tables)
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
        young_interval: float = YOUNG_CHECK_SECONDS,
    ):
        self.tables = sorted(tables)
        self.lock = lock
        self.clock = clock
        self.interval = interval
        self.young_interval = young_interval
        self._next_check = 0.0

    def refresh(self, session: Session) -> list[str]:
        """Analyze the stale tables (looking at most once per ``interval``); the tables analyzed."""
        now = self.clock()
        if now < self._next_check or not is_postgres(session):
            return []
        states = session.execute(TABLE_STATES, {"tables": self.tables, "young_rows": YOUNG_ROWS}).all()
        young = any(is_young for _, _, is_young in states)
        self._next_check = now + (self.young_interval if young else self.interval)
        stale = [table for table, is_stale, _ in states if is_stale]
        if not stale or not session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": self.lock}):
            return []
        for table in stale:  # names from the catalog, and ours
            session.execute(text(f'ANALYZE "{table}"'))
        return stale
