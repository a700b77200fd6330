"""The outbox keeps only what waits to be published; sent events go to the outbox_sent log.

Marking a row sent wrote the whole row again, with an entry in each of the outbox's indexes,
for every event this service publishes; the relay now deletes it and logs its id, type and
time (kept a week, as the sent rows were). See lms_common.migrations.

Revision ID: 0004
Revises: 0003
"""

from lms_common.migrations import keep_sent_events_in_the_outbox, move_sent_events_out_of_the_outbox

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    move_sent_events_out_of_the_outbox()


def downgrade() -> None:
    keep_sent_events_in_the_outbox()
