"""Bootstrap on first start, and again changing nothing."""

from __future__ import annotations

import json

from identity.bootstrap import bootstrap


def test_bootstrap_is_idempotent_and_kept_under_var(world) -> None:
    path = world.settings.var_dir / "bootstrap.json"
    saved = json.loads(path.read_text())
    assert saved["client_secret"] == world.boot["client_secret"] and len(saved["admin_password"]) >= 20
    again = bootstrap(world.app.extensions["lms"].session_factory, world.settings, env={})
    assert again["created"] is False and again["org_id"] == world.org_id
    token = world.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(world.boot["client_id"], world.boot["client_secret"]),
    ).json
    assert len(token["scope"].split()) == 14
    me = world.client.get("/v1/me", headers={"Authorization": f"Bearer {world.admin_token()}"}).json
    assert me["user"]["email"] == world.boot["admin_email"] and "roles:write" in me["scope"]
