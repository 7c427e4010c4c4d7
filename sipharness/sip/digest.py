"""Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760, RFC 3261 §22): parse
challenges, answer them (correctly or in chosen wrong ways), and verify answers."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sipharness.sip.identifiers import random_hex

if TYPE_CHECKING:
    from sipharness.sip.message import Response


class DigestError(ValueError):
    """A challenge or Authorization value that cannot be parsed or answered."""


HexDigest = Callable[[bytes], str]

# Base algorithm -> (hex digest function, strength rank); "-sess" variants share the base's.
_HASHES: dict[str, tuple[HexDigest, int]] = {
    "MD5": (lambda data: hashlib.md5(data).hexdigest(), 0),
    "SHA-256": (lambda data: hashlib.sha256(data).hexdigest(), 1),
    "SHA-512-256": (lambda data: hashlib.new("sha512_256", data).hexdigest(), 2),
}

SUPPORTED_ALGORITHMS: tuple[str, ...] = tuple(
    name for base in _HASHES for name in (base, f"{base}-sess")
)
"""Every algorithm this module can compute, canonical spelling."""

_CANONICAL = {name.lower(): name for name in SUPPORTED_ALGORITHMS}

WrongVariant = Literal[
    "password",
    "username",
    "realm",
    "empty_password",
    "uri",
    "replay_nc",
    "algorithm",
    "stale",
    "response",
]

WRONG_VARIANTS: dict[str, str] = {
    "password": "right username, wrong password",
    "username": "a username the server does not know, with the right password",
    "realm": "realm= differs from the challenge's realm (response computed with it)",
    "empty_password": "right username, empty password",
    "uri": "uri= differs from the Request-URI (response computed over that uri)",
    "replay_nc": "same nonce and same nc as this client's previous answer to it (a replay)",
    "algorithm": "algorithm= claims another algorithm than the challenged one used for response=",
    "stale": "right credentials for an older nonce this client answered before",
    "response": "response= is garbage hex of the right length",
}
"""Deliberately wrong answers for negative tests: variant name -> what it does."""

REDACTED = "[REDACTED]"

_NC_MEMORY = 1024  # nonces remembered per client; the oldest is forgotten first


def canonical_algorithm(name: str | None) -> str | None:
    """The canonical spelling of a supported algorithm (missing means MD5), else None."""
    if name is None:
        return "MD5"
    return _CANONICAL.get(name.strip().lower())


def _hash_of(algorithm: str) -> HexDigest:
    return _HASHES[algorithm.removesuffix("-sess")][0]


def hash_username(username: str, realm: str, algorithm: str | None) -> str:
    """RFC 7616 §3.4.4 userhash: H(username ":" realm) with the challenge's hash."""
    canonical = _require_algorithm(algorithm)
    return _hash_of(canonical)(f"{username}:{realm}".encode())


def _require_algorithm(algorithm: str | None) -> str:
    canonical = canonical_algorithm(algorithm)
    if canonical is None:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    return canonical


