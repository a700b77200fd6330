"""CPU time spent by each process of the suite, by PostgreSQL and RabbitMQ, and by the load
generator while a benchmark runs, from /proc: where two shared cores went.

The suite's processes are labelled as for peak memory (:func:`memory.descendants`), gunicorn's
workers of one service summed; PostgreSQL's backends and RabbitMQ's processes are found by
name, so on a shared machine they include whatever else used those servers meanwhile.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from memory import SERVICES, descendants

TICKS = os.sysconf("SC_CLK_TCK")
SERVERS = {"postgres": "PostgreSQL", "beam.smp": "RabbitMQ", "erl_child_setup": "RabbitMQ"}


def _cpu_seconds(pid: int) -> float | None:
    """User and system time of ``pid`` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def _servers() -> dict[int, str]:
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                name = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if name in SERVERS:
                found[int(entry)] = SERVERS[name]
    return found


def _group(label: str) -> str:
    """A service's process kind (``enrollment worker``, ``catalog api``), else the label itself
    for the servers and the load generator, else ``other`` (the launcher, its shells)."""
    words = label.split()
    if words and words[0] in SERVICES:
        return f"{words[0]} api" if len(words) > 1 and words[1] == "api" else label
    return label if label in ("PostgreSQL", "RabbitMQ", "load generator") else "other"


class CpuTime:
    """``with CpuTime(root) as cpu: ...`` then ``cpu.line()``: CPU seconds by process group."""

    def __init__(self, root: int):
        self.root = root
        self.wall = 0.0
        self._start: dict[int, tuple[str, float]] = {}
        self._end: dict[int, tuple[str, float]] = {}

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        labels = {**_servers(), **descendants(self.root), os.getpid(): "load generator"}
        taken = {pid: (label, _cpu_seconds(pid)) for pid, label in labels.items()}
        return {pid: (label, seconds) for pid, (label, seconds) in taken.items() if seconds is not None}

    def __enter__(self) -> CpuTime:
        self._start, self._began = self._snapshot(), time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall = time.perf_counter() - self._began
        self._end = self._snapshot()

    def by_group(self) -> dict[str, float]:
        """Seconds by group, largest first; a process started meanwhile counts from zero (one
        that ended meanwhile is missed)."""
        groups: dict[str, float] = {}
        for pid, (label, seconds) in self._end.items():
            before = self._start.get(pid)
            spent = seconds - (before[1] if before is not None and before[0] == label else 0.0)
            groups[_group(label)] = groups.get(_group(label), 0.0) + spent
        return dict(sorted(groups.items(), key=lambda item: -item[1]))

    def line(self) -> str:
        groups = self.by_group()
        cores = os.cpu_count() or 1
        shown = ", ".join(f"{name} {seconds:.1f}" for name, seconds in groups.items() if seconds >= 0.05)
        return (
            f"{sum(groups.values()):.1f} s of CPU in {self.wall:.1f} s on {cores} cores "
            f"({cores * self.wall:.1f} available): {shown}"
        )
