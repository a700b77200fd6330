"""Verifying access tokens (TokenVerifier) and caching identity's keys (JWKSCache)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from lms_common.auth import InvalidToken, JWKSCache, Principal, TokenVerifier, VerifiedTokens
from lms_common.testing import TEST_ISSUER, TestKeys


@pytest.fixture()
def verifier(keys: TestKeys) -> TokenVerifier:
    return TokenVerifier(keys, issuer=TEST_ISSUER, audience="lms")


def test_valid_token_gives_its_principal(keys: TestKeys, verifier: TokenVerifier) -> None:
    token = keys.mint(sub="user-1", org="org-7", scope="catalog:read identity:write", jti="t-1", client_id="app")
    principal = verifier.verify(token)
    assert (principal.subject, principal.org, principal.token_id) == ("user-1", "org-7", "t-1")
    assert principal.client_id == "app"
    assert principal.permissions == {"catalog:read", "identity:write"}
    assert principal.has("catalog:read")
    assert not principal.has("catalog:write")


def test_loc_claim_limits_permissions_to_locations(keys: TestKeys, verifier: TokenVerifier) -> None:
    token = keys.mint(scope="catalog:read identity:write", loc={"identity:write": ["nyc", "boston"]})
    principal = verifier.verify(token)
    assert principal.locations_for("identity:write") == {"nyc", "boston"}
    assert principal.locations_for("catalog:read") is None


def test_issued_at_comes_from_iat(keys: TestKeys, verifier: TokenVerifier) -> None:
    issued_at = int(time.time()) - 30
    assert verifier.verify(keys.mint(iat=issued_at)).issued_at == issued_at


def test_clock_skew_within_leeway_is_tolerated(keys: TestKeys, verifier: TokenVerifier) -> None:
    assert verifier.verify(keys.mint(lifetime=-5)).subject


def test_bad_token_is_refused(verifier: TokenVerifier, bad_token: str) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(bad_token)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("alg none", "algorithm 'none' not allowed"),
        ("HS256 keyed with the public key", "algorithm 'HS256' not allowed"),
        ("unknown kid", "unknown signing key"),
        ("typ JWT", "typ must be at+jwt"),
        ("expired", "expired"),
        ("no exp", "exp"),
        ("kid holding a path", "kid missing or malformed"),
        ("jku header", "header jku not allowed"),
    ],
)
def test_refusal_says_why(
    verifier: TokenVerifier, mint_bad_token: Callable[[str], str], kind: str, reason: str
) -> None:
    with pytest.raises(InvalidToken, match=re.escape(reason)):
        verifier.verify(mint_bad_token(kind))


class RevokeAll:
    def __init__(self) -> None:
        self.asked: list[Principal] = []

    def is_revoked(self, principal: Principal) -> bool:
        self.asked.append(principal)
        return True


def test_revoked_token_is_refused(keys: TestKeys) -> None:
    revocations = RevokeAll()
    verifier = TokenVerifier(keys, issuer=TEST_ISSUER, audience="lms", revocations=revocations)
    with pytest.raises(InvalidToken, match="revoked"):
        verifier.verify(keys.mint(sub="user-1"))
    assert [principal.subject for principal in revocations.asked] == ["user-1"]


class RevokeWhenTold:
    def __init__(self) -> None:
        self.revoked: set[str] = set()

    def is_revoked(self, principal: Principal) -> bool:
        return principal.token_id in self.revoked


class CountingKeys:
    """The test keys, counting how often the verifier asks for one (once per signature check)."""

    def __init__(self, keys: TestKeys) -> None:
        self.keys = keys
        self.lookups = 0

    def key(self, kid: str) -> Any | None:
        self.lookups += 1
        return self.keys.key(kid)


def test_a_token_seen_before_is_not_checked_again(keys: TestKeys) -> None:
    counting = CountingKeys(keys)
    verifier = TokenVerifier(counting, issuer=TEST_ISSUER, audience="lms")
    token = keys.mint(sub="user-1")
    assert [verifier.verify(token).subject for _ in range(3)] == ["user-1"] * 3
    assert counting.lookups == 1


def test_revocation_takes_effect_at_once_for_a_token_seen_before(keys: TestKeys) -> None:
    revocations = RevokeWhenTold()
    verifier = TokenVerifier(keys, issuer=TEST_ISSUER, audience="lms", revocations=revocations)
    token = keys.mint(jti="t-1")
    verifier.verify(token)
    revocations.revoked.add("t-1")
    with pytest.raises(InvalidToken, match="revoked"):
        verifier.verify(token)


def test_a_token_seen_before_expires_all_the_same(keys: TestKeys) -> None:
    verifier = TokenVerifier(keys, issuer=TEST_ISSUER, audience="lms", leeway=0)
    token = keys.mint(lifetime=2)
    verifier.verify(token)
    time.sleep(2.1)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_a_refused_token_is_not_remembered(keys: TestKeys, verifier: TokenVerifier) -> None:
    for _ in range(2):
        with pytest.raises(InvalidToken):
            verifier.verify(keys.mint(audience="someone-else"))
    assert not verifier.verified._entries


def test_verified_tokens_honour_exp_with_the_leeway() -> None:
    verified = VerifiedTokens()
    principal = Principal(subject="u", org="o", permissions=frozenset())
    verified.put("token", principal, expires_at=1000)
    assert verified.get("token", now=1009, leeway=10) is principal
    assert verified.get("token", now=1010, leeway=10) is None
    assert verified.get("token", now=1000, leeway=10) is None  # dropped once expired


def test_verified_tokens_keep_at_most_their_size() -> None:
    verified = VerifiedTokens(size=2)
    principal = Principal(subject="u", org="o", permissions=frozenset())
    for token in ("a", "b", "c"):
        verified.put(token, principal, expires_at=2000)
    assert [verified.get(token, now=1000, leeway=0) for token in ("a", "b", "c")] == [None, principal, principal]


# --- JWKSCache --------------------------------------------------------------------------------


class FakeIdentity:
    """identity's JWKS endpoint: counts fetches, serves the current keys or fails."""

    def __init__(self, *keys: TestKeys) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.down = False

    def __call__(self, url: str) -> dict[str, Any]:
        assert url == "http://issuer.test/.well-known/jwks.json"
        self.fetches += 1
        if self.down:
            raise ConnectionError("identity is down")
        return {"keys": [key for keys in self.keys for key in keys.jwks()["keys"]]}


