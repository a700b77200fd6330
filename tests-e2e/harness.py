"""Start and stop the whole suite as real processes, the way `make run` does, on PostgreSQL and
RabbitMQ, each run in its own databases, exchange and queues. The end-to-end tests, the fault
suite and the benchmarks all drive the suite started here, only through HTTP and AMQP."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pika
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lms_common.testing import DEFAULT_TEST_AMQP_URL, DEFAULT_TEST_DATABASE_URL, wait_until

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("identity", "catalog", "enrollment", "automation", "reporting")
WORKERS = ("identity", "catalog", "enrollment", "automation", "reporting")
RELAYS = ("identity", "catalog", "enrollment", "automation")
# Away from `make run`'s 8001-8005, so both can run on one machine; LMS_E2E_PORT_BASE moves it
# so that two checkouts can run their suites side by side.
DEFAULT_PORT_BASE = 18000
# Every database is migrated before any API starts: on a busy two-core machine that alone can
# take minutes.
START_TIMEOUT = 600.0


@dataclass
class Suite:
    ports: dict[str, int]
    amqp_url: str
    exchange: str
    queue_prefix: str
    process: subprocess.Popen[bytes] | None
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)
    # In "processes" mode: each Procfile process by name (e.g. "enrollment-worker"), own PID.
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    process_env: dict[str, dict[str, str]] = field(default_factory=dict)

    def start_process(self, name: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start one Procfile process on its own (processes mode); ``extra_env`` is kept for restarts."""
        if extra_env is not None:
            self.process_env[name] = extra_env
        command = procfile()[name]
        log_dir = self.log.parent / "logs"
        log_dir.mkdir(exist_ok=True)
        with (log_dir / f"{name}.log").open("ab") as out:
            process = subprocess.Popen(
                command,
                env={**self.env, **self.process_env.get(name, {})},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one process and everything it started (its own process group), and reap it."""
        process = self.processes[name]
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def restart(self, name: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.kill(name, signal.SIGTERM)
        return self.start_process(name, extra_env)

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def worker_metrics(self, service: str) -> str:
        return requests.get(f"http://127.0.0.1:{self.ports[service] + 100}/metrics", timeout=5).text

    def relay_metrics(self, service: str) -> str:
        return requests.get(f"http://127.0.0.1:{self.ports[service] + 200}/metrics", timeout=5).text

    def bootstrap(self) -> dict[str, object]:
        """The super admin and OAuth clients identity wrote on its first start."""
        import json

        return dict(json.loads((Path(self.env["LMS_VAR_DIR"]) / "bootstrap.json").read_text()))

    def bootstrap_token(self) -> str:
        """An access token of the bootstrap client, which holds every scope."""
        boot = self.bootstrap()
        return client_token(self, str(boot["client_id"]), str(boot["client_secret"]))

    def publish(self, routing_key: str, body: bytes, message_id: str) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            properties = pika.BasicProperties(
                content_type="application/cloudevents+json", message_id=message_id, delivery_mode=2
            )
            channel.basic_publish(self.exchange, routing_key, body, properties=properties, mandatory=True)
        finally:
            connection.close()


def procfile() -> dict[str, list[str]]:
    """The Procfile's processes: name -> command."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {
        name.strip(): shlex.split(command)
        for name, _, command in (line.partition(":") for line in lines)
        if command.strip() and not name.startswith("#")
    }


