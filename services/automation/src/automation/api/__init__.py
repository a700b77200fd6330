"""Automation's REST API, one blueprint per resource."""

from automation.api import dead_letters, events, rules, runs, settings

BLUEPRINTS = [rules.blp, runs.blp, settings.blp, events.blp, dead_letters.blp]