def compute_response(
    *,
    algorithm: str | None,
    username: str,
    realm: str,
    password: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response=`` value (lower-case hex) per RFC 7616 §3.4.1-3.4.3 / RFC 2617 §3.2.2.

    Strings are hashed as UTF-8; ``qop`` None is the RFC 2069 form (no nc, no cnonce).
    """
    canonical = _require_algorithm(algorithm)
    digest = _hash_of(canonical)
    ha1 = digest(f"{username}:{realm}:{password}".encode())
    if canonical.endswith("-sess"):
        if cnonce is None:
            raise DigestError(f"{canonical} needs a cnonce")
        ha1 = digest(f"{ha1}:{nonce}:{cnonce}".encode())
    if qop is None or qop.lower() == "auth":
        a2 = f"{method}:{uri}"
    elif qop.lower() == "auth-int":
        a2 = f"{method}:{uri}:{digest(body)}"
    else:
        raise DigestError(f"unsupported qop {qop!r}")
    ha2 = digest(a2.encode())
    if qop is None:
        return digest(f"{ha1}:{nonce}:{ha2}".encode())
    if nc is None or cnonce is None:
        raise DigestError(f"qop={qop} needs nc and cnonce")
    return digest(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


# ---------------------------------------------------------------- auth-param lists

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_WS = " \t\r\n"


def _skip(text: str, i: int, chars: str) -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _scan(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Split ``scheme p=v, p="v", scheme2 ...`` into (scheme, [(name, value)]) in order.

    Raises _ScanError(reason, offset); callers say which header it was.
    """
    items: list[tuple[str, list[tuple[str, str]]]] = []
    i = _skip(text, 0, _WS + ",")
    while i < len(text):
        match = _TOKEN.match(text, i)
        if match is None:
            raise _ScanError(f"unexpected {text[i]!r}", i)
        name = match.group()
        j = _skip(text, match.end(), _WS)
        if j >= len(text) or text[j] != "=":
            if j < len(text) and text[j] == "," and items:
                raise _ScanError(f"parameter {name!r} has no '=value'", j)
            items.append((name, []))
            i = j
            continue
        if not items:
            raise _ScanError("expected an auth scheme (such as Digest) before parameters", i)
        value, i = _scan_value(text, _skip(text, j + 1, _WS), name)
        items[-1][1].append((name, value))
        i = _skip(text, i, _WS)
        if i < len(text) and text[i] != ",":
            raise _ScanError(f"expected ',' after parameter {name!r}", i)
        i = _skip(text, i, _WS + ",")
    return items


def _scan_value(text: str, i: int, name: str) -> tuple[str, int]:
    if i < len(text) and text[i] == '"':
        chars: list[str] = []
        i += 1
        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text):
                chars.append(text[i + 1])
                i += 2
            elif char == '"':
                return "".join(chars), i + 1
            else:
                chars.append(char)
                i += 1
        raise _ScanError(f"unterminated quoted value of {name!r}", len(text))
    end = i
    while end < len(text) and text[end] not in _WS + ',"':
        end += 1
    if end == i:
        raise _ScanError(f"parameter {name!r} has an empty value", i)
    return text[i:end], end


class _ScanError(Exception):
    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


def _params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key in params:
            raise _ScanError(f"parameter {name!r} appears twice", 0)
        params[key] = value
    return params


