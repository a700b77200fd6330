"""Peak resident memory of every process of the suite, sampled from /proc while a benchmark runs.

The suite's processes are the descendants of its launcher (honcho under deploy/local/run.sh).
Each is named by its command line (``enrollment worker``, ``catalog api master``; gunicorn's
forked workers are ``catalog api worker``). The peak is the largest sampled VmRSS and, for
processes alive at the end, the kernel's own high-water mark VmHWM.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

SERVICES = ("identity", "catalog", "enrollment", "automation", "reporting")


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in lines if ":" in line)


def _kib(value: str | None) -> int:
    return int(value.split()[0]) if value else 0


def descendants(root: int) -> dict[int, str]:
    """pid -> label of every process under ``root`` (honcho gives each child its own group)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _status(int(entry)).get("PPid", "").strip()
            if ppid.isdigit():
                parents[int(entry)] = int(ppid)
    members: dict[int, str] = {}
    for pid in parents:
        ancestor = pid
        while ancestor in parents and ancestor != root:
            ancestor = parents[ancestor]
        if ancestor != root or pid == root:
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        members[pid] = _label(pid, [a.decode(errors="replace") for a in argv if a])
    return members


def _label(pid: int, argv: list[str]) -> str:
    if "-m" in argv and len(argv) > argv.index("-m") + 2 and argv[argv.index("-m") + 1] != "gunicorn":
        at = argv.index("-m")
        return f"{argv[at + 1]} {argv[at + 2]}"
    app = next((a for a in argv if a.endswith(".app:create_app()")), None)
    if app is not None:
        service = app.split(".")[0]
        parent = int(_status(pid).get("PPid", "0").strip() or 0)
        parent_argv = Path(f"/proc/{parent}/cmdline").read_bytes() if parent else b""
        return f"{service} api worker" if b"create_app()" in parent_argv else f"{service} api master"
    return " ".join(Path(a).name for a in argv[:3]) or f"pid {pid}"


class PeakRss:
    """Samples the suite's processes every ``interval`` seconds until stopped; peaks in MiB by label."""

    def __init__(self, root: int, interval: float = 0.5):
        self.root, self.interval = root, interval
        self.peaks_kib: dict[int, int] = {}
        self.labels: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sample(final=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample(final=False)

    def _sample(self, *, final: bool) -> None:
        for pid, label in descendants(self.root).items():
            status = _status(pid)
            rss = _kib(status.get("VmHWM" if final else "VmRSS"))
            self.labels.setdefault(pid, label)
            self.peaks_kib[pid] = max(self.peaks_kib.get(pid, 0), rss)

    def by_label(self) -> dict[str, float]:
        """The largest peak among the processes of each label, in MiB (honcho and shells left out)."""
        peaks: dict[str, float] = {}
        for pid, kib in self.peaks_kib.items():
            label = self.labels[pid]
            if label.split()[0] in SERVICES and (" api" in label or label.endswith((" worker", " relay"))):
                peaks[label] = max(peaks.get(label, 0.0), kib / 1024)
        return dict(sorted(peaks.items()))
