"""The outbox keeps only what waits to be published; sent events go to the outbox_sent log.

Revision ID: 0002
Revises: 0001
"""

from lms_common.migrations import keep_sent_events_in_the_outbox, move_sent_events_out_of_the_outbox

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    move_sent_events_out_of_the_outbox()


def downgrade() -> None:
    keep_sent_events_in_the_outbox()
