"""The enrollment service as the shared runtime sees it: its API, its handlers, its migrations."""

from pathlib import Path

from enrollment.api import BLUEPRINTS
from enrollment.handlers import BATCH_HANDLERS, HANDLERS, KEEPER
from lms_common.service import ServiceDefinition

SERVICE = ServiceDefinition(
    name="enrollment",
    title="LMS enrollment: grants, enrollments, progress, assignments, certificates",
    migrations=str(Path(__file__).parent / "migrations"),
    blueprints=BLUEPRINTS,
    handlers=HANDLERS,
    batch_handlers=BATCH_HANDLERS,
    statistics=KEEPER,
)
