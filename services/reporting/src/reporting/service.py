"""The reporting service as the shared runtime sees it: its API, its handlers, its migrations."""

from pathlib import Path

from lms_common.service import ServiceDefinition
from reporting.api import BLUEPRINTS
from reporting.handlers import HANDLERS, KEEPER

SERVICE = ServiceDefinition(
    name="reporting",
    title="LMS reporting: completion, compliance and audit reports",
    migrations=str(Path(__file__).parent / "migrations"),
    blueprints=BLUEPRINTS,
    handlers=HANDLERS,
    # Reporting reads every fact of the suite, so no event is ever published into the void.
    extra_bindings=("#",),
    statistics=KEEPER,
)
