"""Runs lose their index on the organization alone.

Every lookup of runs names the organization with more: the rule and event (``uq_runs_rule_event``)
or the time (``ix_runs_org_created``), both of which lead with it. The single-column index cost
every run insert an index entry, and the planner sometimes chose it for a run lookup by event:
in a burst of 3,000 invoices it was scanned 2,301 times, reading 4.8 million index entries, each
scan every run of the organization.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_org_id"))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_org_id"), ["org_id"], unique=False)
