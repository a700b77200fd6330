"""Private PostgreSQL and RabbitMQ servers owned by the fault suite.

Faults that restart or kill the broker or the database never touch the machine's shared
servers: the suite starts its own cluster and node on its own ports, in a temporary directory,
as its own child processes, and stops them by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pika
import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQ_HOME = "/var/lib/rabbitmq"  # its Erlang cookie, shared with rabbitmqctl


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Erlang's port helpers start sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _wait(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s")


@dataclass
class PrivatePostgres:
    """A throw-away PostgreSQL cluster on ``port`` (trust authentication, loopback only)."""

    port: int
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lms-chaos-pg-")))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True)

    def start(self) -> None:
        shutil.chown(self.root, "postgres")
        if not self.data.exists():
            self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300 "
            "-c fsync=off -c full_page_writes=off"  # commits must survive -m immediate: synchronous_commit stays on
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start"
        )
        _wait(self.answers, 60, "private PostgreSQL")

    def answers(self) -> bool:
        try:
            psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", connect_timeout=2).close()
            return True
        except psycopg.Error:
            return False

    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def restart_immediate(self) -> None:
        """Crash-stop (``-m immediate``: no shutdown checkpoint, recovery at start) and start again."""
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.start()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class PrivateRabbit:
    """A RabbitMQ node of its own (name, ports, data directory), run in the foreground as our child."""

    port: int
    node: str
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lms-chaos-rmq-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def env(self) -> dict[str, str]:
        plugins = self.root / "enabled_plugins"
        if not plugins.exists():
            plugins.write_text("[].\n")
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(self.port + 1),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq"),  # absent: the defaults
        }

    def start(self) -> None:
        # Debian's rabbitmq-server switches to the rabbitmq user, which must own the node's files.
        env = self.env()
        for path in (self.root, *self.root.rglob("*")):
            shutil.chown(path, "rabbitmq", "rabbitmq")
        # setpriv execs in place (su would fork into a session of its own): the node stays our
        # child, in our process group.
        command = ["setpriv", "--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups", RABBITMQ_SERVER]
        with (self.root / "server.out").open("ab") as out:
            self.process = subprocess.Popen(
                command, env={**env, "HOME": RABBITMQ_HOME}, cwd=self.root, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        _wait(self.answers, 180, "private RabbitMQ")

    def answers(self) -> bool:
        try:
            pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2")).close()
            return True
        except Exception:
            return False

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            ["rabbitmqctl", "-n", self.node, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return result.stdout

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: an orderly shutdown; SIGKILL: the node dies where it stands."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        helpers = descendants(process.pid)
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        for pid in helpers:  # the node's own helpers, should any outlive it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
