"""The automation service as the shared runtime sees it: its API, its handlers, its migrations."""

from pathlib import Path

from automation.api import BLUEPRINTS
from automation.batch import KEEPER
from automation.handlers import BATCH_HANDLERS, HANDLERS
from lms_common.service import ServiceDefinition

SERVICE = ServiceDefinition(
    name="automation",
    title="LMS automation: rules, runs, event ingress, dead letters",
    migrations=str(Path(__file__).parent / "migrations"),
    blueprints=BLUEPRINTS,
    handlers=HANDLERS,
    batch_handlers=BATCH_HANDLERS,
    statistics=KEEPER,
)
