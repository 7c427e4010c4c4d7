"""sippy as an independent digest oracle: it accepts our answers, we accept its answers."""

from __future__ import annotations

import itertools
import os

import pytest

os.environ.setdefault("SIPLOG_BEND", "none")

from sippy.Security import SipNonce
from sippy.SipAuthorization import (
    DigestCalcHA1,
    DigestCalcResponse,
    SipAuthorization,
)
from sippy.SipWWWAuthenticate import SipWWWAuthenticate

from sipharness.sip.digest import (
    WRONG_VARIANTS,
    Credentials,
    DigestClient,
    compute_response,
    parse_authorization,
    parse_challenge,
    verify,
)

REALM = "bridge.example.com"
URI = "sip:abc-defg-hij@127.0.0.1:5060"
ALICE = Credentials("alice", "s3cret")
BODY = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"

# Everything sippy 2.5 computes: its _HASH_FUNC keys (None = no algorithm= means MD5) and
# qop auth / auth-int / none. "-sess" needs a cnonce, which only exists with a qop.
SIPPY_ALGORITHMS = [
    None,
    "MD5",
    "MD5-sess",
    "SHA-256",
    "SHA-256-sess",
    "SHA-512-256",
    "SHA-512-256-sess",
]
COMBINATIONS = [
    (alg, qop)
    for alg, qop in itertools.product(SIPPY_ALGORITHMS, ["auth", "auth-int", None])
    if not (alg is not None and alg.endswith("-sess") and qop is None)
]


def sippy_challenge(algorithm: str | None, qop: str | None) -> SipWWWAuthenticate:
    """A challenge whose nonce sippy's HashOracle issued for ``algorithm``."""
    challenge = SipWWWAuthenticate(realm=REALM, algorithm=algorithm)
    challenge.qop = [qop] if qop else None
    challenge.opaque = "opaque-42"
    return challenge


def sippy_accepts(value: str, password: str = ALICE.password, body: str = BODY) -> bool:
    """sippy's own verification: hash, and nonce issued by it, unexpired, for that algorithm."""
    return bool(SipAuthorization(body=value).verify(password, "INVITE", body))


def test_sippy_supports_what_we_claim_it_does() -> None:
    from sippy.SipAuthorization import _HASH_FUNC

    assert set(_HASH_FUNC) == set(SIPPY_ALGORITHMS)


@pytest.mark.parametrize(("algorithm", "qop"), COMBINATIONS)
def test_sippy_accepts_our_answers(algorithm: str | None, qop: str | None) -> None:
    challenge = parse_challenge(str(sippy_challenge(algorithm, qop)))
    client = DigestClient()
    for _ in range(2):  # nc 1 then 2: both valid to a verifier without replay tracking
        _, value = client.authorize(challenge, "INVITE", URI, ALICE, BODY.encode())
        assert parse_authorization(value).get("opaque") == "opaque-42"
        assert sippy_accepts(value)
        assert not sippy_accepts(value, password="s3cret!")
        if qop == "auth-int":
            assert not sippy_accepts(value, body=BODY + "a=sendonly\r\n")


@pytest.mark.parametrize(("algorithm", "qop"), COMBINATIONS)
def test_we_accept_sippy_answers(algorithm: str | None, qop: str | None) -> None:
    challenge = sippy_challenge(algorithm, qop)
    value = str(challenge.genAuthHF(ALICE.username, ALICE.password, "INVITE", URI, BODY, qop))
    assert value.startswith("Digest ")
    checks = {"realm": REALM, "expected_nonce": challenge.nonce, "uri": URI}
    assert verify(value, "INVITE", ALICE.password, body=BODY.encode(), **checks)
    assert not verify(value, "INVITE", "wrong", body=BODY.encode(), **checks)


