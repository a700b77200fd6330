"""Every service of the suite starts and serves its operational endpoints; every worker takes
events from the bus; every relay runs; Ctrl-C stops the lot."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime

import pytest
import requests
from conftest import RELAYS, SERVICES, WORKERS, Suite, group_alive, stop_suite

from lms_common.testing import wait_until


@pytest.mark.parametrize("service", SERVICES)
def test_each_api_serves_health_readiness_metrics_and_its_documents(suite: Suite, service: str) -> None:
    assert requests.get(suite.url(service, "/healthz"), timeout=5).json() == {"status": "ok"}
    assert requests.get(suite.url(service, "/readyz"), timeout=5).status_code == 200
    spec = requests.get(suite.url(service, "/openapi.json"), timeout=5).json()
    assert spec["openapi"].startswith("3.")
    assert "/healthz" in spec["paths"]
    docs = requests.get(suite.url(service, "/docs"), timeout=5)
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    metrics = requests.get(suite.url(service, "/metrics"), timeout=5).text
    assert re.search(rf'lms_http_requests_total\{{.*endpoint="/healthz".*service="{service}".*\}}', metrics)


@pytest.mark.parametrize("service", SERVICES)
def test_unknown_routes_answer_problem_details(suite: Suite, service: str) -> None:
    response = requests.get(suite.url(service, "/no/such/thing"), timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_every_worker_handles_an_event_from_the_bus(suite: Suite) -> None:
    event_id = str(uuid.uuid4())
    body = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/identity",
        "type": "UserDisabled",
        "time": datetime.now(UTC).isoformat(),
        "orgid": "org-e2e",
        "data": {"user_id": str(uuid.uuid4()), "disabled_at": datetime.now(UTC).isoformat()},
    }
    for service in WORKERS:
        wait_until(lambda service=service: "lms_consumer" in _safe(suite.worker_metrics, service), timeout=60)
    suite.publish("identity.UserDisabled", json.dumps(body).encode(), event_id)
    handled = 'lms_consumer_messages_total{event_type="UserDisabled",outcome="handled"'
    for service in WORKERS:
        wait_until(lambda service=service: handled in _safe(suite.worker_metrics, service), timeout=30)


@pytest.mark.parametrize("service", RELAYS)
def test_every_relay_runs_and_reports_its_outbox(suite: Suite, service: str) -> None:
    empty_outbox = f'lms_outbox_backlog{{service="{service}"}} 0.0'
    assert wait_until(lambda: empty_outbox in _safe(suite.relay_metrics, service), timeout=60)


@pytest.mark.stops_suite
def test_ctrl_c_stops_every_process(suite: Suite) -> None:
    stop_suite(suite)
    assert suite.process.returncode is not None
    assert wait_until(lambda: not group_alive(suite.process.pid), timeout=30)


def _safe(read, service: str) -> str:  # type: ignore[no-untyped-def]
    try:
        return str(read(service))
    except requests.RequestException:
        return ""
