"""InvoicePaid's default behaviour (CONTRACT section 4): grants to the buyer, seats and invitees,
one effect per invoice whatever is redelivered."""

from automation_helpers import ADMIN, ORG, commands, event, invoice, ok, refused
from sqlalchemy import event as sql_event
from sqlalchemy import func, select

from automation.models import Effect, Rule
from lms_common.db import make_engine, make_session_factory, session_scope
from lms_common.processing import Outcome


def grants(settings):
    return [c["data"] for c in commands(settings.database_url)]


def test_one_line_is_one_grant_to_the_buyer(harness, settings):
    product = harness.catalog("product")
    harness.publish(event("InvoicePaid", invoice("INV-1", [(product, 1)])))
    [grant] = grants(settings)
    assert grant["product_id"] == product and grant["owner"] == {"email": "ada@example.com"}
    assert grant["natural_key"] == f"invoice:INV-1:product:{product}"
    assert "seats" not in grant and grant["rule_id"] is None and grant["source_event_type"] == "InvoicePaid"


def test_quantity_and_invitees_make_the_buyer_a_purchaser(harness, settings):
    product = harness.catalog("product")
    harness.publish(event("InvoicePaid", invoice("INV-2", [(product, 3)], ["Bob@example.com", "cy@example.com"])))
    [grant] = grants(settings)
    assert grant["owner"] == {"email": "ada@example.com"}
    assert grant["seats"] == 3 and grant["invitees"] == ["bob@example.com", "cy@example.com"]


def test_the_same_invoice_twice_and_under_a_new_event_id_has_one_effect(harness, settings, admin):
    product = harness.catalog("product")
    paid = event("InvoicePaid", invoice("INV-3", [(product, 1)]))
    harness.publish(paid)
    results = harness.publish(paid)  # redelivered: the inbox knows its id
    assert [r.outcome for r in results] == [Outcome.DUPLICATE]
    harness.publish(event("InvoicePaid", invoice("INV-3", [(product, 1)])))  # the same fact, a new id
    assert len(grants(settings)) == 1
    runs = ok(admin.get("/v1/runs"))["items"]
    assert [r["status"] for r in runs] == ["succeeded", "duplicate"]
    assert runs[1]["actions"][0]["status"] == "duplicate"


def test_the_default_can_be_switched_off(harness, settings, admin, as_user):
    assert ok(admin.get("/v1/settings/defaults")) == {"invoice_paid_grants": True}
    refused(as_user("automation:read").put("/v1/settings/defaults", json={"invoice_paid_grants": False}), 403)
    refused(admin.put("/v1/settings/defaults", json={"invoice_paid_grants": "no"}), 422)
    assert ok(admin.put("/v1/settings/defaults", json={"invoice_paid_grants": False})) == {"invoice_paid_grants": False}
    harness.publish(event("InvoicePaid", invoice("INV-4", [(harness.catalog("product"), 1)])))
    assert grants(settings) == []
    assert ok(as_user(ADMIN, org="org-2").get("/v1/settings/defaults")) == {"invoice_paid_grants": True}


def test_a_rule_on_invoice_paid_shares_the_invoice_key(harness, settings, admin):
    product, extra = harness.catalog("product"), harness.catalog("product")
    grant = {"type": "GrantProduct", "product_ids": [product, extra]}
    condition = {"field": "lines.0.quantity", "op": "eq", "value": 1}
    rule = {"name": "Bonus", "trigger": "InvoicePaid", "actions": [grant], "conditions": [condition]}
    ok(admin.post("/v1/rules", json=rule), 201)
    harness.publish(event("InvoicePaid", invoice("INV-5", [(product, 1)])))
    keys = sorted(g["natural_key"] for g in grants(settings))
    assert keys == sorted([f"invoice:INV-5:product:{product}", f"invoice:INV-5:product:{extra}"])


