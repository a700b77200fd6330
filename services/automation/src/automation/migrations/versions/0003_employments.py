"""Employments: an employee's start dates, each one cycle of its mandatory training.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "employments",
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("employee_id", sa.String(length=200), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "employee_id", "start_date", name=op.f("pk_employments")),
    )


def downgrade() -> None:
    op.drop_table("employments")
