"""Digest authentication: RFC examples, challenge parsing, answers, wrong variants, verify."""

from __future__ import annotations

import hashlib
import itertools
from typing import get_args

import pytest

from sipharness.sip.digest import (
    SUPPORTED_ALGORITHMS,
    WRONG_VARIANTS,
    Credentials,
    DigestChallenge,
    DigestClient,
    DigestError,
    WrongVariant,
    challenges_from_headers,
    choose_challenge,
    compute_response,
    format_challenge,
    parse_authorization,
    parse_challenge,
    parse_challenges,
    redact_authorization,
    verify,
)

URI = "sip:abc-defg-hij@bridge.example.com"
ALICE = Credentials("alice", "s3cret")


def fixed_cnonces(*values: str) -> DigestClient:
    it = iter(values)
    return DigestClient(cnonce=lambda: next(it))


def answer(
    challenge: DigestChallenge,
    client: DigestClient | None = None,
    *,
    credentials: Credentials = ALICE,
    body: bytes = b"",
    variant: str | None = None,
    qop: str | None = None,
    userhash: bool | None = None,
) -> str:
    """The Authorization value ``client`` (a fresh one by default) sends for an INVITE."""
    client = client or DigestClient()
    _, value = client.authorize(
        challenge, "INVITE", URI, credentials, body, variant=variant, qop=qop, userhash=userhash
    )
    return value


# ---------------------------------------------------------------- RFC examples


