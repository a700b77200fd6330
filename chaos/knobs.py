"""The fault suite's counts, ports and its summary table (shared by the conftest and the tests)."""

from __future__ import annotations

import os

SCALE = float(os.environ.get("CHAOS_SCALE", "1"))
PORT_BASE = int(os.environ.get("LMS_E2E_PORT_BASE", "23000"))
HEARTBEAT_SECONDS = 5
FIGURES: list[tuple[str, str, str]] = []


def scaled(count: int, minimum: int = 1) -> int:
    return max(minimum, round(count * SCALE))


def record(fault: str, figure: str, ok: bool) -> None:
    """One line of the summary table; printed as it happens too."""
    FIGURES.append((fault, figure, "ok" if ok else "FAILED"))
    print(f"\n[chaos] {fault}: {figure}", flush=True)
