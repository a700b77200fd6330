"""Fault injection for the reliability tests, off unless an environment variable asks for it.

``LMS_FAULT_RELAY_AFTER_PUBLISH=0.05`` kills the relay process (SIGKILL) after 5% of its
batches were published and before they were marked sent; ``LMS_FAULT_WORKER_AFTER_COMMIT``
does the same to a worker between its commit and its acks. Both are the worst moments for a
crash, the ones the outbox and the inbox exist for.
"""

from __future__ import annotations

import os
import random
import signal

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
