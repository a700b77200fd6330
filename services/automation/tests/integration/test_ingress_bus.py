"""An outside event posted to /v1/events reaches the bus through the real relay, automation's
worker handles it once, and the same event id posted twice has one effect."""

import json
import uuid

from integration_helpers import ORG, relay_all
from sqlalchemy import select

from lms_common.db import make_engine
from lms_common.outbox import OutboxMessage
from lms_common.testing import wait_until


def grants(database_url):
    engine = make_engine(database_url)
    with engine.connect() as connection:
        query = select(OutboxMessage.body).where(OutboxMessage.event_type == "GrantProduct")
        bodies = connection.execute(query).scalars().all()
    engine.dispose()
    return [json.loads(body) for body in bodies]


def test_ingress_is_relayed_and_handled_once(settings, call, worker):
    product = str(uuid.uuid4())
    body = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/billing", "type": "InvoicePaid",
            "time": "2026-11-23T10:00:00Z", "orgid": "someone-else",
            "data": {"invoice_id": "INV-77", "buyer": {"email": "ada@example.com"},
                     "lines": [{"product_id": product, "quantity": 1}], "paid_at": "2026-11-23T10:00:00Z"}}  # fmt: skip
    for _ in range(2):
        assert call("post", "/v1/events", 202, scope="events:publish", json=body) == {"id": body["id"]}
    relay_all(settings)
    [grant] = wait_until(lambda: grants(settings.database_url), timeout=15)
    assert grant["orgid"] == ORG and grant["data"]["natural_key"] == f"invoice:INV-77:product:{product}"
    runs = call("get", "/v1/runs", 200)["items"]
    assert [(r["event_id"], r["status"]) for r in runs] == [(body["id"], "succeeded")]
