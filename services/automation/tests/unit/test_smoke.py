"""The app starts, answers health checks and documents its API."""


def test_health_and_openapi(app):
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    paths = client.get("/openapi.json").get_json()["paths"]
    for path in ("/v1/rules", "/v1/rules/{rule_id}", "/v1/runs", "/v1/runs/{run_id}/retry", "/v1/events",
                 "/v1/dead-letters", "/v1/dead-letters/{letter_id}/replay", "/v1/settings/defaults"):  # fmt: skip
        assert path in paths, path
