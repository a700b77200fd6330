"""Events enrollment consumes: catalog's and identity's state, and automation's commands."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from enrollment import bulk, cohorts, commands, grants, learning, people, purchases, replica
from enrollment.models import ACTIVE, ProgramMember
from lms_common import denylist
from lms_common.envelope import Event, parse_time
from lms_common.processing import BatchHandler, Handler
from lms_common.statistics import StatisticsKeeper

# --- catalog --------------------------------------------------------------------------------------


def on_course(session: Session, event: Event) -> None:
    """A course changed: when its published lessons changed, recompute everyone's progress."""
    if replica.upsert_course(session, event.orgid, event.data):
        learning.recompute_course(session, event.data["course_id"])


def on_product(session: Session, event: Event) -> None:
    """A product changed: when it is active, its grants' holders are enrolled in its courses."""
    product = replica.upsert_product(session, event.orgid, event.data)
    if product is not None and product.status == ACTIVE:
        learning.open_product_enrollments(session, product.id)


def on_program(session: Session, event: Event) -> None:
    """A program changed: members get enrollments in the courses it gained."""
    added = replica.upsert_program(session, event.orgid, event.data)
    if added:
        members = select(ProgramMember.user_id).where(
            ProgramMember.program_id == event.data["program_id"], ProgramMember.removed_at.is_(None)
        )
        ids = list(session.scalars(members))
        learning.enroll(session, event.orgid, ids, added, kind="program", ref=event.data["program_id"])


def on_quiz(session: Session, event: Event) -> None:
    replica.upsert_quiz(session, event.orgid, event.data)


def on_cohort(session: Session, event: Event) -> None:
    """A cohort changed: its members get enrollments in the courses it gained and lose the
    cohort as a source of the ones it dropped."""
    changed = replica.upsert_cohort(session, event.orgid, event.data)
    if changed is not None:
        cohorts.courses_changed(session, event.data["cohort_id"], *changed)


# --- identity -------------------------------------------------------------------------------------


def on_user_provisioned(session: Session, event: Event) -> None:
    """Keep the user, carry out seats and commands that waited for its email, and, the first
    time identity announces it, enroll it in the courses its grants and its organization's
    open (reports see a new member's enrollments now, not at its first look at its courses).

    identity announces a buyer it knows again on each purchase; by then every grant the user
    holds opened its courses when it was made (or when its product turned active)."""
    first = replica.provision_user(session, event.data, event.time)
    grants.resolve_seats(session, event.data["user_id"], event.data["email"])
    commands.resolve_pending(session, event.data["org_id"], event.data["email"], event.data["user_id"])
    if first:
        learning.open_grant_enrollments(session, event.data["user_id"], event.data["org_id"])


def on_users_provisioned(session: Session, events: list[Event]) -> None:
    """A run of UserProvisioned: :func:`on_user_provisioned` for each, in order, the common
    case set-based and the others one at a time where they fall; a run's look-ups through
    their indexes, as for commands (:func:`commands.handle`)."""
    rest = events
    with bulk.by_index_for_a_run(session, events):
        while rest:
            rest = purchases.provision_plain(session, rest, commands.assign_all)
            if rest:
                on_user_provisioned(session, rest[0])
                rest = rest[1:]


def on_user_updated(session: Session, event: Event) -> None:
    replica.upsert_user(session, event.data, event.time)


def on_organization_updated(session: Session, event: Event) -> None:
    replica.upsert_organization(session, event.data)


def on_location_created(session: Session, event: Event) -> None:
    replica.add_location(session, event.data)


def on_contacts_merged(session: Session, event: Event) -> None:
    data = event.data
    people.merge(session, data["org_id"], data["from_user_id"], data["to_user_id"], parse_time(data["merged_at"]))


def on_user_disabled(session: Session, event: Event) -> None:
    """The shared deny list refuses its tokens; here its access to courses closes too."""
    denylist.on_user_disabled(session, event)
    at = parse_time(event.data["disabled_at"])
    people.disable(session, event.orgid, event.data["user_id"], at, event.data.get("reason", "disabled"))


def on_user_enabled(session: Session, event: Event) -> None:
    denylist.on_user_enabled(session, event)
    people.enable(session, event.data["user_id"], parse_time(event.data["enabled_at"]))


# --- automation's commands ------------------------------------------------------------------------


def on_command(session: Session, event: Event) -> None:
    commands.handle(session, [event])


HANDLERS: dict[str, Handler] = {
    **{name: on_course for name in ("CourseCreated", "CourseUpdated", "CoursePublished", "CourseUnpublished")},
    **{name: on_product for name in ("ProductUpdated", "ProductActivated", "ProductDeactivated")},
    **{name: on_program for name in ("ProgramPublished", "ProgramUpdated")},
    "QuizChanged": on_quiz,
    "CohortUpdated": on_cohort,
    "UserProvisioned": on_user_provisioned,
    "UserUpdated": on_user_updated,
    "LocationCreated": on_location_created,
    "OrganizationUpdated": on_organization_updated,
    "ContactsMerged": on_contacts_merged,
    "UserDisabled": on_user_disabled,
    "UserEnabled": on_user_enabled,
    **{name: on_command for name in commands.RUNNERS},
}

# Runs of these commands, and of the purchase path's UserProvisioned, are handled set-based.
# What the batch handlers and the learners' course lists look up as the tables grow, kept
# analyzed (see lms_common.statistics): the batch handlers' statements hold to their indexes
# anyway (bulk.by_index), the others are planned on the tables' real sizes.
KEEPER = StatisticsKeeper(
    ("users", "grants", "seat_holders", "pending_commands", "enrollments", "enrollment_sources", "assignments",
     "program_members"),
    lock=0x454E524C,  # "ENRL"
)  # fmt: skip


BATCH_HANDLERS: dict[str, BatchHandler] = {
    **dict.fromkeys(commands.RUNNERS, commands.handle),
    "UserProvisioned": on_users_provisioned,
}
