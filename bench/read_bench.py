"""Authenticated reads alone: catalog's and enrollment's APIs (no broker, no other service)
against the bare JWT endpoint, for one checkout or side by side for two.

    python bench/read_bench.py [--baseline /path/to/other/checkout] [--seconds 15] [--rounds 1]
                               [--learner-courses 30]

Each checkout gets its own databases (migrated by its own code), seeded alike: 100 published
courses in one organization, and a learner holding a grant of a product of 30 courses (or
``--learner-courses``; `GET /v1/me/courses` answers its first page, 50 at most). The keys
come from a JWKS served by this script; tokens are minted here as identity mints them. Every
endpoint is loaded in turn (bare, catalog, enrollment), checkout after checkout, so the ratios of
one round share the machine's weather. Besides requests/s and latency it reports the CPU time
spent per request by the API's processes and the PostgreSQL backends serving it, a figure other
load on the machine disturbs far less. Ports: LMS_E2E_PORT_BASE + 400 and up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests-e2e"))

import api_bench  # noqa: E402
import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from joserfc import jwt  # noqa: E402
from joserfc.jwk import KeySet, RSAKey  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from lms_common.testing import DEFAULT_TEST_DATABASE_URL  # noqa: E402

ORG = str(uuid.uuid4())
ADMIN = str(uuid.uuid4())
LEARNER = str(uuid.uuid4())
KID = "k-bench"
KEY = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"}, private=True)
ALL_SCOPES = "catalog:read catalog:write content:grant settings:write enrollment:read enrollment:write learner"
COURSES = 100
LEARNER_COURSES = 30
# Every checkout is seeded with the same ids and times, so their answers can be compared byte for byte.
SEEDED_AT = datetime.now(UTC).replace(microsecond=123456)


def seeded_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ORG}/{name}"))


def serve_jwks(port: int) -> ThreadingHTTPServer:
    body = json.dumps(KeySet([KEY]).as_dict(private=False)).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def token(issuer: str, subject: str, scope: str) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer, "aud": "lms", "iat": now, "nbf": now, "exp": now + 900, "jti": str(uuid.uuid4()),
        "client_id": "bench", "sub": subject, "org": ORG, "scope": scope,
    }  # fmt: skip
    return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": KID}, claims, KEY)


def create_database(admin_url: str, name: str) -> str:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed_catalog(url: str) -> None:
    now = SEEDED_AT
    rows = [
        {"id": seeded_id(f"course-{i}"), "org_id": ORG, "title": f"Course {i}", "description": "About course " * 8,
         "status": "published", "created_by": ADMIN, "version": 2, "created_at": now + timedelta(seconds=i),
         "updated_at": now, "published_at": now}
        for i in range(COURSES)
    ]  # fmt: skip
    _insert(url, "courses", rows)


def seed_enrollment(url: str, learner_courses: int) -> None:
    now = SEEDED_AT
    courses = [seeded_id(f"course-{i}") for i in range(learner_courses)]
    product, grant = seeded_id("product"), seeded_id("grant")
    enrollments = [seeded_id(f"enrollment-{i}") for i in range(learner_courses)]
    _insert(url, "courses", [
        {"id": c, "org_id": ORG, "title": f"Course {i}", "status": "published", "version": 2, "lesson_count": 5}
        for i, c in enumerate(courses)
    ])  # fmt: skip
    _insert(url, "products", [{"id": product, "org_id": ORG, "title": "Bundle", "status": "active", "version": 1}])
    links = [{"product_id": product, "course_id": c, "position": i} for i, c in enumerate(courses)]
    _insert(url, "product_courses", links)
    _insert(url, "users", [
        {"id": LEARNER, "org_id": ORG, "email": "learner@bench.example", "first_name": "Ada", "last_name": "L",
         "updated_at": now}
    ])  # fmt: skip
    _insert(url, "grants", [{"id": grant, "org_id": ORG, "product_id": product, "user_id": LEARNER,
                             "owner_key": f"user:{LEARNER}", "status": "active", "seats_used": 0, "source": "bench",
                             "created_at": now}])  # fmt: skip
    _insert(url, "enrollments", [
        {"id": e, "org_id": ORG, "user_id": LEARNER, "course_id": c, "progress_percent": 20,
         "first_source": "grant", "first_source_id": grant, "enrolled_at": now + timedelta(seconds=i)}
        for i, (e, c) in enumerate(zip(enrollments, courses, strict=True))
    ])  # fmt: skip
    sources = [{"enrollment_id": e, "kind": "grant", "ref": grant, "active": True} for e in enrollments]
    _insert(url, "enrollment_sources", sources)


def _insert(url: str, table: str, rows: list[dict[str, Any]]) -> None:
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    target = sa.Table(table, metadata, autoload_with=engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(target), rows)
    engine.dispose()


class Checkout:
    """One working tree: its interpreter, its databases and its API processes."""

    def __init__(self, root: Path, label: str, admin_url: str, env: dict[str, str]):
        self.root, self.label, self.admin_url = root, label, admin_url
        self.python = str(root / ".venv/bin/python")
        self.run = uuid.uuid4().hex[:8]
        self.env = {**env, "PATH": f"{root / '.venv/bin'}:{os.environ['PATH']}"}
        self.processes: list[subprocess.Popen[bytes]] = []

    def prepare(self, learner_courses: int) -> None:
        for service in ("catalog", "enrollment"):
            url = create_database(self.admin_url, f"lms_read_{self.run}_{service}")
            self.env[f"LMS_{service.upper()}_DATABASE_URL"] = url
            self._python("-m", service, "migrate")
            if service == "catalog":
                seed_catalog(url)
            else:
                seed_enrollment(url, learner_courses)

    def start(self, service: str, port: int) -> str:
        env = {**self.env, f"LMS_{service.upper()}_PORT": str(port), "LMS_METRICS_DIR": ""}
        self._spawn([self.python, "-m", service, "api"], env, self.root)
        return _wait(f"http://127.0.0.1:{port}/healthz", f"http://127.0.0.1:{port}")

    def start_bare(self, port: int) -> str:
        env = {**self.env, "PYTHONPATH": str(self.root / "bench"), "LMS_METRICS_DIR": ""}
        conf = ["-c", "python:lms_common.gunicorn_conf", "-b", f"127.0.0.1:{port}"]
        self._spawn([self.python, "-m", "gunicorn", *conf, "bare_app:create_app()"], env, self.root / "bench")
        return _wait(f"http://127.0.0.1:{port}/bare", f"http://127.0.0.1:{port}/bare")

    def _spawn(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        out = subprocess.DEVNULL if not os.environ.get("READ_BENCH_VERBOSE") else None
        self.processes.append(subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=out))

    def _python(self, *args: str) -> None:
        subprocess.run([self.python, *args], env=self.env, cwd=self.root, check=True, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        for process in self.processes:
            api_bench.stop(process)
        self.processes.clear()

    def pids(self) -> list[int]:
        """Every API process (gunicorn masters and workers) and every backend on our databases."""
        found = [pid for process in self.processes for pid in _tree(process.pid)]
        names = [f"lms_read_{self.run}_{service}" for service in ("catalog", "enrollment")]
        admin = sa.create_engine(self.admin_url, poolclass=sa.NullPool)
        with admin.connect() as connection:
            query = sa.text("SELECT pid FROM pg_stat_activity WHERE datname = ANY(:names)")
            found += connection.execute(query, {"names": names}).scalars().all()
        admin.dispose()
        return found

    def remove(self) -> None:
        self.stop()
        for service in ("catalog", "enrollment"):
            drop_database(self.admin_url, f"lms_read_{self.run}_{service}")


def _tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(grandchild for child in children for grandchild in _tree(int(child)))]


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """pid -> user + system CPU time so far, in clock ticks."""
    ticks = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[pid] = int(stat[11]) + int(stat[12])
    return ticks


def _wait(probe: str, base: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(probe, timeout=2)
            return base
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError(f"{probe} did not answer")


Figures = dict[str, tuple[float, float, float, int, float]]


def measure(checkout: Checkout, issuer: str, port: int, seconds: float) -> tuple[Figures, dict[str, bytes]]:
    """name -> (requests/s, p50 ms, p99 ms, errors, CPU ms per request) for the bare endpoint and
    both reads, and name -> the body of the reads' answers."""
    bare = checkout.start_bare(port)
    catalog = checkout.start("catalog", port + 1)
    enrollment = checkout.start("enrollment", port + 2)
    targets = {
        "bare": (bare, token(issuer, ADMIN, ALL_SCOPES)),
        "catalog": (f"{catalog}/v1/courses?limit=20", token(issuer, ADMIN, ALL_SCOPES)),
        "enrollment": (f"{enrollment}/v1/me/courses", token(issuer, LEARNER, "learner catalog:read")),
    }
    try:
        bodies = {name: _check(url, bearer) for name, (url, bearer) in targets.items() if name != "bare"}
        return {name: _load(checkout, url, bearer, seconds) for name, (url, bearer) in targets.items()}, bodies
    finally:
        checkout.stop()


