"""Replicas of other services' facts that rules need: catalog items and course completions.

Catalog events carry the whole state of their aggregate with a growing ``version``: the highest
version wins, so a late older event never overwrites a newer state.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.models import CatalogItem, Completion
from lms_common.envelope import Event, parse_time

PRODUCT, COURSE, PROGRAM = "product", "course", "program"


def keep_catalog_item(session: Session, event: Event, kind: str) -> None:
    """Keep the newest state of a product, course or program of the event's organization."""
    data = event.data
    item_id = data[f"{kind}_id"]
    item = session.get(CatalogItem, (kind, item_id), with_for_update=True)
    if item is not None and item.version >= data["version"]:
        return
    if item is None:
        item = CatalogItem(kind=kind, item_id=item_id)
        session.add(item)
    item.org_id, item.version, item.title = event.orgid, data["version"], data["title"]
    item.status = str(data.get("status") or ("published" if data.get("published") else "draft"))
    item.course_ids = list(data.get("course_ids") or [])


def unknown_items(session: Session, org: str, kind: str, item_ids: Iterable[str]) -> list[str]:
    """The ids among ``item_ids`` that are not a ``kind`` of this organization."""
    wanted = list(dict.fromkeys(item_ids))
    if not wanted:
        return []
    query = select(CatalogItem.item_id).where(
        CatalogItem.kind == kind, CatalogItem.org_id == org, CatalogItem.item_id.in_(wanted)
    )
    known = set(session.scalars(query))
    return [item_id for item_id in wanted if item_id not in known]


def keep_completion(session: Session, event: Event) -> None:
    """The latest completion of a course by a user (recertification counts from it)."""
    data = event.data
    completed_at = parse_time(data["completed_at"]) if data.get("completed_at") else event.time
    key = (event.orgid, data["user_id"], data["course_id"])
    completion = session.get(Completion, key, with_for_update=True)
    if completion is None:
        session.add(Completion(org_id=key[0], user_id=key[1], course_id=key[2], completed_at=completed_at))
    elif completion.completed_at < completed_at:
        completion.completed_at = completed_at
