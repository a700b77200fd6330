"""The OpenAPI document is valid and documents each report both as JSON and as CSV."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate


def test_every_report_documents_its_json_and_its_csv(app: Any) -> None:
    document = app.test_client().get("/openapi.json").get_json()
    validate(document)
    reports = [path for path in document["paths"] if path.startswith("/v1/reports/")]
    assert reports
    for path in reports:
        ok = document["paths"][path]["get"]["responses"]["200"]
        assert set(ok["content"]) == {"application/json", "text/csv"}, path
        assert ok["description"]
