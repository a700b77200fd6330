"""Reporting's REST API: one blueprint of read-only reports."""

from reporting.api import reports

BLUEPRINTS = [reports.blp]
