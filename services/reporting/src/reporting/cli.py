"""Reporting's command line: the shared commands, plus ``rebuild``, and the worker's metrics."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import structlog

from lms_common.db import make_engine, make_session_factory
from lms_common.logging import configure_logging
from reporting import metrics
from reporting.rebuild import rebuild
from reporting.service import SERVICE

log = structlog.get_logger("reporting.cli")


def run_rebuild() -> int:
    """Replay the event log into fresh projections and swap them in."""
    settings = SERVICE.settings()
    configure_logging(SERVICE.name, settings.log_level)
    engine = make_engine(settings.database_url)
    try:
        done = rebuild(make_session_factory(engine))
    finally:
        engine.dispose()
    print(f"rebuilt generation {done.generation} from {done.events} events (was {done.previous})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``rebuild`` here; every other command is the shared runtime's."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["rebuild"]:
        return run_rebuild()
    if args[:1] == ["worker"]:
        settings = SERVICE.settings()
        metrics.install(make_session_factory(make_engine(settings.database_url)))
    return SERVICE.main(args)
