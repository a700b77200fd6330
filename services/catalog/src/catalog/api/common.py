"""What every catalog view shares: the caller as an Actor, and paged lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select

from catalog.access import READ, WRITE, Actor
from lms_common.api import page, paginate, read_only
from lms_common.auth import current_principal

# Reading needs catalog:read; authors (catalog:write) read what they write without it.
READERS = (READ, WRITE)
WRITERS = (WRITE,)


def actor() -> Actor:
    return Actor.from_principal(current_principal())


def listing(query: Select[Any], model: Any, args: dict[str, Any], render: Callable[[Any], dict[str, Any]]) -> Any:
    """One page of ``query`` in creation order, rendered, with ``next_cursor`` and a Link header."""
    with read_only() as session:
        keys = [model.created_at, model.id]
        rows, cursor = paginate(session, query, keys, args["limit"], args.get("cursor"))
        return page([render(row) for row in rows], cursor)
