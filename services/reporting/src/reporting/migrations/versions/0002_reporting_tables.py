"""Reporting's tables: the append-only event log, the live-generation marker and the
projections (each keyed by generation and organization; see reporting.models).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assignments",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("assignment_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("course_id", sa.String(length=36), nullable=True),
        sa.Column("program_id", sa.String(length=36), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("mandatory", sa.Boolean(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("previous_assignment_id", sa.String(length=36), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=True),
        sa.Column("overdue_since", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("gen", "org_id", "assignment_id", name=op.f("pk_assignments")),
    )
    op.create_index("ix_assignments_previous", "assignments", ["gen", "org_id", "previous_assignment_id"], unique=False)
    op.create_index("ix_assignments_user", "assignments", ["gen", "org_id", "user_id", "assignment_id"], unique=False)

    op.create_table(
        "certificates",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("certificate_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("course_id", sa.String(length=36), nullable=True),
        sa.Column("program_id", sa.String(length=36), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("verification_code", sa.String(length=200), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gen", "org_id", "certificate_id", name=op.f("pk_certificates")),
    )
    op.create_index("ix_certificates_user", "certificates", ["gen", "org_id", "user_id"], unique=False)

    op.create_table(
        "completions",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("completion_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("course_id", sa.String(length=36), nullable=True),
        sa.Column("program_id", sa.String(length=36), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score_percent", sa.Integer(), nullable=True),
        sa.Column("certificate_id", sa.String(length=36), nullable=True),
        sa.Column("verification_code", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("gen", "org_id", "completion_id", name=op.f("pk_completions")),
    )
    op.create_index(
        "ix_completions_time", "completions", ["gen", "org_id", "completed_at", "completion_id"], unique=False
    )
    op.create_index("ix_completions_user", "completions", ["gen", "org_id", "user_id"], unique=False)

    op.create_table(
        "courses",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("course_id", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fact_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fact_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("gen", "org_id", "course_id", name=op.f("pk_courses")),
    )
    op.create_table(
        "enrollments",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("enrollment_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("course_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress_percent", sa.Integer(), nullable=False),
        sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress_id", sa.String(length=200), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("gen", "org_id", "enrollment_id", name=op.f("pk_enrollments")),
    )
    op.create_index("ix_enrollments_course", "enrollments", ["gen", "org_id", "course_id"], unique=False)
    op.create_index("ix_enrollments_user", "enrollments", ["gen", "org_id", "user_id", "course_id"], unique=False)

    op.create_table(
        "event_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("orgid", sa.String(length=200), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_event_log")),
        sa.UniqueConstraint("id", name=op.f("uq_event_log_id")),
    )
    op.create_index("ix_event_log_orgid_time", "event_log", ["orgid", "time"], unique=False)
    op.create_index(op.f("ix_event_log_received_at"), "event_log", ["received_at"], unique=False)

    op.create_table(
        "learners",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("first_name", sa.String(length=200), nullable=True),
        sa.Column("last_name", sa.String(length=200), nullable=True),
        sa.Column("location_id", sa.String(length=36), nullable=True),
        sa.Column("department", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("merged_into", sa.String(length=36), nullable=True),
        sa.Column("field_at", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("gen", "org_id", "user_id", name=op.f("pk_learners")),
    )
    op.create_index("ix_learners_location", "learners", ["gen", "org_id", "location_id", "user_id"], unique=False)

    op.create_table(
        "lesson_completions",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("enrollment_id", sa.String(length=200), nullable=False),
        sa.Column("lesson_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("course_id", sa.String(length=36), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gen", "org_id", "enrollment_id", "lesson_id", name=op.f("pk_lesson_completions")),
    )
    op.create_table(
        "locations",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("location_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("gen", "org_id", "location_id", name=op.f("pk_locations")),
    )
    op.create_table(
        "program_courses",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("program_id", sa.String(length=200), nullable=False),
        sa.Column("course_id", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("gen", "org_id", "program_id", "course_id", name=op.f("pk_program_courses")),
    )
    op.create_table(
        "program_members",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("program_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("member", sa.Boolean(), nullable=False),
        sa.Column("membership_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("membership_id", sa.String(length=200), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("gen", "org_id", "program_id", "user_id", name=op.f("pk_program_members")),
    )
    op.create_table(
        "programs",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("program_id", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("course_ids", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fact_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fact_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("gen", "org_id", "program_id", name=op.f("pk_programs")),
    )
    op.create_table(
        "projection_state",
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("rebuilt_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_projection_state")),
    )
    op.create_table(
        "quiz_attempts",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("attempt_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("quiz_id", sa.String(length=36), nullable=False),
        sa.Column("course_id", sa.String(length=36), nullable=False),
        sa.Column("enrollment_id", sa.String(length=36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("score_percent", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gen", "org_id", "attempt_id", name=op.f("pk_quiz_attempts")),
    )
    op.create_index("ix_quiz_attempts_user", "quiz_attempts", ["gen", "org_id", "user_id"], unique=False)

    op.create_table(
        "user_aliases",
        sa.Column("gen", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("from_user_id", sa.String(length=200), nullable=False),
        sa.Column("to_user_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("gen", "org_id", "from_user_id", name=op.f("pk_user_aliases")),
    )

    op.bulk_insert(
        sa.table("projection_state", sa.column("name", sa.String()), sa.column("generation", sa.Integer())),
        [{"name": "live", "generation": 1}],
    )


def downgrade() -> None:
    op.drop_table("user_aliases")
    op.drop_index("ix_quiz_attempts_user", table_name="quiz_attempts")

    op.drop_table("quiz_attempts")
    op.drop_table("projection_state")
    op.drop_table("programs")
    op.drop_table("program_members")
    op.drop_table("program_courses")
    op.drop_table("locations")
    op.drop_table("lesson_completions")
    op.drop_index("ix_learners_location", table_name="learners")

    op.drop_table("learners")
    op.drop_index(op.f("ix_event_log_received_at"), table_name="event_log")
    op.drop_index("ix_event_log_orgid_time", table_name="event_log")

    op.drop_table("event_log")
    op.drop_index("ix_enrollments_user", table_name="enrollments")
    op.drop_index("ix_enrollments_course", table_name="enrollments")

    op.drop_table("enrollments")
    op.drop_table("courses")
    op.drop_index("ix_completions_user", table_name="completions")
    op.drop_index("ix_completions_time", table_name="completions")

    op.drop_table("completions")
    op.drop_index("ix_certificates_user", table_name="certificates")

    op.drop_table("certificates")
    op.drop_index("ix_assignments_user", table_name="assignments")
    op.drop_index("ix_assignments_previous", table_name="assignments")

    op.drop_table("assignments")
