"""Automation's tables: rules, runs, effects, replicas, webhook deliveries, ingress, dead letters.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_items",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("item_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("course_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "item_id", name=op.f("pk_catalog_items")),
    )
    with op.batch_alter_table("catalog_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_items_org_id"), ["org_id"], unique=False)

    op.create_table(
        "completions",
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("course_id", sa.String(length=36), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "user_id", "course_id", name=op.f("pk_completions")),
    )
    with op.batch_alter_table("completions", schema=None) as batch_op:
        batch_op.create_index("ix_completions_course", ["org_id", "course_id", "completed_at"], unique=False)

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=50), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("original_queue", sa.String(length=200), nullable=False),
        sa.Column("original_routing_key", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("org_id", sa.String(length=200), nullable=True),
        sa.Column("event_type", sa.String(length=100), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("dead_lettered_at", sa.String(length=64), nullable=True),
        sa.Column("drained_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("replay_count", sa.Integer(), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_dead_letters_fingerprint")),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index("ix_dead_letters_drained", ["drained_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dead_letters_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dead_letters_service"), ["service"], unique=False)

    op.create_table(
        "effects",
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("natural_key", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("command_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "natural_key", name=op.f("pk_effects")),
    )
    op.create_table(
        "ingress_events",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_ingress_events")),
    )
    with op.batch_alter_table("ingress_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingress_events_org_id"), ["org_id"], unique=False)

    op.create_table(
        "org_settings",
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("invoice_paid_grants", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_org_settings")),
    )
    op.create_table(
        "recertifications",
        sa.Column("rule_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("course_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("completion_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assigned_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "user_id", "course_id", name=op.f("pk_recertifications")),
    )
    with op.batch_alter_table("recertifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recertifications_org_id"), ["org_id"], unique=False)

    op.create_table(
        "rules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("trigger", sa.String(length=100), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules")),
    )
    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.create_index("ix_rules_org_created", ["org_id", "created_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rules_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_rules_org_trigger", ["org_id", "trigger"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("rule_id", sa.String(length=36), nullable=True),
        sa.Column("rule_key", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("org_id", "rule_key", "event_id", name="uq_runs_rule_event"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_org_created", ["org_id", "created_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_rule_id"), ["rule_id"], unique=False)

    op.create_table(
        "source_events",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_source_events")),
    )
    with op.batch_alter_table("source_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_source_events_org_id"), ["org_id"], unique=False)

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("natural_key", sa.String(length=300), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=500), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("timeout_seconds", sa.Double(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("org_id", "natural_key", name="uq_webhook_deliveries_key"),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_org_id"))
        batch_op.drop_index("ix_webhook_deliveries_due")

    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("source_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_events_org_id"))

    op.drop_table("source_events")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_rule_id"))
        batch_op.drop_index(batch_op.f("ix_runs_org_id"))
        batch_op.drop_index("ix_runs_org_created")

    op.drop_table("runs")
    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.drop_index("ix_rules_org_trigger")
        batch_op.drop_index(batch_op.f("ix_rules_org_id"))
        batch_op.drop_index("ix_rules_org_created")

    op.drop_table("rules")
    with op.batch_alter_table("recertifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recertifications_org_id"))

    op.drop_table("recertifications")
    op.drop_table("org_settings")
    with op.batch_alter_table("ingress_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingress_events_org_id"))

    op.drop_table("ingress_events")
    op.drop_table("effects")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dead_letters_service"))
        batch_op.drop_index(batch_op.f("ix_dead_letters_org_id"))
        batch_op.drop_index("ix_dead_letters_drained")

    op.drop_table("dead_letters")
    with op.batch_alter_table("completions", schema=None) as batch_op:
        batch_op.drop_index("ix_completions_course")

    op.drop_table("completions")
    with op.batch_alter_table("catalog_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_items_org_id"))

    op.drop_table("catalog_items")
