"""The published contract documents agree with the code."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, SERVICES


def test_asyncapi_yaml_is_generated_from_the_current_event_contracts() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "lms_common.asyncapi", *SERVICES], check=True, capture_output=True, text=True
    ).stdout
    committed = (ROOT / "asyncapi.yaml").read_text()
    assert generated == committed, "asyncapi.yaml is stale: run `make asyncapi`"
