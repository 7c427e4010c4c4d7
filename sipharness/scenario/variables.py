"""``${...}`` templates in scenario text and the run-time bindings that resolve them.

A template is literal text with ``${expr}`` parts (``$${`` writes a literal ``${``). An
expression is a reference (``room_code``, ``target.host``, ``local.sent_by``,
``matrix.transport``, ``credentials.username``, ``random.tag``, ``saved.nonce`` or a name
from ``variables:``), a quoted string, an integer, or a call of one of FUNCTIONS:
``upper(x)``, ``lower(x)``, ``case(mode, x)``, ``pct(x)``, ``repeat(x, n)``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sipharness.sip.identifiers import random_hex

Ref = tuple[str, ...]

LOCAL_FIELDS = frozenset({"host", "port", "sent_by"})
"""``${local.*}``: our own address as the far end sees it in Via and Contact."""

# Built-in names: namespace -> allowed second parts (None: any name).
BUILTINS: dict[str, frozenset[str] | None] = {
    "target": frozenset({"host", "port", "transport"}),
    "local": LOCAL_FIELDS,
    "credentials": frozenset({"username", "password"}),
    "random": None,
    "matrix": None,
    "saved": None,
}
BUILTIN_NAMES = frozenset({"room_code"})

CASE_MODES = ("as_is", "lower", "upper", "title", "mixed")


def change_case(mode: str, text: str) -> str:
    """Rewrite ``text`` (a header name, say) in one of CASE_MODES.

    ``title`` capitalises each dash-separated word (``X-100ms-Display-Name``); ``mixed``
    alternates upper and lower case letter by letter (``X-100mS-dIsPlAy-NaMe``).
    """
    if mode == "lower":
        return text.lower()
    if mode == "upper":
        return text.upper()
    if mode == "title":
        return "-".join(word[:1].upper() + word[1:].lower() for word in text.split("-"))
    if mode == "mixed":
        out, upper = [], True
        for ch in text:
            if ch.isalpha():
                out.append(ch.upper() if upper else ch.lower())
                upper = not upper
            else:
                out.append(ch)
        return "".join(out)
    if mode == "as_is":
        return text
    raise TemplateError(f"unknown case mode {mode!r} (expected one of {', '.join(CASE_MODES)})")


def _repeat(text: str, count: str) -> str:
    n = int(count)
    if not 0 <= n <= 65536:
        raise TemplateError(f"repeat count {n} is outside 0-65536")
    return text * n


FUNCTIONS: dict[str, tuple[int, Callable[..., str]]] = {
    "upper": (1, str.upper),
    "lower": (1, str.lower),
    "case": (2, change_case),
    "pct": (1, lambda text: urllib.parse.quote(text, safe="")),
    "repeat": (2, _repeat),
}


class TemplateError(ValueError):
    """A template that cannot be parsed or resolved."""


@dataclass(frozen=True)
class Expr:
    """One parsed expression: a reference, a literal, or a function call."""

    ref: Ref | None = None
    literal: str | None = None
    func: str | None = None
    args: tuple[Expr, ...] = ()

    def refs(self) -> list[Ref]:
        if self.ref is not None:
            return [self.ref]
        return [r for a in self.args for r in a.refs()]

    def evaluate(self, lookup: Callable[[Ref], str]) -> str:
        if self.ref is not None:
            return lookup(self.ref)
        if self.literal is not None:
            return self.literal
        assert self.func is not None
        return FUNCTIONS[self.func][1](*(a.evaluate(lookup) for a in self.args))


_TOKEN = re.compile(
    r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*)"
    r'|(?P<string>"(?:[^"\\]|\\.)*")|(?P<int>-?\d+)|(?P<punct>[(),]))'
)


class _ExprParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> TemplateError:
        return TemplateError(f"in ${{{self.text}}}: {what} at offset {self.pos}")

    def token(self) -> re.Match[str] | None:
        return _TOKEN.match(self.text, self.pos)

    def parse(self) -> Expr:
        expr = self.expr()
        if self.text[self.pos :].strip():
            raise self.fail(f"unexpected {self.text[self.pos :].strip()!r}")
        return expr

    def expr(self) -> Expr:
        m = self.token()
        if m is None or m.group("punct"):
            raise self.fail("expected a name, a quoted string or a number")
        self.pos = m.end()
        if m.group("string"):
            return Expr(literal=re.sub(r"\\(.)", r"\1", m.group("string")[1:-1]))
        if m.group("int"):
            return Expr(literal=m.group("int"))
        name = m.group("name")
        nxt = self.token()
        if nxt is None or nxt.group("punct") != "(":
            return Expr(ref=tuple(name.split(".")))
        if name not in FUNCTIONS:
            raise self.fail(f"unknown function {name}() (known: {', '.join(FUNCTIONS)})")
        self.pos = nxt.end()
        args: list[Expr] = []
        close = self.token()
        if close is not None and close.group("punct") == ")":
            self.pos = close.end()
        else:
            while True:
                args.append(self.expr())
                sep = self.token()
                if sep is None or sep.group("punct") not in (",", ")"):
                    raise self.fail("expected ',' or ')'")
                self.pos = sep.end()
                if sep.group("punct") == ")":
                    break
        if len(args) != FUNCTIONS[name][0]:
            raise self.fail(f"{name}() takes {FUNCTIONS[name][0]} argument(s), got {len(args)}")
        return Expr(func=name, args=tuple(args))


@dataclass(frozen=True)
class Template:
    """Scenario text with ``${...}`` parts, resolved against Bindings at run time."""

    text: str
    parts: tuple[str | Expr, ...] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Template:
        parts: list[str | Expr] = []
        pos = 0
        buf = ""
        while pos < len(text):
            if text.startswith("$${", pos):
                buf += "${"
                pos += 3
            elif text.startswith("${", pos):
                end = _closing_brace(text, pos + 2)
                if end < 0:
                    raise TemplateError(f"unclosed ${{ at offset {pos}")
                if buf:
                    parts.append(buf)
                    buf = ""
                parts.append(_ExprParser(text[pos + 2 : end]).parse())
                pos = end + 1
            else:
                buf += text[pos]
                pos += 1
        if buf:
            parts.append(buf)
        return cls(text, tuple(parts))

    @property
    def is_literal(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def refs(self) -> list[Ref]:
        return [r for p in self.parts if isinstance(p, Expr) for r in p.refs()]

    def render(self, bindings: Bindings) -> str:
        return "".join(p if isinstance(p, str) else p.evaluate(bindings.lookup) for p in self.parts)


def _closing_brace(text: str, pos: int) -> int:
    in_string = False
    while pos < len(text):
        ch = text[pos]
        if in_string:
            if ch == "\\":
                pos += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "}":
            return pos
        pos += 1
    return -1


def check_ref(
    ref: Ref, variables: Mapping[str, object], matrix: Mapping[str, object], saved: set[str]
) -> str | None:
    """Why ``ref`` cannot be resolved in a scenario, or None when it can."""
    dotted = ".".join(ref)
    head = ref[0]
    if len(ref) == 1:
        if head in BUILTIN_NAMES or head in variables:
            return None
        if head in BUILTINS:
            return f"${{{dotted}}} needs a field, like ${{{head}.NAME}}"
        return f"unknown variable ${{{dotted}}} (not in variables:, not a built-in)"
    if head not in BUILTINS or len(ref) != 2:
        return f"unknown variable ${{{dotted}}}"
    allowed = BUILTINS[head]
    if allowed is not None and ref[1] not in allowed:
        return f"unknown variable ${{{dotted}}} (known: {', '.join(sorted(allowed))})"
    if head == "matrix" and ref[1] not in matrix:
        return f"${{{dotted}}} uses matrix axis {ref[1]!r}, which matrix: does not define"
    if head == "saved" and ref[1] not in saved:
        return f"${{{dotted}}} is not saved by an earlier step (save: {{{ref[1]}: ...}})"
    return None


def split_sent_by(sent_by: str) -> tuple[str, str]:
    """``127.0.0.1:5070`` -> (``127.0.0.1``, ``5070``); ``[::1]:5070`` -> (``::1``, ``5070``)."""
    host, _, port = sent_by.rpartition(":")
    if not host or not port.isdigit():
        raise TemplateError(f"our address {sent_by!r} is not HOST:PORT")
    return host.strip("[]"), port


@dataclass
class Bindings:
    """Values for one run of a Plan; ``saved`` fills in as expect steps save values.

    ``local_sent_by`` gives our own address as the far end sees it in Via and Contact
    (``host:port``, IPv6 in brackets), asked for only when a template names ``${local.*}``:
    the runner knows it once its agent is open (None: ``${local.*}`` cannot resolve).
    """

    target_host: str
    target_port: int
    transport: str
    room_code: str
    username: str = ""
    password: str = ""
    matrix: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, Template] = field(default_factory=dict)
    saved: dict[str, str] = field(default_factory=dict)
    random: dict[str, str] = field(default_factory=dict)
    local_sent_by: Callable[[], str] | None = None
    _resolving: set[str] = field(default_factory=set, repr=False)

    def save(self, name: str, value: str) -> None:
        self.saved[name] = value

    def lookup(self, ref: Ref) -> str:
        head = ref[0]
        if len(ref) == 1:
            if head == "room_code":
                return self.room_code
            if head in self.variables:
                if head in self._resolving:
                    raise TemplateError(f"variable {head} refers to itself")
                self._resolving.add(head)
                try:
                    return self.variables[head].render(self)
                finally:
                    self._resolving.discard(head)
        elif len(ref) == 2:
            name = ref[1]
            if head == "target":
                return {
                    "host": self.target_host,
                    "port": str(self.target_port),
                    "transport": self.transport,
                }[name]
            if head == "local" and name in LOCAL_FIELDS:
                return self.local(name)
            if head == "credentials":
                return {"username": self.username, "password": self.password}[name]
            if head == "matrix" and name in self.matrix:
                return self.matrix[name]
            if head == "saved":
                if name not in self.saved:
                    raise TemplateError(
                        f"${{saved.{name}}} was not saved (the step that saves "
                        "it did not see the value)"
                    )
                return self.saved[name]
            if head == "random":
                if name not in self.random:
                    self.random[name] = random_hex(5)
                return self.random[name]
        raise TemplateError(f"unknown variable ${{{'.'.join(ref)}}}")

    def local(self, name: str) -> str:
        """``host`` (bare, like ``target.host``), ``port`` or ``sent_by`` of our address."""
        if self.local_sent_by is None:
            raise TemplateError(f"${{local.{name}}} is known only while a call runs")
        sent_by = self.local_sent_by()
        if name == "sent_by":
            return sent_by
        host, port = split_sent_by(sent_by)
        return host if name == "host" else port
