"""`python -m enrollment api|worker|relay|migrate|topology|revision|sweep-overdue`.

``worker`` also runs the job runner (large assignment batches) and the overdue sweep in
threads beside the consumer; ``sweep-overdue`` sweeps once, for a scheduler of your own.
"""

import sys
import threading

from enrollment.service import SERVICE


def sweep_overdue() -> int:
    """The overdue sweep: AssignmentOverdue once per assignment past its due date (in its
    organization's time zone; run hourly, since organizations' days begin at different hours)."""
    from enrollment.assignments import sweep_overdue as sweep
    from lms_common.db import make_engine, make_session_factory, session_scope, utcnow

    settings = SERVICE.settings()
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        count = sweep(session, utcnow())
    engine.dispose()
    print(f"{count} assignments newly overdue")
    return 0


def start_background_work() -> None:
    """The job runner and the overdue sweeper of this worker process: daemon threads, so they
    end with the consumer.

    A job in hand when the process stops is rolled back with the connection and taken again
    by another runner once its lease has passed.
    """
    from enrollment.jobs import JobRunner
    from enrollment.sweeper import OverdueSweeper
    from lms_common.db import make_engine, make_session_factory

    settings = SERVICE.settings()
    factory = make_session_factory(make_engine(settings.database_url))
    stop = threading.Event()
    JobRunner.for_database(factory, settings.database_url, stop).start()
    OverdueSweeper(factory, stop).start()


def main(argv: list[str]) -> int:
    if argv[:1] == ["sweep-overdue"]:
        return sweep_overdue()
    if argv[:1] == ["worker"]:
        start_background_work()
    return SERVICE.main(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