def cache(identity: FakeIdentity, min_refresh_seconds: float = 60.0) -> JWKSCache:
    return JWKSCache("http://issuer.test/.well-known/jwks.json", min_refresh_seconds, fetch=identity)


def test_first_lookup_fetches_the_keys(keys: TestKeys) -> None:
    identity = FakeIdentity(keys)
    jwks = cache(identity)
    assert jwks.key(keys.kid) is not None
    assert jwks.key(keys.kid) is not None
    assert identity.fetches == 1


def test_unknown_kid_refetches_at_most_once_per_interval(keys: TestKeys) -> None:
    identity = FakeIdentity(keys)
    jwks = cache(identity)
    jwks.key(keys.kid)
    assert [jwks.key(f"invented-{n}") for n in range(20)] == [None] * 20
    assert identity.fetches == 1


def test_unknown_kid_refetches_once_the_interval_has_passed(keys: TestKeys) -> None:
    rotated = TestKeys(kid="rotated")
    identity = FakeIdentity(keys)
    jwks = cache(identity, min_refresh_seconds=0.2)
    jwks.key(keys.kid)
    identity.keys.append(rotated)
    assert jwks.key("rotated") is None
    time.sleep(0.25)
    assert jwks.key("rotated") is not None
    assert jwks.key("rotated") is not None
    assert identity.fetches == 2


def test_failed_fetch_keeps_the_keys_already_known(keys: TestKeys) -> None:
    identity = FakeIdentity(keys)
    jwks = cache(identity, min_refresh_seconds=0.0)
    jwks.key(keys.kid)
    identity.down = True
    assert jwks.key("unknown") is None
    assert jwks.key(keys.kid) is not None
    assert identity.fetches == 2


def test_verifier_with_jwks_cache_accepts_identity_tokens(keys: TestKeys) -> None:
    verifier = TokenVerifier(cache(FakeIdentity(keys)), issuer=TEST_ISSUER, audience="lms")
    assert verifier.verify(keys.mint(sub="user-1")).subject == "user-1"


def test_verifier_with_jwks_cache_refuses_an_unknown_kid(keys: TestKeys) -> None:
    verifier = TokenVerifier(cache(FakeIdentity(keys)), issuer=TEST_ISSUER, audience="lms")
    with pytest.raises(InvalidToken, match="unknown signing key"):
        verifier.verify(keys.mint(header={"kid": "invented"}))


@pytest.mark.parametrize("kid", ["../../../../etc/passwd", "x' OR '1'='1", "http://127.0.0.1:9/k", "k" * 65])
def test_a_malformed_kid_never_makes_the_cache_fetch(keys: TestKeys, kid: str) -> None:
    identity = FakeIdentity(keys)
    verifier = TokenVerifier(cache(identity, min_refresh_seconds=0.0), issuer=TEST_ISSUER, audience="lms")
    with pytest.raises(InvalidToken, match="kid missing or malformed"):
        verifier.verify(keys.mint(header={"kid": kid}))
    assert identity.fetches == 0
