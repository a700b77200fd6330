"""What every automation view shares: permissions and paged lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select

from lms_common.api import page, paginate, unit_of_work

READ, WRITE = "automation:read", "automation:write"
READERS = (READ, WRITE)
WRITERS = (WRITE,)


def listing(query: Select[Any], keys: list[Any], args: dict[str, Any], render: Callable[[Any], dict[str, Any]]) -> Any:
    """One page of ``query`` in ``keys`` order, rendered, with ``next_cursor`` and a Link header."""
    with unit_of_work() as session:
        rows, cursor = paginate(session, query, keys, args["limit"], args.get("cursor"))
        return page([render(row) for row in rows], cursor)
