"""The catalog service as the shared runtime sees it: its API, its handlers, its migrations."""

from pathlib import Path

from catalog.api import BLUEPRINTS
from catalog.handlers import HANDLERS
from lms_common.service import ServiceDefinition

SERVICE = ServiceDefinition(
    name="catalog",
    title="LMS catalog: products, courses, modules, lessons, programs",
    migrations=str(Path(__file__).parent / "migrations"),
    blueprints=BLUEPRINTS,
    handlers=HANDLERS,
)