def test_a_line_breaking_the_grant_contract_fails_the_default_with_nothing_granted(harness, settings, admin):
    """The default's commands are all checked before the first is written, so a failure takes
    back no half-written run (there is no savepoint to), and the invoice's rule still runs."""
    product, extra = harness.catalog("product"), harness.catalog("product")
    rule = {"name": "Bonus", "trigger": "InvoicePaid", "actions": [{"type": "GrantProduct", "product_ids": [extra]}]}
    ok(admin.post("/v1/rules", json=rule), 201)
    harness.publish(event("InvoicePaid", invoice("INV-6", [(product, 1), ("SKU-6", 1)])))  # not a product id
    assert [g["natural_key"] for g in grants(settings)] == [f"invoice:INV-6:product:{extra}"]
    default, bonus = ok(admin.get("/v1/runs"))["items"]
    assert default["rule_id"] is None and default["status"] == "failed" and "product_id" in default["error"]
    assert default["matched"] is False and default["actions"] == [] and default["attempts"] == 1
    assert bonus["status"] == "succeeded"
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Effect)) == 1
    engine.dispose()


def test_a_malformed_rule_fails_its_own_run_only(harness, settings, admin):
    """A rule row whose action has no type (never accepted by the API) fails when planned, in
    its savepoint, and the default still grants."""
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        session.add(Rule(org_id=ORG, name="Broken", trigger="InvoicePaid", actions=[{}], created_by="admin"))
    engine.dispose()
    harness.publish(event("InvoicePaid", invoice("INV-8", [(harness.catalog("product"), 1)])))
    assert len(grants(settings)) == 1
    statuses = sorted(run["status"] for run in ok(admin.get("/v1/runs"))["items"])
    assert statuses == ["failed", "succeeded"]


def test_a_lone_invoice_is_read_then_written_once_without_a_savepoint(harness):
    """The run row is inserted in its final state, the organization's setting and rules, its
    runs and effects are each looked up once whatever the lines, and no savepoint is opened
    for the default's grants."""
    lines = [(harness.catalog("product"), 1), (harness.catalog("product"), 3)]
    statements: list[str] = []
    sql_event.listen(harness.runtime.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    harness.publish(event("InvoicePaid", invoice("INV-7", lines)))
    verbs = [" ".join(statement.split()[:3]) for statement in statements]
    assert verbs == [
        "INSERT INTO inbox",
        "SELECT org_settings.invoice_paid_grants, rules.id,",
        "INSERT INTO source_events",
        "SELECT runs.rule_key FROM",
        "SELECT effects.natural_key FROM",
        "INSERT INTO effects",
        "INSERT INTO outbox",
        "INSERT INTO runs",
    ]


def test_the_setting_and_the_enabled_rules_of_a_trigger_are_one_read(harness, settings, admin):
    """What each event's evaluation reads first: whether invoices grant (on until switched off)
    and the enabled rules of the event's trigger, oldest first."""
    from automation.evaluation import settings_and_rules

    factory = make_session_factory(make_engine(settings.database_url))
    with factory() as session:
        assert settings_and_rules(session, ORG, "InvoicePaid") == (True, [])
    grant = {"type": "GrantProduct", "product_ids": [harness.catalog("product")]}

    def rule(name: str, trigger: str = "InvoicePaid", **extra) -> str:
        body = {"name": name, "trigger": trigger, "actions": [grant], **extra}
        return str(ok(admin.post("/v1/rules", json=body), 201)["id"])

    first = rule("First")
    rule("Switched off", enabled=False)
    rule("Another trigger", trigger="EmployeeOnboarded")
    second = rule("Second")
    with factory() as session:
        grants_on, rules = settings_and_rules(session, ORG, "InvoicePaid")
        assert grants_on and [r.id for r in rules] == [first, second]
        assert settings_and_rules(session, "org-2", "InvoicePaid") == (True, [])
    ok(admin.put("/v1/settings/defaults", json={"invoice_paid_grants": False}))
    with factory() as session:
        grants_on, rules = settings_and_rules(session, ORG, "InvoicePaid")
        assert not grants_on and [r.id for r in rules] == [first, second]