@pytest.mark.parametrize(("algorithm", "qop"), COMBINATIONS)
def test_same_response_as_sippy_for_the_same_inputs(algorithm: str | None, qop: str | None) -> None:
    username, password = "Jürgen;x:y", "pä:ss;wörd"
    nonce, cnonce, nc = "nonce-1", "cafe0001", "0000002a"
    ha1 = DigestCalcHA1(algorithm, username, REALM, password, nonce, cnonce)
    expected = DigestCalcResponse(
        algorithm,
        ha1,
        nonce,
        nc if qop else None,
        cnonce if qop else None,
        qop,
        "INVITE",
        URI,
        BODY,
    )
    ours = compute_response(
        algorithm=algorithm,
        username=username,
        realm=REALM,
        password=password,
        nonce=nonce,
        method="INVITE",
        uri=URI,
        qop=qop,
        nc=nc if qop else None,
        cnonce=cnonce if qop else None,
        body=BODY.encode(),
    )
    assert ours == expected


@pytest.mark.parametrize("username", ["al:ice", "al;ice", "Jürgen 山田"])
def test_sippy_accepts_non_ascii_and_separators_in_credentials(username: str) -> None:
    challenge = parse_challenge(str(sippy_challenge("SHA-256", "auth")))
    _, value = DigestClient().authorize(
        challenge, "INVITE", URI, Credentials(username, "pä;ss:wörd")
    )
    assert sippy_accepts(value, password="pä;ss:wörd")


def expired_sippy_challenge(monkeypatch: pytest.MonkeyPatch, algorithm: str) -> SipWWWAuthenticate:
    """A challenge sippy issued a minute ago (its nonces live 32 s)."""
    real_clock = SipNonce.clock_getntime
    with monkeypatch.context() as patch:
        patch.setattr(SipNonce, "clock_getntime", lambda clock: real_clock(clock) - 60 * 10**9)
        return sippy_challenge(algorithm, "auth")


class SippyBridge:
    """A bridge built on sippy's verify plus the user, realm, Request-URI and nc checks sippy
    leaves to its caller (it checks hash, nonce origin, nonce age and algorithm)."""

    def __init__(self) -> None:
        self.last_nc: dict[str, int] = {}

    def accepts(self, value: str) -> bool:
        auth = SipAuthorization(body=value)
        auth.parse()
        if auth.username != ALICE.username or auth.realm != REALM or auth.uri != URI:
            return False
        nc = int(auth.nc, 16) if auth.nc else 0
        if nc <= self.last_nc.get(auth.nonce, -1):
            return False
        if not auth.verify(ALICE.password, "INVITE", BODY):
            return False
        self.last_nc[auth.nonce] = nc
        return True


# Refused by sippy's SipAuthorization.verify itself, not only by the caller's extra checks.
REFUSED_BY_SIPPY_VERIFY = {"password", "empty_password", "algorithm", "stale", "response"}


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-512-256"])
@pytest.mark.parametrize("variant", list(WRONG_VARIANTS))
def test_every_wrong_variant_is_refused_by_a_sippy_bridge(
    variant: str, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = SippyBridge()
    client = DigestClient()
    old = parse_challenge(str(expired_sippy_challenge(monkeypatch, algorithm)))
    _, expired = client.authorize(old, "INVITE", URI, ALICE, BODY.encode())
    assert not bridge.accepts(expired)  # right credentials, nonce too old: sippy says no
    current = parse_challenge(str(sippy_challenge(algorithm, "auth")))
    _, right = client.authorize(current, "INVITE", URI, ALICE, BODY.encode())
    assert bridge.accepts(right)
    _, wrong = client.authorize(current, "INVITE", URI, ALICE, BODY.encode(), variant=variant)
    assert not bridge.accepts(wrong), WRONG_VARIANTS[variant]
    if variant in REFUSED_BY_SIPPY_VERIFY:
        assert not sippy_accepts(wrong)
    else:
        assert sippy_accepts(wrong)  # consistent hash: only the bridge's own checks refuse it
    _, next_right = client.authorize(current, "INVITE", URI, ALICE, BODY.encode())
    assert bridge.accepts(next_right)
