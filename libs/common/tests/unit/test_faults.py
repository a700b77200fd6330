"""The fault hooks are off unless their environment variable asks for them."""

from __future__ import annotations

import pytest

from lms_common import faults


def test_no_delay_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LMS_FAULT_HANDLER_DELAY_SECONDS", raising=False)
    assert faults.delay_seconds("handler") == 0.0


def test_the_delay_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMS_FAULT_HANDLER_DELAY_SECONDS", "0.05")
    slept: list[float] = []
    monkeypatch.setattr(faults.time, "sleep", slept.append)
    faults.maybe_delay("handler")
    assert slept == [0.05]


def test_nonsense_means_no_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMS_FAULT_HANDLER_DELAY_SECONDS", "soon")
    monkeypatch.setenv("LMS_FAULT_RELAY_AFTER_PUBLISH", "often")
    assert faults.delay_seconds("handler") == 0.0
    assert faults.probability("relay_after_publish") == 0.0
