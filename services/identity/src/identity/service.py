"""The identity service as the shared runtime sees it: its API, its handlers, its migrations."""

from pathlib import Path

from lms_common.service import ServiceDefinition

SERVICE = ServiceDefinition(
    name="identity",
    title="LMS identity: people, organizations, roles and OAuth 2",
    migrations=str(Path(__file__).parent / "migrations"),
)
