"""`python -m enrollment api|worker|relay|migrate|topology|revision|sweep-overdue`."""

import sys

from enrollment.service import SERVICE


def sweep_overdue() -> int:
    """The daily sweep: AssignmentOverdue once per assignment past its due date."""
    from datetime import UTC, datetime

    from enrollment.assignments import sweep_overdue as sweep
    from lms_common.db import make_engine, make_session_factory, session_scope

    settings = SERVICE.settings()
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        count = sweep(session, datetime.now(UTC).date())
    engine.dispose()
    print(f"{count} assignments newly overdue")
    return 0


if __name__ == "__main__":
    raise SystemExit(sweep_overdue() if sys.argv[1:2] == ["sweep-overdue"] else SERVICE.main())