def client_token(suite: Suite, client_id: str, secret: str, scope: str | None = None) -> str:
    """An access token by the client-credentials grant, as an outside system gets one."""
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    response = requests.post(suite.url("identity", "/oauth/token"), data=data, auth=(client_id, secret), timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def start_suite(
    work_dir: Path,
    *,
    amqp_url: str | None = None,
    admin_database_url: str | None = None,
    port_base: int | None = None,
    extra_env: dict[str, str] | None = None,
    mode: str = "honcho",
) -> Suite:
    """Create this run's databases, start the suite and wait until every API answers.

    ``mode="honcho"`` starts `deploy/local/run.sh`, as `make run` does. ``mode="processes"``
    does what run.sh does (migrate and declare the topology of every service), then starts each
    Procfile process on its own, so that a fault test can kill and restart any one by its PID.
    """
    run = uuid.uuid4().hex[:8]
    admin_url = admin_database_url or os.environ.get("LMS_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    amqp_url = amqp_url or os.environ.get("LMS_TEST_AMQP_URL", DEFAULT_TEST_AMQP_URL)
    base = _port_base(port_base)
    databases = {service: f"lms_e2e_{run}_{service}" for service in SERVICES}
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in databases.values():
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    ports = {service: base + i + 1 for i, service in enumerate(SERVICES)}
    (work_dir / "var").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "LMS_AMQP_URL": amqp_url,
        "LMS_EXCHANGE": f"lms.e2e.{run}",
        "LMS_QUEUE_PREFIX": f"e2e.{run}.",
        "LMS_VAR_DIR": str(work_dir / "var"),
        "LMS_ISSUER": f"http://127.0.0.1:{ports['identity']}",
        "LMS_API_WORKERS": "1",
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",  # this virtualenv first
        **(extra_env or {}),
    }
    for service, name in databases.items():
        env[f"LMS_{service.upper()}_DATABASE_URL"] = (
            make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        )
        env[f"LMS_{service.upper()}_PORT"] = str(ports[service])
    log = work_dir / "suite.log"
    suite = Suite(ports, amqp_url, env["LMS_EXCHANGE"], env["LMS_QUEUE_PREFIX"], None, log, env, databases)
    try:
        if mode == "processes":
            _start_processes(suite)
        else:
            with log.open("wb") as out:
                suite.process = subprocess.Popen(
                    [str(ROOT / "deploy/local/run.sh")],
                    env=env,
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        for service in SERVICES:
            healthz = suite.url(service, "/healthz")
            wait_until(lambda healthz=healthz: _answers(healthz), timeout=START_TIMEOUT, interval=0.5)
    except BaseException:
        # the log goes with the suite's directory: show why it did not start before removing it
        sys.stderr.write(f"the suite did not start; the end of {log}:\n{_tail(log)}\n")
        remove_suite(suite, admin_url)
        raise
    return suite


def suite_ports(base: int) -> list[int]:
    """Every port a suite on ``base`` listens on: APIs, worker and relay metrics."""
    return [base + offset + i + 1 for offset in (0, 100, 200) for i in range(len(SERVICES))]


def _port_free(port: int) -> bool:
    """Whether nothing listens on ``port``; connections of an earlier suite that linger in
    TIME_WAIT do not count, since gunicorn and the metrics servers bind with SO_REUSEADDR too."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_base(requested: int | None) -> int:
    """The asked-for base (argument or LMS_E2E_PORT_BASE), which must be free; by default the
    first free one from 18000 in steps of 1,000, so that two runs on one machine do not meet."""
    if requested is None and "LMS_E2E_PORT_BASE" in os.environ:
        requested = int(os.environ["LMS_E2E_PORT_BASE"])
    candidates = [requested] if requested is not None else [DEFAULT_PORT_BASE + 1000 * n for n in range(10)]
    for base in candidates:
        busy = [port for port in suite_ports(base) if not _port_free(port)]
        if not busy:
            return base
    raise RuntimeError(f"ports {busy} are in use: set LMS_E2E_PORT_BASE to a free range")


def _tail(log: Path, lines: int = 80) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(unreadable: {error})"


def _start_processes(suite: Suite) -> None:
    with suite.log.open("ab") as out:
        for service in SERVICES:
            for step in ("migrate", "topology"):
                command = [sys.executable, "-m", service, step]
                subprocess.run(command, env=suite.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=True)
    for name in procfile():
        suite.start_process(name)


def stop_suite(suite: Suite) -> None:
    """Ctrl-C, as a person at the terminal would; everything the suite started must exit."""
    for process in suite.processes.values():  # all at once, then wait for each
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
    for name in suite.processes:
        suite.kill(name, signal.SIGINT)
    if suite.process is not None and suite.process.poll() is None:
        os.killpg(suite.process.pid, signal.SIGINT)
        try:
            suite.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(suite.process.pid, signal.SIGKILL)
            suite.process.wait(timeout=10)


def remove_suite(suite: Suite, admin_database_url: str | None = None) -> None:
    """Stop the suite and drop everything this run created on the broker and the database server."""
    stop_suite(suite)
    _remove_broker_objects(suite)
    admin_url = admin_database_url or os.environ.get("LMS_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in suite.databases.values():
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _remove_broker_objects(suite: Suite) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(suite.amqp_url))
    try:
        channel = connection.channel()
        for service in SERVICES:
            channel.queue_delete(f"{suite.queue_prefix}{service}")
            channel.queue_delete(f"{suite.queue_prefix}{service}.dead")
        channel.exchange_delete(suite.exchange)
        channel.exchange_delete(f"{suite.exchange}.dead")
    finally:
        connection.close()