def _check(url: str, bearer: str) -> bytes:
    response = requests.get(url, headers={"Authorization": f"Bearer {bearer}"}, timeout=10)
    response.raise_for_status()
    for _ in range(50):  # warm every thread's connection and caches
        requests.get(url, headers={"Authorization": f"Bearer {bearer}"}, timeout=10)
    return response.content


def _load(checkout: Checkout, url: str, bearer: str, seconds: float) -> tuple[float, float, float, int, float]:
    before = cpu_ticks(checkout.pids())
    rate, p50, p99, errors, count = wrk(url, bearer, seconds)
    after = cpu_ticks(checkout.pids())
    spent = sum(ticks - before.get(pid, 0) for pid, ticks in after.items()) / os.sysconf("SC_CLK_TCK")
    return rate, p50, p99, errors, 1000 * spent / max(count, 1)


def wrk(url: str, bearer: str, seconds: float) -> tuple[float, float, float, int, int]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{api_bench.CONNECTIONS}", f"-d{int(seconds)}s", "--latency",
         "-H", f"Authorization: Bearer {bearer}", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(_field(out, r"Requests/sec:\s+([\d.]+)"))
    p50 = api_bench._ms(_field(out, r"\s50%\s+([\d.]+\w+)"))
    p99 = api_bench._ms(_field(out, r"\s99%\s+([\d.]+\w+)"))
    errors = _field(out, r"Non-2xx or 3xx responses:\s+(\d+)", "0")
    count = _field(out, r"(\d+) requests in")
    return rate, p50, p99, int(errors), int(count)


