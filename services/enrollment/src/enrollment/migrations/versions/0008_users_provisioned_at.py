"""Users: when identity first announced each (provisioned_at).

identity announces a user again on each purchase by a buyer it knows. Opening what the user's
grants hold is needed only on the first announcement (every later grant opens its own
courses when it is made), and it read every grant, enrollment and source the buyer held: a
purchase cost more with each one before it. Users kept before this revision have no time;
their next announcement opens their grants once more, as every announcement did until now.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provisioned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("provisioned_at")
