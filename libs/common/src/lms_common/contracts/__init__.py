"""The bus contract: every event type of the suite with its payload schema.

This package is the single source of the event schemas, one module per publishing domain.
Publishers validate against it before an event enters their outbox, consumers validate again
on arrival, and ``asyncapi.yaml`` at the repository root is generated from it
(``make asyncapi``; a test keeps the two in step).
"""

from __future__ import annotations

from lms_common.contracts import automation, catalog, enrollment, identity, outside
from lms_common.contracts.identity import TOKEN_REVOKED, USER_DISABLED, USER_ENABLED
from lms_common.contracts.outside import EMPLOYEE_OFFBOARDED, EMPLOYEE_ONBOARDED, INVOICE_PAID
from lms_common.envelope import EventCatalog

SUITE_EVENTS = EventCatalog(
    [*outside.EVENTS, *identity.EVENTS, *catalog.EVENTS, *enrollment.EVENTS, *automation.EVENTS]
)

__all__ = [
    "EMPLOYEE_OFFBOARDED",
    "EMPLOYEE_ONBOARDED",
    "INVOICE_PAID",
    "SUITE_EVENTS",
    "TOKEN_REVOKED",
    "USER_DISABLED",
    "USER_ENABLED",
]