def _field(text: str, pattern: str, default: str | None = None) -> str:
    import re

    found = re.search(pattern, text)
    if found is None and default is None:
        raise RuntimeError(f"wrk printed no {pattern!r}:\n{text}")
    return found.group(1) if found else default  # type: ignore[return-value]


def report(label: str, figures: Figures) -> None:
    bare_rate = figures["bare"][0]
    for name, (rate, p50, p99, errors, cpu_ms) in figures.items():
        ratio = "" if name == "bare" else f"  {rate / bare_rate:.2f} of bare"
        note = f"  [{errors} errors]" if errors else ""
        figures_text = f"{rate:8.0f} req/s  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  CPU {cpu_ms:5.2f} ms/req"
        print(f"  {label:<10} {name:<11} {figures_text}{ratio}{note}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout (with its .venv) measured first")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--learner-courses", type=int, default=LEARNER_COURSES)
    args = parser.parse_args()
    base = int(os.environ.get("LMS_E2E_PORT_BASE", "25000")) + 400
    issuer = f"http://127.0.0.1:{base}"
    jwks = serve_jwks(base)
    admin_url = os.environ.get("LMS_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    env = {
        **os.environ,
        "LMS_ISSUER": issuer,
        "LMS_API_WORKERS": os.environ.get("LMS_API_WORKERS", "2"),
        "LMS_LOG_LEVEL": os.environ.get("LMS_LOG_LEVEL", "WARNING"),
        "LMS_VAR_DIR": tempfile.mkdtemp(prefix="lms-read-bench-"),
    }
    checkouts = [Checkout(HERE.parent, "this", admin_url, env)]
    if args.baseline:
        checkouts.insert(0, Checkout(args.baseline.resolve(), "baseline", admin_url, env))
    try:
        for checkout in checkouts:
            checkout.prepare(args.learner_courses)
        for number in range(args.rounds):
            print(f"round {number + 1} (wrk, {api_bench.CONNECTIONS} connections, {args.seconds:.0f} s each)")
            answers = []
            for i, checkout in enumerate(checkouts):
                figures, bodies = measure(checkout, issuer, base + 10 * (i + 1), args.seconds)
                report(checkout.label, figures)
                answers.append(bodies)
            if len(answers) == 2:
                print(f"  answers byte for byte the same: {answers[0] == answers[1]}", flush=True)
    finally:
        for checkout in checkouts:
            checkout.remove()
        jwks.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
