"""Migrations create the runtime tables on PostgreSQL, and running them again changes nothing;
the outbox's sent rows move to the sent log, and back to a marked outbox when downgraded."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from fixture_service import SERVICE

from lms_common import migrations

SENT_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def test_runtime_tables_are_created_by_migrations_and_upgrade_is_idempotent(postgres_url: str) -> None:
    migrations.upgrade(SERVICE.migrations, postgres_url)
    migrations.upgrade(SERVICE.migrations, postgres_url)
    engine = sa.create_engine(postgres_url)
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names())
        assert {"outbox", "outbox_sent", "inbox", "denied_users", "revoked_tokens", "alembic_version"} <= tables
        assert "sent_at" not in {column["name"] for column in inspector.get_columns("outbox")}
        assert {ix["name"] for ix in inspector.get_indexes("outbox")} == {"uq_outbox_event_id"}  # and the key
    finally:
        engine.dispose()


def _outbox_row(event_id: str, sent_at: datetime | None) -> dict[str, object]:
    return {"event_id": event_id, "event_type": "UserDisabled", "routing_key": "identity.UserDisabled",
            "body": b"{}", "headers": "{}", "created_at": SENT_AT, "attempts": 0, "sent_at": sent_at}  # fmt: skip


def test_sent_rows_move_to_the_sent_log_and_waiting_rows_stay(postgres_url: str) -> None:
    migrations.upgrade(SERVICE.migrations, postgres_url, "0001")
    engine = sa.create_engine(postgres_url)
    insert = sa.text(
        "INSERT INTO outbox (event_id, event_type, routing_key, body, headers, created_at, attempts, sent_at)"
        " VALUES (:event_id, :event_type, :routing_key, :body, CAST(:headers AS json), :created_at, :attempts,"
        " :sent_at)"
    )
    try:
        with engine.begin() as connection:
            connection.execute(insert, [_outbox_row("went", SENT_AT), _outbox_row("waits", None)])
        migrations.upgrade(SERVICE.migrations, postgres_url)
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT event_id FROM outbox")).scalars().all() == ["waits"]
            logged = connection.execute(sa.text("SELECT event_id, event_type, sent_at FROM outbox_sent")).all()
            assert logged == [("went", "UserDisabled", SENT_AT)]
            brin = connection.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE tablename = 'outbox_sent'"))
            assert any("USING brin (sent_at)" in definition for definition in brin.scalars())
        migrations.downgrade(SERVICE.migrations, postgres_url, "0001")
        with engine.connect() as connection:
            waiting = connection.execute(sa.text("SELECT event_id, sent_at FROM outbox")).all()
            assert waiting == [("waits", None)]
            assert "outbox_sent" not in sa.inspect(connection).get_table_names()
    finally:
        engine.dispose()
