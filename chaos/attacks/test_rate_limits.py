"""identity's sign-in and token endpoints answer 429 past their limits (these run last)."""

from __future__ import annotations

import uuid

import pytest
import requests
from attack_seed import REDIRECT_URI, csrf_token
from attack_world import FAILED_LOGINS_PER_ADDRESS, TOKEN_RATE_PER_MINUTE, Ledger, World

LOGIN_LIMIT = 10  # failed sign-ins per email in 15 minutes


def sign_in(world: World, browser: requests.Session, email: str) -> int:
    """One sign-in with a wrong password through the login form: its status."""
    params = {
        "response_type": "code",
        "client_id": world.bootstrap["client_id"],
        "redirect_uri": REDIRECT_URI,
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    page = browser.get(world.suite.url("identity", "/oauth/authorize"), params=params, timeout=30)
    form = {"csrf_token": csrf_token(page.text), "email": email, "password": "guess"}
    return browser.post(page.url, data=form, allow_redirects=False, timeout=30).status_code


@pytest.mark.exhausts_limits
def test_failed_sign_ins_past_the_limit_answer_429(world: World, ledger: Ledger) -> None:
    email = f"victim-{uuid.uuid4().hex[:8]}@attack.test"
    browser = requests.Session()
    statuses = [sign_in(world, browser, email) for _ in range(LOGIN_LIMIT + 1)]
    ledger.expect("rate-limit", f"sign-ins 1-{LOGIN_LIMIT} with a wrong password", 401, max(statuses[:LOGIN_LIMIT]))
    ledger.expect("rate-limit", f"sign-in {LOGIN_LIMIT + 1} for the same email", 429, statuses[LOGIN_LIMIT])


@pytest.mark.exhausts_limits
def test_one_password_sprayed_over_many_emails_answers_429(world: World, ledger: Ledger) -> None:
    browser = requests.Session()
    statuses = []
    for n in range(FAILED_LOGINS_PER_ADDRESS + 2):
        statuses.append(sign_in(world, browser, f"spray-{n}-{uuid.uuid4().hex[:6]}@attack.test"))
        if statuses[-1] == 429:
            break
    note = f"after {len(statuses)} emails"
    ledger.expect(
        "rate-limit", f"failed sign-ins past {FAILED_LOGINS_PER_ADDRESS} per address", 429, statuses[-1], note
    )


@pytest.mark.exhausts_limits
def test_token_requests_past_the_limit_answer_429_whatever_x_forwarded_for_says(world: World, ledger: Ledger) -> None:
    url = world.suite.url("identity", "/oauth/token")
    statuses = []
    for n in range(TOKEN_RATE_PER_MINUTE + 10):
        headers = {"X-Forwarded-For": f"10.0.{n // 250}.{n % 250}"}
        data = {"grant_type": "client_credentials"}
        statuses.append(
            requests.post(url, data=data, auth=("nobody", "wrong"), headers=headers, timeout=30).status_code
        )
        if statuses[-1] == 429:
            break
    ledger.expect(
        "rate-limit",
        f"token request past {TOKEN_RATE_PER_MINUTE}/min (spoofed X-Forwarded-For)",
        429,
        statuses[-1],
        f"after {len(statuses)}",
    )
    boot = world.bootstrap
    good = requests.post(
        url,
        data={"grant_type": "client_credentials"},
        auth=(str(boot["client_id"]), str(boot["client_secret"])),
        timeout=30,
    )
    ledger.expect("rate-limit", "a genuine client in the same minute", 429, good.status_code)
