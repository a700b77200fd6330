"""CallWebhook: signed with HMAC-SHA256, sent after the commit, retried, then given up."""

import hashlib
import hmac
import json

from automation_helpers import employee, event, ok
from sqlalchemy import select

from automation import webhooks
from automation.models import WebhookDelivery

SECRET = "0123456789abcdef-secret"


def webhook_rule(admin, attempts=3):
    action = {"type": "CallWebhook", "url": "https://hooks.example.com/in", "secret": SECRET, "max_attempts": attempts,
              "timeout_seconds": 2}  # fmt: skip
    return ok(admin.post("/v1/rules", json={"name": "Hook", "trigger": "EmployeeOnboarded", "actions": [action]}), 201)


def deliveries(harness):
    with harness.runtime.session_factory() as session:
        return list(session.scalars(select(WebhookDelivery)))


def due_now(harness):
    with harness.runtime.session_factory() as session, session.begin():
        for delivery in session.scalars(select(WebhookDelivery)):
            delivery.next_attempt_at = webhooks.utcnow()


def test_a_signed_post_is_sent_once(harness, admin):
    rule = webhook_rule(admin)
    onboarded = event("EmployeeOnboarded", employee())
    harness.publish(onboarded, event("EmployeeOnboarded", employee()))  # the same employee twice
    sent = []

    def receiver(request):
        sent.append(request)
        return 204

    assert webhooks.deliver_due(harness.runtime.session_factory, receiver) == 1
    assert webhooks.deliver_due(harness.runtime.session_factory, receiver) == 0
    [request] = sent
    body = json.loads(request.body)
    assert body["rule_id"] == rule["id"] and body["event"]["id"] == onboarded.id and request.timeout == 2
    expected = hmac.new(SECRET.encode(), request.headers["X-LMS-Timestamp"].encode() + b"." + request.body,
                        hashlib.sha256).hexdigest()  # fmt: skip
    assert request.headers["X-LMS-Signature"] == f"sha256={expected}"
    [delivery] = deliveries(harness)
    assert delivery.status == "delivered" and delivery.response_status == 204


def test_failures_are_retried_then_given_up(harness, admin):
    webhook_rule(admin, attempts=2)
    harness.publish(event("EmployeeOnboarded", employee()))

    def down(_request):
        raise TimeoutError("timed out")

    webhooks.deliver_due(harness.runtime.session_factory, down)
    [delivery] = deliveries(harness)
    assert delivery.status == "pending" and delivery.attempts == 1 and "timed out" in delivery.last_error
    due_now(harness)
    webhooks.deliver_due(harness.runtime.session_factory, lambda _request: 500)
    [delivery] = deliveries(harness)
    assert delivery.status == "failed" and delivery.attempts == 2 and delivery.last_error == "answered 500"
