"""An organization's time zone: set by a settings administrator, announced to the other services."""

from __future__ import annotations


def test_the_time_zone_is_set_and_announced(world) -> None:
    headers = {"Authorization": f"Bearer {world.admin_token()}"}
    assert world.client.get(f"/v1/organizations/{world.org_id}", headers=headers).json["time_zone"] == "UTC"
    answer = world.client.patch(
        f"/v1/organizations/{world.org_id}", json={"time_zone": "America/New_York"}, headers=headers
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["time_zone"] == "America/New_York"
    announced = [e["data"] for e in world.events("OrganizationUpdated") if e["data"]["org_id"] == world.org_id]
    assert [a["time_zone"] for a in announced] == ["UTC", "America/New_York"]  # created, then changed


def test_a_client_organization_starts_in_its_masters_time_zone(world) -> None:
    headers = {"Authorization": f"Bearer {world.admin_token()}"}
    world.client.patch(f"/v1/organizations/{world.org_id}", json={"time_zone": "Asia/Tokyo"}, headers=headers)
    client = world.client.post(f"/v1/organizations/{world.org_id}/clients", json={"name": "Acme"}, headers=headers)
    assert client.status_code == 201, client.json
    assert client.json["time_zone"] == "Asia/Tokyo"
    [announced] = [e["data"] for e in world.events("OrganizationUpdated") if e["data"]["org_id"] == client.json["id"]]
    assert (announced["parent_id"], announced["time_zone"]) == (world.org_id, "Asia/Tokyo")


def test_a_bad_time_zone_is_refused_and_changes_nothing(world) -> None:
    headers = {"Authorization": f"Bearer {world.admin_token()}"}
    before = len(world.events("OrganizationUpdated"))
    for body in ({"time_zone": "Mars/Olympus_Mons"}, {"time_zone": "../../etc/passwd"}, {"colour": "red"}):
        answer = world.client.patch(f"/v1/organizations/{world.org_id}", json=body, headers=headers)
        assert answer.status_code == 422, answer.json
    assert world.client.get(f"/v1/organizations/{world.org_id}", headers=headers).json["time_zone"] == "UTC"
    assert len(world.events("OrganizationUpdated")) == before


def test_only_settings_administrators_change_it(world) -> None:
    _, headers = world.person("ada@example.com", "student")
    body = {"time_zone": "Europe/Paris"}
    assert world.client.patch(f"/v1/organizations/{world.org_id}", json=body, headers=headers).status_code == 403
    other = world.client.patch("/v1/organizations/not-mine", json={"time_zone": "Europe/Paris"},
                               headers={"Authorization": f"Bearer {world.admin_token()}"})  # fmt: skip
    assert other.status_code == 404
