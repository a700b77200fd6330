"""Events that outside systems (billing, HR) publish to the suite, as CONTRACT section 4 fixes them."""

from __future__ import annotations

from lms_common.contracts.schema import DATE, DATE_TIME, EMAIL, ID, NAME, array, obj
from lms_common.envelope import EventType

INVOICE_PAID = EventType(
    domain="billing",
    name="InvoicePaid",
    summary="An invoice was paid; its LMS products are granted to the buyer or its invitees.",
    schema=obj(
        {
            "invoice_id": ID,
            "buyer": obj({"email": EMAIL}, {"first_name": NAME, "last_name": NAME}, strict=False),
            "lines": array(
                obj(
                    {"product_id": ID, "quantity": {"type": "integer", "minimum": 1, "maximum": 100_000}}, strict=False
                ),
                min_items=1,
            ),
            "paid_at": DATE_TIME,
        },
        {"invitees": array(EMAIL)},
        strict=False,
    ),
)

EMPLOYEE_ONBOARDED = EventType(
    domain="hr",
    name="EmployeeOnboarded",
    summary="An HR system hired someone; they become a learner and get their mandatory training.",
    schema=obj(
        {"employee_id": ID, "email": EMAIL, "first_name": NAME, "last_name": NAME, "start_date": DATE},
        {
            "department": NAME,
            "job_title": NAME,
            "location_code": {"type": "string", "maxLength": 64},
            "manager_email": EMAIL,
        },
        strict=False,
    ),
)

EMPLOYEE_OFFBOARDED = EventType(
    domain="hr",
    name="EmployeeOffboarded",
    summary="An employee left; their user is disabled and their history kept.",
    schema=obj({"employee_id": ID, "email": EMAIL}, {"last_day": DATE}, strict=False),
)

EVENTS = [INVOICE_PAID, EMPLOYEE_ONBOARDED, EMPLOYEE_OFFBOARDED]
