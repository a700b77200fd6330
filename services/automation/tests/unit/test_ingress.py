"""POST /v1/events: schema-checked, organization from the token, 202, one effect per event id."""

import uuid

from automation_helpers import OTHER_ORG, commands, invoice, ok, outbox_events, refused

PUBLISHER = "events:publish"


def cloudevent(data, kind="InvoicePaid", **overrides):
    body = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/billing", "type": kind,
            "time": "2026-11-23T10:00:00Z", "data": data}  # fmt: skip
    return {**body, **overrides}


def test_an_event_is_accepted_published_once_and_handled_once(harness, settings, as_user):
    product = harness.catalog("product")
    billing = as_user(PUBLISHER)
    body = cloudevent(invoice("INV-9", [(product, 1)]), orgid=OTHER_ORG)
    assert ok(billing.post("/v1/events", json=body), 202) == {"id": body["id"]}
    assert ok(billing.post("/v1/events", json=body), 202) == {"id": body["id"]}
    [published] = outbox_events(settings.database_url, ("InvoicePaid",))
    assert published["id"] == body["id"] and published["orgid"] == "org-1"  # the token's, not the body's
    harness.relay_all()
    harness.drain()
    [grant] = commands(settings.database_url)
    assert grant["orgid"] == "org-1" and grant["data"]["source_event_id"] == body["id"]


def test_malformed_bodies_publish_nothing(harness, settings, as_user):
    billing = as_user(PUBLISHER)
    refused(billing.post("/v1/events", data=b"{not json", content_type="application/json"), 400, "malformed_json")
    refused(billing.post("/v1/events", json=[1, 2]), 422, "invalid_event")
    refused(billing.post("/v1/events", json=cloudevent({"invoice_id": "x"})), 422, "invalid_event")
    refused(billing.post("/v1/events", json=cloudevent({}, specversion="0.3")), 422, "invalid_event")
    no_time = cloudevent(invoice("INV-1", [(str(uuid.uuid4()), 1)]))
    del no_time["time"]
    refused(billing.post("/v1/events", json=no_time), 422, "invalid_event")
    refused(billing.post("/v1/events", json=cloudevent({"natural_key": "x"}, kind="GrantProduct")), 422,
            "unknown_event_type")  # fmt: skip
    assert outbox_events(settings.database_url) == []


def test_publishing_needs_the_permission(as_user, settings):
    body = cloudevent(invoice("INV-1", [(str(uuid.uuid4()), 1)]))
    refused(as_user("automation:write automation:read").post("/v1/events", json=body), 403)
    assert as_user(PUBLISHER).client.post("/v1/events", json=body).status_code == 401
    assert outbox_events(settings.database_url) == []


def test_an_id_another_organization_took_is_409(as_user):
    body = cloudevent(invoice("INV-1", [(str(uuid.uuid4()), 1)]))
    ok(as_user(PUBLISHER).post("/v1/events", json=body), 202)
    refused(as_user(PUBLISHER, org=OTHER_ORG).post("/v1/events", json=body), 409, "event_id_taken")
