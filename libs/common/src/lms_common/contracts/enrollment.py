"""Events enrollment publishes."""

from __future__ import annotations

from lms_common.envelope import EventType

EVENTS: list[EventType] = []
