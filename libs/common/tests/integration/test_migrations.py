"""Migrations create the runtime tables on PostgreSQL, and running them again changes nothing."""

from __future__ import annotations

import sqlalchemy as sa
from fixture_service import SERVICE

from lms_common import migrations


def test_runtime_tables_are_created_by_migrations_and_upgrade_is_idempotent(postgres_url: str) -> None:
    migrations.upgrade(SERVICE.migrations, postgres_url)
    migrations.upgrade(SERVICE.migrations, postgres_url)
    engine = sa.create_engine(postgres_url)
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names())
        assert {"outbox", "inbox", "denied_users", "revoked_tokens", "alembic_version"} <= tables
        unsent_index = next(ix for ix in inspector.get_indexes("outbox") if ix["name"] == "ix_outbox_unsent")
        assert "sent_at IS NULL" in str(unsent_index["dialect_options"]["postgresql_where"])
    finally:
        engine.dispose()
