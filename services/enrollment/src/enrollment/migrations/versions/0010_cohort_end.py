"""Cohorts: their last day (ends_on), from catalog's CohortUpdated.

An ended cohort takes no new members and opens no course it gains. A cohort kept before this
revision has no date until catalog announces it again, and until then is treated as open, as
every cohort was.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cohorts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ends_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cohorts", schema=None) as batch_op:
        batch_op.drop_column("ends_on")
