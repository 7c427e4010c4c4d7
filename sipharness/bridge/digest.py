"""Server-side digest authentication (RFC 3261 §22, RFC 7616, RFC 8760).

Issues nonces and challenges, and verifies (Proxy-)Authorization answers."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

NONCE_SECRET_ENV = "SIPHARNESS_BRIDGE_NONCE_SECRET"  # hex key shared by worker processes

_HASHES = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-512-256": lambda data=b"": hashlib.new("sha512_256", data),
}


def _h(algorithm: str, text: str) -> str:
    return str(_HASHES[algorithm](text.encode("utf-8")).hexdigest())


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Digest a=b, c="d"`` into the scheme and its parameters (names lower-cased).

    Quoted strings may hold commas and backslash escapes (RFC 3261 §25.1 quoted-pair)."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t,":
            i += 1
        start = i
        while i < n and rest[i] not in "=, \t":
            i += 1
        name = rest[start:i].strip().lower()
        while i < n and rest[i] in " \t":
            i += 1
        if i >= n or rest[i] != "=":
            while i < n and rest[i] != ",":
                i += 1
            continue
        i += 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            i += 1
            params[name] = "".join(chars)
        else:
            start = i
            while i < n and rest[i] not in ", \t":
                i += 1
            params[name] = rest[start:i]
    return scheme, params


class Verdict(Enum):
    """The outcome of checking one Authorization header."""

    OK = "ok"
    STALE = "stale"          # right credentials, expired nonce: re-challenge with stale=true
    WRONG = "wrong"          # anything else: re-challenge


@dataclass
class DigestVerifier:
    """Issues nonces and checks Authorization headers for one realm.

    A nonce is ``<issue-time-hex>.<random-hex>.<hmac>``: the bridge keeps no state to
    recognise its own nonces (a challenge stores nothing), only the highest ``nc`` seen per
    nonce that passed authentication, to refuse replays. That table is bounded: entries
    older than the nonce lifetime are dropped (such a nonce only gets ``stale=true`` now)
    and at most ``max_nonces`` are kept, oldest first out (AUTH-10)."""

    realm: str
    algorithms: list[str]
    lifetime: float
    secret: bytes = b""
    max_nonces: int = 10000

    def __post_init__(self) -> None:
        if not self.secret:
            self.secret = os.urandom(16)
        self._nc_seen: OrderedDict[str, tuple[int, float]] = OrderedDict()

    @property
    def nonces_held(self) -> int:
        """How many nonces the replay table holds now."""
        return len(self._nc_seen)

    def new_nonce(self, now: float | None = None) -> str:
        issued = format(int((time.time() if now is None else now) * 1000), "x")
        salt = os.urandom(8).hex()
        mac = hmac.new(self.secret, f"{issued}.{salt}".encode(), hashlib.sha256).hexdigest()[:16]
        return f"{issued}.{salt}.{mac}"

    def challenges(self, stale: bool = False, opaque: str | None = None) -> list[str]:
        """One challenge value per offered algorithm, in order of preference."""
        nonce = self.new_nonce()
        out = []
        for algorithm in self.algorithms:
            value = (f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={algorithm}, '
                     f'qop="auth"')
            if opaque is not None:
                value += f', opaque="{opaque}"'
            if stale:
                value += ", stale=true"
            out.append(value)
        return out

    def _nonce_age(self, nonce: str, now: float) -> float | None:
        parts = nonce.split(".")
        if len(parts) != 3:
            return None
        issued, salt, mac = parts
        want = hmac.new(self.secret, f"{issued}.{salt}".encode(), hashlib.sha256).hexdigest()[:16]
        if not hmac.compare_digest(want, mac):
            return None
        try:
            return now - int(issued, 16) / 1000.0
        except ValueError:
            return None

    def verify(self, value: str, method: str, request_uri: str, passwords: dict[str, str],
               *, ignore_stale: bool = False, now: float | None = None) -> Verdict:
        """Check one (Proxy-)Authorization header value against the configured users."""
        scheme, p = parse_auth_params(value)
        if scheme.lower() != "digest":
            return Verdict.WRONG
        algorithm = p.get("algorithm", "MD5") or "MD5"
        algorithm = {a.upper(): a for a in self.algorithms}.get(algorithm.upper(), "")
        password = passwords.get(p.get("username", ""))
        nonce = p.get("nonce", "")
        if not algorithm or password is None or p.get("realm") != self.realm:
            return Verdict.WRONG
        if p.get("uri") != request_uri:
            return Verdict.WRONG
        now = time.time() if now is None else now
        age = self._nonce_age(nonce, now)
        if age is None:
            return Verdict.WRONG
        ha1 = _h(algorithm, f"{p['username']}:{self.realm}:{password}")
        ha2 = _h(algorithm, f"{method}:{p['uri']}")
        qop = p.get("qop")
        if qop:
            if qop != "auth":
                return Verdict.WRONG
            nc, cnonce = p.get("nc", ""), p.get("cnonce", "")
            expected = _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
        else:
            nc = ""
            expected = _h(algorithm, f"{ha1}:{nonce}:{ha2}")
        if not hmac.compare_digest(expected, p.get("response", "").lower()):
            return Verdict.WRONG
        if age > self.lifetime and not ignore_stale:
            return Verdict.STALE
        if nc and not self._fresh_nc(nonce, nc, now - age, now):
            return Verdict.WRONG
        return Verdict.OK

    def _fresh_nc(self, nonce: str, nc: str, issued: float, now: float) -> bool:
        try:
            count = int(nc, 16)
        except ValueError:
            return False
        last, _ = self._nc_seen.get(nonce, (0, issued))
        if count <= last:
            return False
        self._nc_seen[nonce] = (count, issued)
        self._forget_old(now)
        return True

    def _forget_old(self, now: float) -> None:
        """Drop expired nonces from the front (first use order) and cap the table's size."""
        while self._nc_seen:
            _, (_, issued) = next(iter(self._nc_seen.items()))
            if now - issued <= self.lifetime and len(self._nc_seen) <= self.max_nonces:
                break
            self._nc_seen.popitem(last=False)