def test_rfc2617_section_3_5_example() -> None:
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    client = fixed_cnonces("0a4f113b")
    name, value = client.authorize(
        challenge, "GET", "/dir/index.html", Credentials("Mufasa", "Circle Of Life")
    )
    assert name == "Authorization"
    params = parse_authorization(value)
    assert params["response"] == "6629fae49393a05397450978507c4ef1"
    assert params["qop"] == "auth"
    assert params["nc"] == "00000001"
    assert params["cnonce"] == "0a4f113b"
    assert params["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    assert "algorithm" not in params  # the challenge had none, so none is claimed
    assert verify(value, "GET", "Circle Of Life", uri="/dir/index.html")


RFC7616_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_examples(algorithm: str, expected: str) -> None:
    challenge = parse_challenge(RFC7616_CHALLENGE.format(alg=algorithm))
    client = fixed_cnonces("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    _, value = client.authorize(
        challenge, "GET", "/dir/index.html", Credentials("Mufasa", "Circle of Life")
    )
    params = parse_authorization(value)
    assert params["response"] == expected
    assert params["algorithm"] == algorithm
    assert verify(value, "GET", "Circle of Life", algorithm=algorithm)


RFC7616_USERHASH_CHALLENGE = (
    'Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, '
    'nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", '
    'opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS", charset=UTF-8, userhash=true'
)
JASON = Credentials("J\u00e4s\u00f8n Doe", "Secret, or not?")


def test_rfc7616_section_3_9_2_sha512_256_userhash_with_true_sha512_256() -> None:
    challenge = parse_challenge(RFC7616_USERHASH_CHALLENGE)
    assert challenge.userhash and challenge.charset == "UTF-8"
    client = fixed_cnonces("NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v")
    _, value = client.authorize(challenge, "GET", "/doe.json", JASON)
    params = parse_authorization(value)
    # SHA-512/256 (FIPS 180-4, its own initial values) as RFC 7616 §3.2 specifies; the RFC's
    # printed example values differ (errata 4897), see the next test.
    assert params["username"] == "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
    assert params["response"] == "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
    assert params["userhash"] == "true"
    assert verify(value, "GET", JASON.password, username=JASON.username)
    assert not verify(value, "GET", JASON.password)  # a hashed username needs the real one


def test_rfc7616_section_3_9_2_printed_values_are_truncated_sha512_not_sha512_256() -> None:
    # The RFC prints userhash 4888...54ec and response ae66...79dd. They come from SHA-512
    # cut to 64 hex digits, not from SHA-512/256, so a correct implementation refuses them.
    def truncated_sha512(text: str) -> str:
        return hashlib.sha512(text.encode()).hexdigest()[:64]

    nonce = "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK"
    cnonce = "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v"
    ha1 = truncated_sha512(f"{JASON.username}:api@example.org:{JASON.password}")
    ha2 = truncated_sha512("GET:/doe.json")
    printed_userhash = "488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec"
    printed_response = "ae66e67d6b427bd3f120414a82e4acff38e8ecd9101d6c861229025f607a79dd"
    assert truncated_sha512(f"{JASON.username}:api@example.org") == printed_userhash
    assert truncated_sha512(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}") == printed_response
    printed = (
        f'Digest username="{printed_userhash}", realm="api@example.org", uri="/doe.json", '
        f'algorithm=SHA-512-256, nonce="{nonce}", nc=00000001, cnonce="{cnonce}", qop=auth, '
        f'response="{printed_response}", opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS", '
        "userhash=true"
    )
    assert not verify(printed, "GET", JASON.password, username=JASON.username)


# ---------------------------------------------------------------- parsing challenges


def test_challenge_fields_and_unknown_params_survive_odd_layout() -> None:
    value = (
        '  digest   NONCE = "n\\"1\\\\x" ,REALM="bridge \\"one\\"",\t qop = "auth-int , auth",'
        ' Algorithm=sha-256 , stale=TRUE, domain="sip:a.example sip:b.example",'
        ' opaque="", x-vendor=token42 ,  charset=UTF-8,userhash=false  '
    )
    challenge = parse_challenge(value, "Proxy-Authenticate")
    assert challenge.header_name == "Proxy-Authenticate"
    assert challenge.authorization_header == "Proxy-Authorization"
    assert challenge.realm == 'bridge "one"'
    assert challenge.nonce == 'n"1\\x'
    assert challenge.qop == ["auth-int", "auth"]
    assert challenge.algorithm == "sha-256"
    assert challenge.canonical_algorithm == "SHA-256"
    assert challenge.stale is True
    assert challenge.domain == ["sip:a.example", "sip:b.example"]
    assert challenge.opaque == ""
    assert challenge.userhash is False
    assert challenge.charset == "UTF-8"
    assert challenge.params["x-vendor"] == "token42"


@pytest.mark.parametrize(
    ("stale", "expected"),
    [("stale=TRUE", True), ("stale=true", True), ('stale="True"', True), ("stale=FALSE", False)],
)
def test_stale_is_recognised_case_insensitively(stale: str, expected: bool) -> None:
    assert parse_challenge(f'Digest realm="r", nonce="n", {stale}').stale is expected


def test_missing_algorithm_and_qop_mean_md5_without_qop() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n"')
    assert challenge.algorithm is None
    assert challenge.canonical_algorithm == "MD5"
    assert challenge.qop == []
    assert challenge.stale is False


def test_several_challenges_in_one_value_and_across_headers_keep_order() -> None:
    headers = [
        ("Via", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1"),
        ("WWW-Authenticate", 'Digest realm="r", nonce="1", algorithm=SHA-256, Basic realm="r"'),
        ("www-authenticate", 'Digest realm="r", nonce="2", algorithm=MD5'),
        ("Proxy-Authenticate", 'Digest realm="p", nonce="3", qop=auth'),
    ]
    found = challenges_from_headers(headers)
    assert [c.nonce for c in found] == ["1", "2", "3"]
    assert [c.header_name for c in found] == [
        "WWW-Authenticate",
        "WWW-Authenticate",
        "Proxy-Authenticate",
    ]


def test_parse_challenges_reads_a_response() -> None:
    from sipharness.sip.message import Response, parse_message

    raw = (
        b"SIP/2.0 401 Unauthorized\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds\r\n"
        b"From: <sip:alice@127.0.0.1>;tag=1928301774\r\n"
        b"To: <sip:abc-defg-hij@127.0.0.1>;tag=a6c85cf\r\n"
        b"Call-ID: a84b4c76e66710\r\n"
        b"CSeq: 1 INVITE\r\n"
        b'WWW-Authenticate: Digest realm="bridge", nonce="sha", algorithm=SHA-256, qop="auth"\r\n'
        b'WWW-Authenticate: Digest realm="bridge", nonce="md5", algorithm=MD5, qop="auth"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    response = parse_message(raw)
    assert isinstance(response, Response)
    found = parse_challenges(response)
    assert [(c.nonce, c.qop) for c in found] == [("sha", ["auth"]), ("md5", ["auth"])]


@pytest.mark.parametrize(
    ("order", "winner"),
    [
        (["MD5", "SHA-256", "SHA-512-256"], "SHA-512-256"),
        (["SHA-256", "MD5"], "SHA-256"),
        (["AKAv1-MD5", "MD5"], "MD5"),
        (["MD5-sess", "MD5"], "MD5-sess"),
        (["SHA-256", "SHA-256-sess"], "SHA-256"),
    ],
)
def test_choose_challenge_prefers_strongest_supported(order: list[str], winner: str) -> None:
    challenges = [
        parse_challenge(f'Digest realm="r", nonce="{i}", algorithm={alg}, qop="auth"')
        for i, alg in enumerate(order)
    ]
    assert choose_challenge(challenges).algorithm == winner


def test_choose_challenge_with_nothing_usable_says_what_was_offered() -> None:
    challenges = [
        parse_challenge('Digest realm="r", nonce="1", algorithm=AKAv1-MD5'),
        parse_challenge('Digest realm="r", nonce="2", algorithm=MD5, qop="auth-conf"'),
        parse_challenge('Digest realm="r", nonce="3", algorithm=MD5-sess'),
    ]
    with pytest.raises(DigestError, match=r"no usable Digest challenge.*AKAv1-MD5.*auth-conf"):
        choose_challenge(challenges)
    with pytest.raises(DigestError, match="offered: none"):
        choose_challenge([])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('Digest realm="r"', "without nonce"),
        ('Digest nonce="n"', "without realm"),
        ('Digest realm="r", nonce="n', "unterminated"),
        ('Digest realm="r" nonce="n"', "expected ','"),
        ('Digest realm="r", realm="s", nonce="n"', "twice"),
        ('realm="r", nonce="n"', "expected an auth scheme"),
        ('Digest realm=, nonce="n"', "empty value"),
        ("", "empty value"),
        ('Basic realm="r"', "expected one Digest challenge"),
    ],
)
def test_malformed_challenge_gives_clear_error(value: str, reason: str) -> None:
    with pytest.raises(DigestError, match=reason) as error:
        parse_challenge(value)
    assert "WWW-Authenticate" in str(error.value)


def test_malformed_challenge_among_headers_is_an_error_not_skipped() -> None:
    with pytest.raises(DigestError, match=r"Proxy-Authenticate.*without nonce"):
        challenges_from_headers([("Proxy-Authenticate", 'Digest realm="r"')])


def test_format_challenge_round_trips() -> None:
    value = format_challenge(
        'we "quote"',
        "abc",
        algorithm="SHA-512-256",
        qop=("auth", "auth-int"),
        opaque="op",
        stale=True,
        domain=("sip:a", "sip:b"),
        userhash=True,
        charset="UTF-8",
    )
    challenge = parse_challenge(value)
    assert (challenge.realm, challenge.nonce, challenge.opaque) == ('we "quote"', "abc", "op")
    assert challenge.qop == ["auth", "auth-int"]
    assert challenge.stale and challenge.userhash
    assert challenge.domain == ["sip:a", "sip:b"]


# ---------------------------------------------------------------- answering


def test_header_name_follows_the_challenge() -> None:
    client = DigestClient()
    www = parse_challenge('Digest realm="r", nonce="n"', "WWW-Authenticate")
    proxy = parse_challenge('Digest realm="r", nonce="n"', "Proxy-Authenticate")
    assert client.authorize(www, "INVITE", URI, ALICE)[0] == "Authorization"
    assert client.authorize(proxy, "INVITE", URI, ALICE)[0] == "Proxy-Authorization"


def test_nc_increments_per_nonce_as_eight_hex_digits() -> None:
    client = DigestClient()
    first = parse_challenge('Digest realm="r", nonce="one", qop="auth"')
    second = parse_challenge('Digest realm="r", nonce="two", qop="auth"')
    ncs = [parse_authorization(answer(first, client))["nc"] for _ in range(17)]
    assert ncs[:2] == ["00000001", "00000002"]
    assert ncs[-1] == "00000011"
    assert parse_authorization(answer(second, client))["nc"] == "00000001"
    assert client.nonce_count("one") == 17


def test_default_cnonce_is_fresh_each_time() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth"')
    client = DigestClient()
    cnonces = {parse_authorization(answer(challenge, client))["cnonce"] for _ in range(5)}
    assert len(cnonces) == 5


def test_algorithm_and_opaque_echoed_as_given() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", algorithm=sha-256, opaque="o,p"')
    params = parse_authorization(answer(challenge))
    assert params["algorithm"] == "sha-256"
    assert params["opaque"] == "o,p"
    assert len(params["response"]) == 64


def test_no_qop_answer_is_rfc2069_style() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", algorithm=MD5')
    value = answer(challenge)
    params = parse_authorization(value)
    assert not {"qop", "nc", "cnonce"} & params.keys()
    assert verify(value, "INVITE", ALICE.password, realm="r", expected_nonce="n", uri=URI)


def test_qop_choice_auth_by_default_auth_int_on_request() -> None:
    both = parse_challenge('Digest realm="r", nonce="n", qop="auth-int,auth"')
    assert parse_authorization(answer(both))["qop"] == "auth"
    assert parse_authorization(answer(both, qop="auth-int"))["qop"] == "auth-int"
    only_int = parse_challenge('Digest realm="r", nonce="n", qop="auth-int"')
    assert parse_authorization(answer(only_int))["qop"] == "auth-int"
    with pytest.raises(DigestError, match="qop"):
        answer(parse_challenge('Digest realm="r", nonce="n", qop="auth"'), qop="auth-int")
    with pytest.raises(DigestError, match="no qop"):
        answer(parse_challenge('Digest realm="r", nonce="n"'), qop="auth")


def test_auth_int_covers_the_body() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth-int"')
    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
    value = answer(challenge, body=sdp)
    assert verify(value, "INVITE", ALICE.password, body=sdp)
    assert not verify(value, "INVITE", ALICE.password, body=sdp + b"a=sendonly\r\n")


@pytest.mark.parametrize(
    ("algorithm", "qop"),
    [
        (alg, qop)
        for alg, qop in itertools.product(SUPPORTED_ALGORITHMS, ["auth", "auth-int", None])
        if not (alg.endswith("-sess") and qop is None)
    ],
)
def test_every_algorithm_and_qop_verifies(algorithm: str, qop: str | None) -> None:
    qop_param = f', qop="{qop}"' if qop else ""
    challenge = parse_challenge(f'Digest realm="r", nonce="n", algorithm={algorithm}{qop_param}')
    value = answer(challenge, body=b"body")
    params = parse_authorization(value)
    assert params.get("qop") == qop
    expected_len = 32 if algorithm.startswith("MD5") else 64
    assert len(params["response"]) == expected_len
    assert verify(value, "INVITE", ALICE.password, body=b"body", algorithm=algorithm)
    assert not verify(value, "INVITE", "other", body=b"body")


def test_sess_without_qop_cannot_be_answered() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", algorithm=MD5-sess')
    assert not challenge.supported
    with pytest.raises(DigestError, match="MD5-sess"):
        answer(challenge)


@pytest.mark.parametrize(
    "credentials",
    [
        Credentials("al:ice", "pa:ss"),
        Credentials("al;ice", "pa;ss"),
        Credentials('al"ice', 'pa"ss'),
        Credentials("al\\ice", "pa\\ss"),
        Credentials('x\\"y', '\\"'),
        Credentials("Jürgen 山田", "pässwörd ✓"),
        Credentials("a, b=c", "d, e=f"),
    ],
)
def test_special_characters_are_quoted_and_hashed_unescaped(credentials: Credentials) -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth"')
    value = answer(challenge, fixed_cnonces("c"), credentials=credentials)
    params = parse_authorization(value)
    assert params["username"] == credentials.username
    expected = compute_response(
        algorithm="MD5",
        username=credentials.username,
        realm="r",
        password=credentials.password,
        nonce="n",
        method="INVITE",
        uri=URI,
        qop="auth",
        nc="00000001",
        cnonce="c",
    )
    ha1 = hashlib.md5(f"{credentials.username}:r:{credentials.password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"INVITE:{URI}".encode()).hexdigest()
    assert expected == hashlib.md5(f"{ha1}:n:00000001:c:auth:{ha2}".encode()).hexdigest()
    assert params["response"] == expected
    assert verify(value, "INVITE", credentials.password, username=credentials.username)


def test_escaping_in_the_header_text() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n"')
    value = answer(challenge, credentials=Credentials('a"b\\c', "pw"))
    assert 'username="a\\"b\\\\c"' in value


def test_line_breaks_in_credentials_are_refused() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n"')
    with pytest.raises(DigestError, match="CR, LF"):
        answer(challenge, credentials=Credentials("alice\r\nVia: x", "pw"))


def test_credentials_repr_hides_the_password() -> None:
    assert "s3cret" not in repr(ALICE)


def test_userhash_can_be_forced_either_way() -> None:
    plain = parse_challenge('Digest realm="r", nonce="n", qop=auth, algorithm=SHA-256')
    hashed = parse_authorization(answer(plain, userhash=True))
    assert hashed["userhash"] == "true"
    assert hashed["username"] == hashlib.sha256(b"alice:r").hexdigest()
    asks = parse_challenge('Digest realm="r", nonce="n", qop=auth, userhash=true')
    assert parse_authorization(answer(asks, userhash=False))["username"] == "alice"


# ---------------------------------------------------------------- wrong variants


def test_wrong_variant_names_match_the_type() -> None:
    assert set(WRONG_VARIANTS) == set(get_args(WrongVariant))
    assert all(description.strip() for description in WRONG_VARIANTS.values())


def server_accepts(value: str, nonce: str, last_nc: int | None, algorithm: str) -> bool:
    """What a careful bridge checks: hash, realm, nonce, Request-URI, nc, algorithm."""
    return verify(
        value,
        "INVITE",
        ALICE.password,
        realm="bridge",
        expected_nonce=nonce,
        uri=URI,
        username=ALICE.username,
        algorithm=algorithm,
        last_nc=last_nc,
    )


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-512-256"])
@pytest.mark.parametrize("qop", ["auth", None])
@pytest.mark.parametrize("variant", list(WRONG_VARIANTS))
def test_every_wrong_variant_is_refused_and_the_right_answer_accepted(
    variant: str, qop: str | None, algorithm: str
) -> None:
    qop_param = f", qop={qop}" if qop else ""
    old = parse_challenge(f'Digest realm="bridge", nonce="old", algorithm={algorithm}{qop_param}')
    new = parse_challenge(f'Digest realm="bridge", nonce="new", algorithm={algorithm}{qop_param}')
    client = DigestClient()
    assert server_accepts(answer(old, client), "old", None, algorithm)
    first = answer(new, client)
    assert server_accepts(first, "new", None, algorithm)
    last_nc = 1 if qop else 0  # without qop a used nonce is spent
    wrong = answer(new, client, variant=variant)
    assert not server_accepts(wrong, "new", last_nc, algorithm), WRONG_VARIANTS[variant]
    if variant not in {"username", "realm", "uri", "stale"}:
        # Refused on the response hash alone (replay_nc: on nc alone).
        assert not verify(wrong, "INVITE", ALICE.password, last_nc=last_nc)
    right = answer(new, client)
    assert server_accepts(right, "new", last_nc if qop else None, algorithm)


def test_wrong_variants_change_only_what_they_say() -> None:
    challenge = parse_challenge('Digest realm="bridge", nonce="n", qop=auth, algorithm=MD5')
    client = DigestClient()
    answer(parse_challenge('Digest realm="bridge", nonce="old", qop=auth'), client)
    right = parse_authorization(answer(challenge, client))
    for variant, changed in [
        ("username", {"username"}),
        ("realm", {"realm"}),
        ("uri", {"uri"}),
        ("algorithm", {"algorithm"}),
        ("stale", {"nonce"}),
    ]:
        wrong = parse_authorization(answer(challenge, client, variant=variant))
        differing = {
            k for k in ("username", "realm", "uri", "algorithm", "nonce") if wrong[k] != right[k]
        }
        assert differing == changed, variant
    replay = parse_authorization(answer(challenge, client, variant="replay_nc"))
    assert replay["nc"] == f"{client.nonce_count('n'):08x}"
    garbage = parse_authorization(answer(challenge, client, variant="response"))["response"]
    assert len(garbage) == 32 and set(garbage) <= set("0123456789abcdef")


def test_variants_needing_history_say_so() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop=auth')
    with pytest.raises(DigestError, match="replay_nc needs an earlier answer"):
        answer(challenge, variant="replay_nc")
    with pytest.raises(DigestError, match="stale variant needs an earlier answer"):
        answer(challenge, variant="stale")
    with pytest.raises(DigestError, match=r"unknown wrong-answer variant 'nope'.*password"):
        answer(challenge, variant="nope")


# ---------------------------------------------------------------- verify and parse


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        'Digest username="alice", realm="r", nonce="n", uri="sip:x"',  # no response
        'Digest username="alice", realm="r", nonce="n", uri="sip:x", response="00", '
        "algorithm=AKAv1-MD5",
        'Digest username="alice", realm="r", nonce="n", uri="sip:x", response="00", '
        'qop=auth, nc=1, cnonce="c"',  # nc not 8 hex digits
        'Digest username="alice", realm="r", nonce="n", uri="sip:x", response="00", '
        "qop=auth, nc=00000001",  # no cnonce
        'Digest username="alice" realm="r"',
    ],
)
def test_verify_refuses_malformed_values(value: str) -> None:
    assert verify(value, "INVITE", "pw") is False