def quote(value: str) -> str:
    """``value`` as a quoted-string: ``"`` and ``\\`` escaped, UTF-8 kept; no CR/LF/NUL."""
    if any(char in value for char in "\r\n\0"):
        raise DigestError("a quoted digest parameter cannot contain CR, LF or NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- challenges

_CHALLENGE_HEADERS = {
    "www-authenticate": ("WWW-Authenticate", "Authorization"),
    "proxy-authenticate": ("Proxy-Authenticate", "Proxy-Authorization"),
}


@dataclass
class DigestChallenge:
    """One Digest challenge from a WWW-Authenticate (401) or Proxy-Authenticate (407) value."""

    header_name: str
    realm: str
    nonce: str
    algorithm: str | None = None
    qop: list[str] = field(default_factory=list)
    opaque: str | None = None
    stale: bool = False
    domain: list[str] = field(default_factory=list)
    userhash: bool = False
    charset: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    """Every parameter as received (lower-case names, unquoted values), unknown ones too."""

    @property
    def authorization_header(self) -> str:
        """The header that answers this challenge: Authorization or Proxy-Authorization."""
        return _CHALLENGE_HEADERS[self.header_name.lower()][1]

    @property
    def canonical_algorithm(self) -> str | None:
        """The algorithm in canonical spelling (missing means MD5); None when unsupported."""
        return canonical_algorithm(self.algorithm)

    @property
    def supported(self) -> bool:
        """True when DigestClient can answer it (known algorithm, usable qop)."""
        algorithm = self.canonical_algorithm
        if algorithm is None:
            return False
        if self.qop:
            return _pick_qop(self.qop, None) is not None
        return not algorithm.endswith("-sess")


def parse_challenge(value: str, header_name: str = "WWW-Authenticate") -> DigestChallenge:
    """Parse a header value holding exactly one Digest challenge."""
    challenges = _challenges_in(value, header_name, keep_other_schemes=True)
    if len(challenges) != 1 or challenges[0] is None:
        raise DigestError(f"malformed {header_name}: expected one Digest challenge in {value!r}")
    return challenges[0]


def challenges_from_headers(headers: Iterable[tuple[str, str]]) -> list[DigestChallenge]:
    """Every Digest challenge in the WWW-/Proxy-Authenticate fields of (name, value) pairs.

    Order is kept; other headers and non-Digest schemes (Basic, ...) are skipped; a malformed
    challenge raises DigestError naming the header and the problem.
    """
    found: list[DigestChallenge] = []
    for name, value in headers:
        if name.strip().lower() in _CHALLENGE_HEADERS:
            found.extend(c for c in _challenges_in(value, name.strip()) if c is not None)
    return found


def parse_challenges(response: Response) -> list[DigestChallenge]:
    """Every Digest challenge of a 401/407 response, in header order (RFC 8760 §2.4)."""
    return challenges_from_headers((header.name, header.value) for header in response.headers)


def _challenges_in(
    value: str, header_name: str, *, keep_other_schemes: bool = False
) -> list[DigestChallenge | None]:
    canonical_name = _CHALLENGE_HEADERS.get(header_name.lower(), (None,))[0]
    if canonical_name is None:
        raise DigestError(f"{header_name!r} is not a challenge header")
    try:
        items = _scan(value)
        if not items:
            raise _ScanError("empty value", 0)
        found: list[DigestChallenge | None] = []
        for scheme, pairs in items:
            if scheme.lower() == "digest":
                found.append(_challenge(canonical_name, _params(pairs)))
            elif keep_other_schemes:
                found.append(None)
        return found
    except _ScanError as error:
        where = f" at offset {error.offset}" if error.offset else ""
        raise DigestError(
            f"malformed {canonical_name}: {error.reason}{where} in {value!r}"
        ) from None


def _challenge(header_name: str, params: dict[str, str]) -> DigestChallenge:
    for required in ("realm", "nonce"):
        if required not in params:
            raise _ScanError(f"Digest challenge without {required}=", 0)
    qop = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    return DigestChallenge(
        header_name=header_name,
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=params.get("algorithm"),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        domain=params.get("domain", "").split(),
        userhash=params.get("userhash", "").lower() == "true",
        charset=params.get("charset"),
        params=params,
    )


def choose_challenge(challenges: Sequence[DigestChallenge]) -> DigestChallenge:
    """The strongest supported challenge (SHA-512-256 > SHA-256 > MD5), first on ties.

    Unsupported algorithms (e.g. AKAv1-MD5) are skipped; DigestError when none is usable.
    """
    usable = [c for c in challenges if c.supported]
    if not usable:
        offered = ", ".join(
            f"{c.algorithm or 'MD5'} qop={','.join(c.qop) or '-'}" for c in challenges
        )
        raise DigestError(f"no usable Digest challenge (offered: {offered or 'none'})")
    return max(usable, key=lambda c: _strength(c.canonical_algorithm))


def _strength(algorithm: str | None) -> int:
    assert algorithm is not None
    return _HASHES[algorithm.removesuffix("-sess")][1]


def _pick_qop(offered: Sequence[str], wanted: str | None) -> str | None:
    lowered = [q.lower() for q in offered]
    for candidate in (wanted,) if wanted else ("auth", "auth-int"):
        if candidate is not None and candidate.lower() in lowered:
            return candidate.lower()
    return None


def format_challenge(
    realm: str,
    nonce: str,
    *,
    algorithm: str | None = "MD5",
    qop: Sequence[str] = ("auth",),
    opaque: str | None = None,
    stale: bool = False,
    domain: Sequence[str] = (),
    userhash: bool = False,
    charset: str | None = None,
) -> str:
    """A WWW-/Proxy-Authenticate value for servers and tests (RFC 7616 §3.3 layout)."""
    parts = [f"realm={quote(realm)}"]
    if domain:
        parts.append(f"domain={quote(' '.join(domain))}")
    parts.append(f"nonce={quote(nonce)}")
    if opaque is not None:
        parts.append(f"opaque={quote(opaque)}")
    if stale:
        parts.append("stale=TRUE")
    if algorithm is not None:
        parts.append(f"algorithm={algorithm}")
    if qop:
        parts.append(f"qop={quote(','.join(qop))}")
    if charset is not None:
        parts.append(f"charset={charset}")
    if userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


# ---------------------------------------------------------------- client


@dataclass(frozen=True)
class Credentials:
    """A digest username and password; the password never appears in repr()."""

    username: str
    password: str = field(repr=False)


_OTHER_ALGORITHM = {"MD5": "SHA-256", "SHA-256": "MD5", "SHA-512-256": "SHA-256"}


class DigestClient:
    """Answers Digest challenges; remembers nonce counts (nc) per nonce across answers.

    ``cnonce`` makes client nonces (random 16 hex digits by default); tests inject it.
    """

    def __init__(self, *, cnonce: Callable[[], str] | None = None) -> None:
        self._make_cnonce = cnonce or (lambda: random_hex(8))
        self._nc: dict[str, int] = {}

    def nonce_count(self, nonce: str) -> int:
        """The last nc this client sent for ``nonce`` (0 if never answered)."""
        return self._nc.get(nonce, 0)

    def authorize(
        self,
        challenge: DigestChallenge,
        method: str,
        uri: str,
        credentials: Credentials,
        body: bytes = b"",
        *,
        variant: WrongVariant | str | None = None,
        qop: str | None = None,
        userhash: bool | None = None,
    ) -> tuple[str, str]:
        """(header name, value) answering ``challenge`` for a request ``method`` to ``uri``.

        ``qop`` picks one the challenge offers (default: auth, else auth-int); ``userhash``
        None follows the challenge. ``variant`` makes a deliberately wrong answer, see
        WRONG_VARIANTS. ``body`` is the request body, hashed for qop=auth-int.
        """
        if variant is not None and variant not in WRONG_VARIANTS:
            raise DigestError(
                f"unknown wrong-answer variant {variant!r}; known: {', '.join(WRONG_VARIANTS)}"
            )
        algorithm = challenge.canonical_algorithm
        if algorithm is None:
            raise DigestError(f"unsupported digest algorithm {challenge.algorithm!r}")
        chosen_qop: str | None = None
        if challenge.qop:
            chosen_qop = _pick_qop(challenge.qop, qop)
            if chosen_qop is None:
                raise DigestError(
                    f"challenge offers qop={','.join(challenge.qop)}, none usable"
                    + (f" as {qop!r}" if qop else "")
                )
        elif qop is not None:
            raise DigestError(f"challenge offers no qop, cannot answer with qop={qop}")
        elif algorithm.endswith("-sess"):
            raise DigestError(f"{algorithm} challenge without qop cannot be answered")

        username, password = credentials.username, credentials.password
        realm, nonce, digest_uri = challenge.realm, challenge.nonce, uri
        if variant == "password":
            password = password + "-wrong"
        elif variant == "empty_password":
            password = ""
        elif variant == "username":
            username = username + "-wrong"
        elif variant == "realm":
            realm = realm + ".wrong"
        elif variant == "uri":
            digest_uri = _wrong_uri(uri)
        elif variant == "stale":
            nonce = self._older_nonce(challenge.nonce)

        nc: str | None = None
        cnonce: str | None = None
        if chosen_qop is not None:
            count = self._next_count(nonce, replay=variant == "replay_nc")
            nc = f"{count:08x}"
            cnonce = self._make_cnonce()
        elif variant == "replay_nc" and nonce not in self._nc:
            raise DigestError("replay_nc needs an earlier answer to the same nonce")
        else:
            self._remember(nonce, self._nc.get(nonce, 0))

        response = compute_response(
            algorithm=algorithm,
            username=username,
            realm=realm,
            password=password,
            nonce=nonce,
            method=method,
            uri=digest_uri,
            qop=chosen_qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        claimed_algorithm = challenge.algorithm
        if variant == "algorithm":
            base = algorithm.removesuffix("-sess")
            claimed_algorithm = _OTHER_ALGORITHM[base] + algorithm[len(base) :]
        elif variant == "response":
            response = "".join(f"{15 - int(char, 16):x}" for char in response)

        hashed = challenge.userhash if userhash is None else userhash
        shown_username = hash_username(username, realm, algorithm) if hashed else username
        parts = [
            f"username={quote(shown_username)}",
            f"realm={quote(realm)}",
            f"nonce={quote(nonce)}",
            f"uri={quote(digest_uri)}",
            f"response={quote(response)}",
        ]
        if claimed_algorithm is not None:
            parts.append(f"algorithm={claimed_algorithm}")
        if cnonce is not None:
            parts.append(f"cnonce={quote(cnonce)}")
        if challenge.opaque is not None:
            parts.append(f"opaque={quote(challenge.opaque)}")
        if chosen_qop is not None:
            parts.append(f"qop={chosen_qop}")
            parts.append(f"nc={nc}")
        if hashed:
            parts.append("userhash=true")
        return challenge.authorization_header, "Digest " + ", ".join(parts)

    def _next_count(self, nonce: str, *, replay: bool) -> int:
        previous = self._nc.get(nonce, 0)
        if replay:
            if previous == 0:
                raise DigestError("replay_nc needs an earlier answer to the same nonce")
            count = previous
        else:
            count = previous + 1
        self._remember(nonce, count)
        return count

    def _remember(self, nonce: str, count: int) -> None:
        self._nc.pop(nonce, None)
        self._nc[nonce] = count
        while len(self._nc) > _NC_MEMORY:
            del self._nc[next(iter(self._nc))]

    def _older_nonce(self, current: str) -> str:
        for nonce in reversed(self._nc):
            if nonce != current:
                return nonce
        raise DigestError("the stale variant needs an earlier answer to another nonce")


def _wrong_uri(uri: str) -> str:
    scheme, colon, rest = uri.partition(":")
    if not colon:
        return uri + "-wrong"
    if "@" in rest:
        user, _, host = rest.partition("@")
        return f"{scheme}:{user}-wrong@{host}"
    return f"{scheme}:wrong@{rest}"


# ---------------------------------------------------------------- server side


def parse_authorization(value: str) -> dict[str, str]:
    """The parameters of a Digest (Proxy-)Authorization value: lower-case names, unquoted
    values. DigestError (with response/cnonce redacted) when it is not a Digest value."""
    try:
        items = _scan(value)
        if len(items) != 1 or items[0][0].lower() != "digest":
            raise _ScanError("expected one Digest credentials value", 0)
        return _params(items[0][1])
    except _ScanError as error:
        where = f" at offset {error.offset}" if error.offset else ""
        raise DigestError(
            f"malformed Authorization: {error.reason}{where} in {redact_authorization(value)!r}"
        ) from None


_NC = re.compile(r"[0-9a-fA-F]{8}")


def verify(
    authorization_value: str,
    method: str,
    password: str,
    *,
    realm: str | None = None,
    expected_nonce: str | None = None,
    body: bytes = b"",
    uri: str | None = None,
    username: str | None = None,
    algorithm: str | None = None,
    last_nc: int | None = None,
) -> bool:
    """True when the value proves knowledge of ``password`` for this request.

    Each keyword, when given, is also checked: ``realm``/``expected_nonce`` as challenged,
    ``uri`` the Request-URI, ``username`` expected (needed with userhash=true),
    ``algorithm`` the challenged one, ``last_nc`` the highest nc already accepted for this
    nonce, 0 after an answer without qop (the new nc must be greater, so an answer without
    qop to a used nonce is refused). Malformed values give False. Constant-time compare.
    """
    try:
        params = parse_authorization(authorization_value)
    except DigestError:
        return False
    try:
        for required in ("username", "realm", "nonce", "uri", "response"):
            if required not in params:
                return False
        canonical = canonical_algorithm(params.get("algorithm"))
        if canonical is None:
            return False
        if algorithm is not None and canonical_algorithm(algorithm) != canonical:
            return False
        if realm is not None and params["realm"] != realm:
            return False
        if expected_nonce is not None and params["nonce"] != expected_nonce:
            return False
        if uri is not None and params["uri"] != uri:
            return False
        claimed_user = params["username"]
        if params.get("userhash", "").lower() == "true":
            if username is None:
                return False
            expected = hash_username(username, params["realm"], canonical)
            if not hmac.compare_digest(claimed_user.lower().encode(), expected.encode()):
                return False
            claimed_user = username
        elif username is not None and claimed_user != username:
            return False
        qop = params.get("qop")
        nc = params.get("nc")
        if qop is not None:
            if nc is None or not _NC.fullmatch(nc) or "cnonce" not in params:
                return False
            if last_nc is not None and int(nc, 16) <= last_nc:
                return False
        elif last_nc is not None:
            return False
        expected_response = compute_response(
            algorithm=canonical,
            username=claimed_user,
            realm=params["realm"],
            password=password,
            nonce=params["nonce"],
            method=method,
            uri=params["uri"],
            qop=qop,
            nc=nc,
            cnonce=params.get("cnonce"),
            body=body,
        )
    except DigestError:
        return False
    return hmac.compare_digest(
        params["response"].lower().encode("utf-8", "replace"), expected_response.encode()
    )


_SECRET_PARAM = re.compile(
    r"""(?i)(?<![\w-])(response|cnonce)(\s*=\s*)("(?:[^"\\]|\\.)*"?|[^\s,"]*)"""
)


def redact_authorization(value: str) -> str:
    """``value`` with the response= and cnonce= values replaced by "[REDACTED]"."""
    return _SECRET_PARAM.sub(lambda m: f'{m.group(1)}{m.group(2)}"{REDACTED}"', value)
