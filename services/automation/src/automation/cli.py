"""The command line: the shared runtime's commands, plus automation's own.

- ``python -m automation tick [--date YYYY-MM-DD] [--org ID ...]``: publish today's DailyTick
  (through the outbox) to every organization with a rule on it; running it twice a day is
  harmless (the tick's id is derived from organization and date).
- ``python -m automation webhooks [--once]``: send due CallWebhook deliveries.
- ``python -m automation dead-letters``: drain every service's dead-letter queue into the view.
- ``python -m automation worker`` also sends webhooks and drains dead letters in the background.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

import structlog

from automation import deadletters, ingress, webhooks
from automation.service import SERVICE
from lms_common.config import Settings
from lms_common.db import make_engine, make_session_factory, session_scope
from lms_common.logging import configure_logging

log = structlog.get_logger("automation.cli")

WEBHOOK_POLL_SECONDS = 1.0
DRAIN_EVERY_SECONDS = 30.0


def tick(settings: Settings, argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m automation tick", description="publish the daily tick")
    parser.add_argument("--date", type=date.fromisoformat, default=datetime.now(UTC).date())
    parser.add_argument("--org", action="append", help="only this organization (repeatable)")
    args = parser.parse_args(argv)
    factory = make_session_factory(make_engine(settings.database_url))
    with session_scope(factory) as session:
        orgs = ingress.publish_ticks(session, args.date, args.org)
    log.info("daily tick published", date=args.date.isoformat(), organizations=orgs)
    return 0


def send_webhooks(settings: Settings, argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m automation webhooks", description="send due webhooks")
    parser.add_argument("--once", action="store_true")
    args = parser.parse_args(argv)
    factory = make_session_factory(make_engine(settings.database_url))
    if args.once:
        webhooks.deliver_due(factory)
        return 0
    _background_loop(settings, threading.Event())
    return 0


def drain_dead_letters(settings: Settings, _argv: Sequence[str]) -> int:
    factory = make_session_factory(make_engine(settings.database_url))
    log.info("dead letters drained", count=deadletters.drain(factory, settings))
    return 0


def _background_loop(settings: Settings, stop: threading.Event) -> None:
    """Send due webhooks every second and drain dead letters every half minute, until stopped."""
    factory = make_session_factory(make_engine(settings.database_url))
    last_drain = 0.0
    while not stop.is_set():
        try:
            webhooks.deliver_due(factory)
            now = datetime.now(UTC).timestamp()
            if now - last_drain >= DRAIN_EVERY_SECONDS:
                last_drain = now
                deadletters.drain_quietly(factory, settings)
        except Exception as exc:  # keep the loop alive; the next round tries again
            log.warning("background round failed", error=repr(exc))
        stop.wait(WEBHOOK_POLL_SECONDS)


COMMANDS: dict[str, Callable[[Settings, Sequence[str]], int]] = {
    "tick": tick,
    "webhooks": send_webhooks,
    "dead-letters": drain_dead_letters,
}


def main(argv: Sequence[str]) -> int:
    """Automation's commands first; everything else is the shared runtime's."""
    if argv and argv[0] in COMMANDS:
        settings = SERVICE.settings()
        configure_logging(SERVICE.name, settings.log_level)
        return COMMANDS[argv[0]](settings, argv[1:])
    if argv and argv[0] == "worker":
        thread = threading.Thread(target=_background_loop, args=(SERVICE.settings(), threading.Event()), daemon=True)
        thread.start()
    return SERVICE.main(argv)