def test_verify_needs_a_growing_nc() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop=auth')
    client = DigestClient()
    first, second = answer(challenge, client), answer(challenge, client)
    assert verify(second, "INVITE", ALICE.password, last_nc=1)
    assert not verify(first, "INVITE", ALICE.password, last_nc=1)


def test_parse_authorization_errors_are_redacted() -> None:
    with pytest.raises(DigestError) as error:
        parse_authorization('Digest response="deadbeef" cnonce="c0ffee"')
    assert "deadbeef" not in str(error.value)
    assert "c0ffee" not in str(error.value)
    assert "[REDACTED]" in str(error.value)


def test_redact_authorization_hides_response_and_cnonce_only() -> None:
    value = (
        'Digest username="alice", realm="r", nonce="n0nce", uri="sip:x", '
        'Response="abc123", CNONCE="c\\"nonce", qop=auth, nc=00000001, response=bare'
    )
    redacted = redact_authorization(value)
    for secret in ("abc123", 'c\\"nonce', "bare"):
        assert secret not in redacted
    assert redacted.count('"[REDACTED]"') == 3
    for kept in ('username="alice"', 'nonce="n0nce"', "nc=00000001", 'uri="sip:x"'):
        assert kept in redacted


def test_redact_authorization_hides_secrets_of_malformed_values() -> None:
    redacted = redact_authorization('Digest response="abc, cnonce=def')
    assert "abc" not in redacted and "def" not in redacted
