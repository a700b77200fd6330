"""The tables every service has: outbox, inbox and the deny list.

Revision ID: 0001
Revises:
"""

from lms_common.migrations import create_runtime_tables_v1, drop_runtime_tables_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_runtime_tables_v1()


def downgrade() -> None:
    drop_runtime_tables_v1()
