"""Runtime tables and the effects table of the integration-test service."""

import sqlalchemy as sa
from alembic import op

from lms_common.migrations import create_runtime_tables_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_runtime_tables_v1()
    op.create_table(
        "effects",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(200), nullable=False, index=True),
        sa.Column("n", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("effects")
