"""The bridge's digest verifier against the probe's independent client computation."""

from __future__ import annotations

import pytest

from sipharness.bridge.digest import DigestVerifier, Verdict, parse_auth_params
from sipharness.bridge.probe import digest_authorization

URI = "sip:abc-defg-hij@127.0.0.1:5060"
USERS = {"trunk": "s3cret", 'we:ird;"\\name': "pässword"}


def verifier(*algorithms: str, lifetime: float = 60.0) -> DigestVerifier:
    return DigestVerifier("sipharness.test", list(algorithms) or ["MD5"], lifetime)


def answer(v: DigestVerifier, **kw: object) -> str:
    challenge = v.challenges()[0]
    user = str(kw.pop("username", "trunk"))
    password = str(kw.pop("password", USERS.get(user, "x")))
    uri = str(kw.pop("uri", URI))
    return digest_authorization(challenge, "INVITE", uri, user, password, **kw)  # type: ignore


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-512-256"])
@pytest.mark.parametrize("qop", [True, False])
def test_right_credentials_pass(algorithm: str, qop: bool) -> None:
    v = verifier(algorithm)
    assert v.verify(answer(v, qop=qop), "INVITE", URI, USERS) is Verdict.OK


def test_missing_algorithm_means_md5() -> None:
    v = verifier("MD5")
    value = answer(v).replace(", algorithm=MD5", "")
    assert v.verify(value, "INVITE", URI, USERS) is Verdict.OK


@pytest.mark.parametrize("change", [{"password": "wrong"}, {"username": "nobody"},
                                    {"uri": "sip:other@127.0.0.1"}, {"password": ""}])
def test_wrong_answers_fail(change: dict[str, str]) -> None:
    v = verifier()
    assert v.verify(answer(v, **change), "INVITE", URI, USERS) is Verdict.WRONG


def test_a_nonce_from_elsewhere_or_another_realm_fails() -> None:
    v = verifier()
    forged = answer(v).replace('nonce="', 'nonce="0')
    assert v.verify(forged, "INVITE", URI, USERS) is Verdict.WRONG
    other = answer(v).replace('realm="sipharness.test"', 'realm="evil"')
    assert v.verify(other, "INVITE", URI, USERS) is Verdict.WRONG


def test_an_expired_nonce_with_right_credentials_is_stale() -> None:
    v = verifier(lifetime=10.0)
    value = answer(v)
    import time
    later = time.time() + 11
    assert v.verify(value, "INVITE", URI, USERS, now=later) is Verdict.STALE
    assert v.verify(value, "INVITE", URI, USERS, now=later, ignore_stale=True) is Verdict.OK


def test_a_replayed_nonce_count_is_refused() -> None:
    v = verifier()
    value = answer(v, nc=1)
    assert v.verify(value, "INVITE", URI, USERS) is Verdict.OK
    assert v.verify(value, "INVITE", URI, USERS) is Verdict.WRONG


def test_usernames_and_passwords_with_special_characters_are_escaped() -> None:
    v = verifier()
    name = 'we:ird;"\\name'
    value = answer(v, username=name)
    assert 'username="we:ird;\\"\\\\name"' in value
    assert parse_auth_params(value)[1]["username"] == name
    assert v.verify(value, "INVITE", URI, USERS) is Verdict.OK


def test_parse_auth_params_handles_commas_in_quotes() -> None:
    scheme, params = parse_auth_params('Digest realm="a,b", nonce="n", qop="auth,auth-int"')
    assert scheme == "Digest"
    assert params == {"realm": "a,b", "nonce": "n", "qop": "auth,auth-int"}


def answer_at(v: DigestVerifier, issued: float) -> str:
    """An answer to a challenge whose nonce was issued at ``issued``."""
    challenge = f'Digest realm="{v.realm}", nonce="{v.new_nonce(now=issued)}", qop="auth"'
    return digest_authorization(challenge, "INVITE", URI, "trunk", "s3cret")


def test_the_replay_table_drops_expired_nonces_and_never_exceeds_its_size() -> None:
    v = DigestVerifier("sipharness.test", ["MD5"], 10.0, max_nonces=5)
    t0 = 1_000_000.0
    for i in range(20):
        now = t0 + i / 10
        assert v.verify(answer_at(v, now), "INVITE", URI, USERS, now=now) is Verdict.OK
        assert v.nonces_held <= 5
    assert v.nonces_held == 5
    assert v.verify(answer_at(v, t0 + 30), "INVITE", URI, USERS, now=t0 + 30) is Verdict.OK
    assert v.nonces_held == 1  # the five older than the lifetime are gone


def test_a_challenge_alone_stores_no_nonce_state() -> None:
    v = verifier()
    for _ in range(1000):
        v.challenges()
    assert v.nonces_held == 0
