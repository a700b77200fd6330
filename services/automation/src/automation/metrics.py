"""Automation's Prometheus counters; every label takes values from a fixed, small set."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
# How trigger events were evaluated: set-based in a batch, or alone on the per-event path and why
# (a batch of one, or an event the set-based path does not cover).
EVALUATIONS = Counter(
    "lms_automation_trigger_evaluations_total", "Trigger events evaluated, by path and reason", ["path", "reason"]
)
# Events per set-based call: a batch's fixed cost is shared by this many events.
BATCH_EVENTS = Histogram(
    "lms_automation_batch_events",
    "Trigger events per set-based evaluation call",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)
