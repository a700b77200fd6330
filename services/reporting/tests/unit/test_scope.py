"""Who sees what: local admin, multi-location admin, org admin reports-only, learner, master
admin, and another tenant."""

from __future__ import annotations

import pytest
from reporting_events import OTHER_ORG, scenario, uid

REPORTS = "reports:read"


def names(caller, url="/v1/reports/compliance"):
    return sorted({item["name"] for item in caller.json(url)["items"]})


@pytest.fixture()
def fed(feed):
    feed(scenario())


def test_local_admin_sees_its_location_only(fed, as_user):
    local = as_user(REPORTS, loc={REPORTS: [uid("north-east")]})
    assert names(local) == ["Bob Tester"]
    assert names(local, "/v1/reports/audit") == []
    assert local.json("/v1/reports/completions")["totals"]["enrolled"] == 1
    local.json(f"/v1/reports/learners/{uid('ann')}/transcript", status=404)
    local.json(f"/v1/reports/compliance?location_id={uid('south')}", status=404)
    assert local.json(f"/v1/reports/programs/{uid('onboarding')}")["member_count"] == 1


def test_multi_location_admin_sees_its_subtree(fed, as_user):
    multi = as_user(REPORTS, loc={REPORTS: [uid("north"), uid("north-east")]})
    assert names(multi) == ["Ann Tester", "Bob Tester"]
    assert names(multi, f"/v1/reports/compliance?location_id={uid('north-east')}") == ["Bob Tester"]
    assert multi.json(f"/v1/reports/learners/{uid('bob')}/transcript")["user"]["name"] == "Bob Tester"


def test_org_admin_reports_only_sees_the_organization_and_nothing_else(fed, as_user):
    admin = as_user(REPORTS)
    assert names(admin) == ["Ann Tester", "Bob Tester", "Cat Tester"]
    assert "Zed Tester" not in names(admin, "/v1/reports/audit")
    admin.json(f"/v1/reports/compliance?org_id={OTHER_ORG}", status=404)


def test_master_admin_sees_its_clients(fed, as_user):
    master = as_user(REPORTS, clients=[OTHER_ORG])
    assert names(master, "/v1/reports/audit") == ["Ann Tester", "Zed Tester"]
    assert names(master, f"/v1/reports/audit?org_id={OTHER_ORG}") == ["Zed Tester"]


def test_learner_sees_only_its_own_transcript(fed, as_user):
    ann = as_user("learner", sub=uid("ann"))
    assert ann.json(f"/v1/reports/learners/{uid('ann')}/transcript")["user"]["email"] == "ann@example.com"
    ann.json(f"/v1/reports/learners/{uid('bob')}/transcript", status=403)
    for url in ("compliance", "completions", "audit", f"programs/{uid('onboarding')}"):
        ann.json(f"/v1/reports/{url}", status=403)


def test_another_tenant_never_sees_this_one(fed, as_user):
    other = as_user(REPORTS, org=OTHER_ORG)
    assert names(other) == ["Zed Tester"]
    assert other.json("/v1/reports/completions")["totals"]["enrolled"] == 1
    other.json(f"/v1/reports/learners/{uid('ann')}/transcript", status=404)
    other.json(f"/v1/reports/programs/{uid('onboarding')}", status=404)
    other.json(f"/v1/reports/completions?location_id={uid('north')}", status=404)


def test_without_a_token_401(fed, app):
    assert app.test_client().get("/v1/reports/audit").status_code == 401
