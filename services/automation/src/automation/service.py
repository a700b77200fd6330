"""The automation service as the shared runtime sees it: its API, its handlers, its migrations."""

from pathlib import Path

from lms_common.service import ServiceDefinition

SERVICE = ServiceDefinition(
    name="automation",
    title="LMS automation: rules, runs, event ingress, dead letters",
    migrations=str(Path(__file__).parent / "migrations"),
)
