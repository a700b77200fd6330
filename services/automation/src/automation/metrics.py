"""Automation's Prometheus counters; every label takes values from a fixed, small set."""

from __future__ import annotations

from prometheus_client import Counter

RULE_RUNS = Counter(
    "lms_automation_rule_runs_total",
    "Evaluations of a rule (or a default behaviour) against an event, by trigger and outcome",
    ["trigger", "status"],
)
COMMANDS = Counter(
    "lms_automation_commands_total", "Effects planned by runs: emitted, or skipped as a duplicate", ["kind", "outcome"]
)
WEBHOOKS = Counter("lms_automation_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"])
INGRESS = Counter("lms_automation_ingress_total", "Events posted to /v1/events by outcome", ["outcome"])
DEAD_LETTERS = Counter(
    "lms_automation_dead_letters_total", "Dead letters drained or replayed, by service", ["service", "action"]
)
