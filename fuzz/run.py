"""Fuzz every service's REST API with schemathesis, against the whole suite started by the
end-to-end harness in its own databases, exchange and ports.

Each service's OpenAPI document must validate (openapi-spec-validator); then schemathesis
generates valid and invalid requests from it and checks that no request is answered with a 5xx,
that responses match the documented schemas and that invalid input is refused.

    python fuzz/run.py                      # what `make fuzz` runs: 300 examples per operation
    python fuzz/run.py --max-examples 10    # the bounded run `make test` includes
    python fuzz/run.py --services catalog --max-examples 50 --seed 1

Reports (JUnit XML) and the suite's log go under var/fuzz/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from openapi_spec_validator import validate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests-e2e"))

from harness import DEFAULT_PORT_BASE, SERVICES, Suite, remove_suite, start_suite  # noqa: E402

CHECKS = "not_a_server_error,response_schema_conformance,negative_data_rejection"
# Away from the end-to-end suite's ports (API, +100, +200), so both can run at once.
PORT_OFFSET = 600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=300, help="test cases per operation and phase")
    parser.add_argument("--services", nargs="+", default=list(SERVICES), choices=SERVICES)
    parser.add_argument("--seed", type=int, help="reproduce a run")
    parser.add_argument("--stateful", action="store_true", help="also chain operations through their links")
    args = parser.parse_args(argv)

    reports = ROOT / "var" / "fuzz"
    reports.mkdir(parents=True, exist_ok=True)
    base = int(os.environ.get("LMS_E2E_PORT_BASE", DEFAULT_PORT_BASE)) + PORT_OFFSET
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lms-fuzz-") as work:
        suite = start_suite(Path(work), port_base=base)
        try:
            failed = [s for s in args.services if not fuzz(suite, s, args, reports)]
        finally:
            (reports / "suite.log").write_bytes(suite.log.read_bytes())
            remove_suite(suite)
    minutes = (time.monotonic() - started) / 60
    print(f"fuzzed {', '.join(args.services)} in {minutes:.1f} min; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


def fuzz(suite: Suite, service: str, args: argparse.Namespace, reports: Path) -> bool:
    """Validate one service's OpenAPI document, then run schemathesis against it."""
    document = suite.url(service, "/openapi.json")
    spec = requests.get(document, timeout=30).json()
    validate(spec)
    print(f"== {service}: the OpenAPI document validates ({len(spec['paths'])} paths)", flush=True)
    boot = suite.bootstrap()
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "hooks",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "fuzz"), os.environ.get("PYTHONPATH", "")]),
        "LMS_FUZZ_TOKEN_URL": suite.url("identity", "/oauth/token"),
        "LMS_FUZZ_CLIENT_ID": str(boot["client_id"]),
        "LMS_FUZZ_CLIENT_SECRET": str(boot["client_secret"]),
    }
    phases = "examples,coverage,fuzzing" + (",stateful" if args.stateful else "")
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(ROOT / "fuzz" / "schemathesis.toml"),
        "run",
        document,
        "--checks",
        CHECKS,
        "--phases",
        phases,
        "--max-examples",
        str(args.max_examples),
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--suppress-health-check",
        "all",
        "--report",
        "junit",
        "--report-junit-path",
        str(reports / f"{service}.xml"),
        *(["--seed", str(args.seed)] if args.seed is not None else []),
    ]
    return subprocess.run(command, env=env, cwd=ROOT, check=False).returncode == 0


if __name__ == "__main__":
    raise SystemExit(main())
