"""Drop the (org_id, user_id) indexes of assignments and enrollments.

Every query that names a user also finds it through the unique (user_id, ...) index of the
same table, and no query reads an organization's rows in user order; each of these indexes
cost every bulk assignment one more random index insert per row (about a tenth of its
150,000-row inserts).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_org_user")
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrollments_org_user")


def downgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.create_index("ix_enrollments_org_user", ["org_id", "user_id"], unique=False)
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index("ix_assignments_org_user", ["org_id", "user_id"], unique=False)
