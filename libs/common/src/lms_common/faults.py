"""Fault injection for the reliability tests, off unless an environment variable asks for it.

``LMS_FAULT_RELAY_AFTER_PUBLISH=0.05`` kills the relay process (SIGKILL) after 5% of its
batches were published and before they were marked sent; ``LMS_FAULT_WORKER_AFTER_COMMIT``
does the same to a worker between its commit and its acks. Both are the worst moments for a
crash, the ones the outbox and the inbox exist for. ``LMS_FAULT_HANDLER_DELAY_SECONDS=45``
makes every batch's handling take that much longer, to show that a handler outliving the
broker heartbeat neither loses its connection nor has its work done twice.
"""

from __future__ import annotations

import os
import random
import signal
import time

import structlog

log = structlog.get_logger("lms.faults")


def probability(point: str) -> float:
    raw = os.environ.get(f"LMS_FAULT_{point.upper()}", "")
    try:
        return min(1.0, max(0.0, float(raw))) if raw else 0.0
    except ValueError:
        return 0.0


def maybe_crash(point: str) -> None:
    """Kill this process at ``point`` with the configured probability (normally zero)."""
    chance = probability(point)
    if chance and random.random() < chance:
        log.warning("fault injected: killing process", point=point)
        os.kill(os.getpid(), signal.SIGKILL)


def delay_seconds(point: str) -> float:
    raw = os.environ.get(f"LMS_FAULT_{point.upper()}_DELAY_SECONDS", "")
    try:
        return max(0.0, float(raw)) if raw else 0.0
    except ValueError:
        return 0.0


def maybe_delay(point: str) -> None:
    """Stall at ``point`` for the configured number of seconds (normally zero)."""
    seconds = delay_seconds(point)
    if seconds:
        log.warning("fault injected: stalling", point=point, seconds=seconds)
        time.sleep(seconds)
