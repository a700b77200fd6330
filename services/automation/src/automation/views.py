"""How automation's objects look in API answers."""

from __future__ import annotations

import json
from typing import Any

from automation.models import DeadLetter, Rule, Run
from automation.rules import public_action


def rule(row: Rule) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "trigger": row.trigger,
        "conditions": row.conditions,
        "actions": [public_action(action) for action in row.actions],
        "enabled": row.enabled,
        "version": row.version,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def run(row: Run) -> dict[str, Any]:
    names = ("id", "rule_id", "rule_key", "event_id", "event_type", "matched", "status", "actions", "error")
    return {**{name: getattr(row, name) for name in names}, "attempts": row.attempts,
            "created_at": row.created_at, "updated_at": row.updated_at}  # fmt: skip


def payload(body: bytes) -> Any:
    """The body as JSON when it is JSON, else as text (a poison message may be neither)."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def dead_letter(row: DeadLetter) -> dict[str, Any]:
    names = (
        "id", "service", "queue", "original_queue", "original_routing_key", "reason", "message_id", "org_id",
        "event_type", "headers", "dead_lettered_at", "drained_at", "status", "replay_count", "replayed_at",
    )  # fmt: skip
    return {**{name: getattr(row, name) for name in names}, "payload": payload(row.body)}
