"""What every attack shares: the ledger of checks (printed at the end) and the world under attack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness import Suite

# Tokens a client may ask for per minute during the run: low enough to reach in a few seconds.
TOKEN_RATE_PER_MINUTE = 200
# Failed sign-ins per client address in 15 minutes, whatever the emails.
FAILED_LOGINS_PER_ADDRESS = 30


@dataclass
class Check:
    area: str
    kind: str  # the attack, e.g. "alg none"
    target: str  # where it was tried, e.g. "catalog GET /v1/courses/{course_id}"
    expected: str
    got: str
    ok: bool

    @property
    def attack(self) -> str:
        return f"{self.kind}: {self.target}" if self.target else self.kind


def statuses(wanted: set[int]) -> str:
    """``{400, ..., 499}`` -> ``4xx``; a short set as it is."""
    parts = []
    for hundred in sorted({status // 100 for status in wanted}):
        group = sorted(s for s in wanted if s // 100 == hundred)
        parts.extend([f"{hundred}xx"] if len(group) >= 50 else map(str, group))
    return "/".join(parts)


@dataclass
class Ledger:
    checks: list[Check] = field(default_factory=list)

    def expect(
        self, area: str, kind: str, expected: set[int] | int, got: int, note: str = "", *, target: str = ""
    ) -> None:
        """Record one attack and its HTTP status; the test fails at its end if any was not as expected."""
        wanted = {expected} if isinstance(expected, int) else expected
        self.checks.append(Check(area, kind, target, statuses(wanted), f"{got} {note}".strip(), got in wanted))

    def record(self, area: str, kind: str, expected: str, got: str, ok: bool, *, target: str = "") -> None:
        """Record one attack whose answer is not an HTTP status."""
        self.checks.append(Check(area, kind, target, expected, got, ok))

    def failures_since(self, start: int) -> list[str]:
        return [f"{c.area}: {c.attack}: expected {c.expected}, got {c.got}" for c in self.checks[start:] if not c.ok]


LEDGER = Ledger()


@dataclass
class World:
    suite: Suite
    bootstrap: dict[str, Any]
    admin: dict[str, str]  # Authorization header of the bootstrap client (every permission)
    signing_key: dict[str, Any]
    ids: dict[str, str] = field(default_factory=dict)  # path parameter -> an id of the default org
