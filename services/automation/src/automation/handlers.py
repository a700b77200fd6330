"""Events automation consumes: rule triggers, catalog state for validation, completions.

A trigger whose contract is not on the bus yet has no handler (and so no binding) until it is.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy.orm import Session

from automation import batch, evaluation, replica
from automation.rules import TRIGGERS
from lms_common.contracts import SUITE_EVENTS
from lms_common.envelope import Event
from lms_common.processing import BatchHandler, Handler, MixedRuns


def on_trigger(session: Session, event: Event) -> None:
    """Evaluate the organization's default behaviours and enabled rules on this event."""
    evaluation.evaluate_event(session, event)


def on_course_completed(session: Session, event: Event) -> None:
    """Keep the completion (recertification counts from it), then evaluate rules on it."""
    replica.keep_completion(session, event)
    evaluation.evaluate_event(session, event)


def on_catalog_item(kind: str, session: Session, event: Event) -> None:
    """Keep the newest state of a product, course or program (rules are validated against it)."""
    replica.keep_catalog_item(session, event, kind)


CATALOG_EVENTS = {
    "ProductUpdated": replica.PRODUCT,
    "ProductActivated": replica.PRODUCT,
    "ProductDeactivated": replica.PRODUCT,
    "CourseCreated": replica.COURSE,
    "CourseUpdated": replica.COURSE,
    "CoursePublished": replica.COURSE,
    "CourseUnpublished": replica.COURSE,
    "ProgramUpdated": replica.PROGRAM,
    "ProgramPublished": replica.PROGRAM,
}


def _handlers() -> dict[str, Handler]:
    handlers: dict[str, Handler] = {trigger: on_trigger for trigger in TRIGGERS}
    if "CourseCompleted" in handlers:
        handlers["CourseCompleted"] = on_course_completed
    for name, kind in CATALOG_EVENTS.items():
        if name in SUITE_EVENTS:
            handlers[name] = partial(on_catalog_item, kind)
    return handlers


HANDLERS = _handlers()

# Runs of these triggers in one consumer batch are evaluated set-based (see automation.batch),
# whatever their mix: an onboarding brings EmployeeOnboarded and then identity's UserProvisioned,
# interleaved on the queue, and runs of one type alone would mostly be runs of one event.
BATCH_HANDLERS: dict[str, BatchHandler] = dict.fromkeys(batch.SET_BASED_TRIGGERS, MixedRuns(batch.evaluate_batch))
