"""Alembic, one migration history per service, driven from code (no alembic.ini to keep).

A service's ``migrations/env.py`` imports its models and calls :func:`run_migrations`; its first
revision calls :func:`create_runtime_tables_v1` for the tables every service has (outbox, inbox,
deny list). ``python -m <service> migrate`` applies them; nothing is created at start-up.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config

from lms_common.db import Base, make_engine, normalise_url


def alembic_config(script_location: str, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def upgrade(script_location: str, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(script_location, database_url), revision)


def downgrade(script_location: str, database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(script_location, database_url), revision)


def revision(script_location: str, database_url: str, message: str, autogenerate: bool = True) -> None:
    command.revision(alembic_config(script_location, database_url), message=message, autogenerate=autogenerate)


def run_migrations() -> None:
    """The body of every service's ``env.py``: online migrations against the configured URL."""
    from lms_common import denylist, inbox, outbox  # noqa: F401 - their tables belong to every service

    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not configured"
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def _timestamp(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def create_runtime_tables_v1() -> None:
    """outbox, inbox, denied_users and revoked_tokens, as :mod:`lms_common` models define them."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("routing_key", sa.String(200), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        _timestamp("created_at", nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _timestamp("publish_after"),
        sa.Column("last_error", sa.Text()),
        _timestamp("sent_at"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["id"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"])
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        _timestamp("handled_at", nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_inbox"),
    )
    op.create_table(
        "denied_users",
        sa.Column("user_id", sa.String(200), nullable=False),
        _timestamp("disabled_at", nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_denied_users"),
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(200), nullable=False),
        _timestamp("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_revoked_tokens"),
    )


def drop_runtime_tables_v1() -> None:
    for table in ("revoked_tokens", "denied_users", "inbox", "outbox"):
        op.drop_table(table)


def move_sent_events_out_of_the_outbox() -> None:
    """The outbox keeps only what waits to be published; what the broker confirmed is logged
    in ``outbox_sent`` (id, type, time), the rows already sent included."""
    op.create_table(
        "outbox_sent",
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        _timestamp("sent_at", nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_outbox_sent"),
    )
    op.create_index("ix_outbox_sent_sent_at", "outbox_sent", ["sent_at"], postgresql_using="brin")
    op.execute(
        "INSERT INTO outbox_sent (event_id, event_type, sent_at)"
        " SELECT event_id, event_type, sent_at FROM outbox WHERE sent_at IS NOT NULL ORDER BY id"
    )
    op.execute("DELETE FROM outbox WHERE sent_at IS NOT NULL")
    op.drop_index("ix_outbox_sent_at", "outbox")
    op.drop_index("ix_outbox_unsent", "outbox")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("sent_at")


def keep_sent_events_in_the_outbox() -> None:
    """Back to marking sent rows in the outbox. The log held no bodies, so the week of events
    it held is not brought back; the waiting events stay waiting."""
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(_timestamp("sent_at"))
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["id"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"])
    op.drop_index("ix_outbox_sent_sent_at", "outbox_sent")
    op.drop_table("outbox_sent")
