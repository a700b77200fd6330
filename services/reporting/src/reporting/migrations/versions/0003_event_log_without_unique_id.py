"""The event log loses its unique index on the event id.

Reporting's inbox already holds each event id once, and an event is logged in the same
transaction as its inbox row and only when that row is new: the second unique index checked
nothing the first had not. Event ids are random, so each logged event cost an insert into a
random leaf of it; during 5,000 onboardings the log's COPY touched 9.4 pages per event, and
the index outgrows the server's memory long before the log stops growing. Nothing reads the
log by event id: rebuilds read it by ``seq`` and ``received_at``, reports by organization and
time.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_event_log_id"), type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_event_log_id"), ["id"])
