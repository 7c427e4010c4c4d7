"""Run one scenario plan on one call: steps become agent calls, expectations are checked.

A failed expectation raises ExpectationFailed, which reads
``scenarios/auth/x.yaml:14 step 3 (expect 401): expected status 401, saw 200 OK`` followed by
the (redacted) message it was checked against. Every step is one Allure step; the call's
ladder, message exchange and record are attached at the end, pass or fail.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import gevent
import pytest

from sipharness.agent import (
    Agent,
    Call,
    CallError,
    CallRecord,
    CallState,
    Credentials,
    TimerConfig,
)
from sipharness.agent.record import MessageEntry
from sipharness.net.transport import TransportError
from sipharness.report import allure as report
from sipharness.report.redact import redact_message, register_secret
from sipharness.scenario import model as m
from sipharness.scenario.checklist import CHECKS
from sipharness.scenario.media_steps import offer_port
from sipharness.scenario.plan import Plan
from sipharness.scenario.profiles import TargetProfile
from sipharness.scenario.variables import Bindings, Template, TemplateError
from sipharness.sip.digest import (
    DigestChallenge,
    DigestError,
    choose_challenge,
    parse_challenges,
)
from sipharness.sip.identifiers import random_hex
from sipharness.sip.message import (
    Request,
    Response,
    SipParseError,
    build_request,
    canonical_name,
    new_branch,
    new_tag,
    parse_message,
)
from sipharness.sip.sdp import (
    KNOWN_CODECS,
    Codec,
    MediaDescription,
    SessionDescription,
    check_answer,
    make_offer,
)
from sipharness.sip.transaction import ack_for_non_2xx
from sipharness.sip.uri import parse_uri

T = TypeVar("T")
TIMERS = TimerConfig()
DEFAULT_WAIT = 64 * TIMERS.t1 + 1.0
"""How long an expectation without ``within`` waits: Timer B/F (64·T1) and a margin."""
DUPLICATE_GRACE = 1.0
"""After the first matching webhook, how long a ``count:`` check waits for duplicates."""
POLL = 0.01
CLEANUP_WAIT = 2.0
MESSAGE_LINES = 40


@dataclass
class Target:
    """Where and how to dial, what the target offers, and how to observe it."""

    host: str
    port: int
    transport: str
    username: str
    password: str
    room_code: str
    profile: TargetProfile
    webhooks: Any = None
    roster_url: str | None = None
    extra_ports: Mapping[str, int] = field(default_factory=dict)
    webhook_secret_header: str | None = None

    def port_for(self, transport: str) -> int:
        return int(self.extra_ports.get(transport, self.port))


class ExpectationFailed(AssertionError):
    """A step's expectation did not hold; ``str()`` is the report line plus the message."""

    def __init__(self, plan: Plan, step: m.Step, expected: str, seen: str,
                 message: str = "") -> None:  # fmt: skip
        self.scenario_path = plan.scenario.path
        self.line = step.line
        self.step_number = step.index + 1
        self.expected = expected
        self.seen = seen
        self.message = message
        case = f" [{plan.case_id}]" if plan.case_id else ""
        head = (f"{plan.scenario.path}:{step.line}{case} step {self.step_number} "
                f"({describe(step)}): expected {expected}, saw {seen}")
        rule = f"rule: {step.note}" if step.note else ""
        checks = "checks: " + ", ".join(
            f"{c} ({CHECKS[c].title})" if c in CHECKS else c for c in plan.scenario.checks)
        super().__init__("\n".join(x for x in (head, rule, checks, message) if x))


def describe(step: m.Step) -> str:
    """``expect 401``, ``send INVITE``, ``expect_webhook peer.join.success`` (+ the id)."""
    if isinstance(step, m.Expect):
        text = "expect " + "/".join(str(s) for s in step.statuses)
    elif isinstance(step, m.Send):
        text = f"send {step.method or 'raw'}"
        if step.transport:
            text += f" over {step.transport.upper()}"
    elif isinstance(step, m.ExpectWebhook):
        text = f"expect_webhook {step.type}"
    elif isinstance(step, m.ExpectRequest):
        text = f"expect_request {step.method}"
    elif isinstance(step, m.AnswerChallenge):
        text = f"answer_challenge {step.credentials.text}"
    else:
        text = step.kind
    return f"{text}, id {step.id}" if step.id else text


def show_message(data: bytes) -> str:
    """A received or sent message for a failure report: redacted, at most MESSAGE_LINES."""
    text = redact_message(data).decode("utf-8", "replace").replace("\r\n", "\n").rstrip()
    lines = text.split("\n")
    if len(lines) > MESSAGE_LINES:
        lines = [*lines[:MESSAGE_LINES], f"... ({len(lines) - MESSAGE_LINES} more lines)"]
    return "\n".join("    " + line for line in lines)


def first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("utf-8", "replace")


def status_text(response: Response) -> str:
    return f"{response.status} {response.reason}".strip()


@dataclass
class Seen:
    """One message received (on the call or as a stray), in arrival order."""

    time: float
    data: bytes
    message: Request | Response


@dataclass
class SentRequest:
    """A request a step sent, and how far its responses have been consumed."""

    step: m.Step
    method: str
    branch: str | None
    call_id: str | None
    first_time: float
    data: bytes
    request: Request | None
    cursor: int = 0
    last_response: Seen | None = None
    seen_bytes: set[bytes] = field(default_factory=set)
    call: Call | None = None
    """The call it went out on (its transport's; see ScenarioRun.call_for)."""
    transport: str = ""


def poll(ready: Callable[[], T | None], deadline: float) -> T | None:
    """``ready()`` until it returns something or ``deadline`` (monotonic) passes."""
    while True:
        result = ready()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            return None
        gevent.sleep(POLL)


def view(read: Callable[[], T]) -> T | None:
    """A parsed view of a message (``msg.cseq``), None when that header is garbled."""
    try:
        return read()
    except SipParseError:
        return None


def top_branch(msg: Request | Response) -> str | None:
    """The branch of the top Via; None when absent or garbled."""
    return view(lambda: msg.vias[0].branch if msg.vias else None)


def cseq_of(msg: Request | Response) -> tuple[int, str] | None:
    """The parsed CSeq; None when absent or garbled."""
    return view(lambda: msg.cseq)


def call_id_of(msg: Request | Response) -> str | None:
    """The Call-ID; None when absent or garbled."""
    return view(lambda: msg.call_id)


def pseudo_value(msg: Request | Response, name: str) -> str | None:
    """``:status``, ``:reason``, ``:to-tag``, ``:from-tag`` or ``:body`` of a message."""
    if name == ":status":
        return str(msg.status) if isinstance(msg, Response) else None
    if name == ":reason":
        return msg.reason if isinstance(msg, Response) else None
    if name == ":to-tag":
        return view(lambda: msg.to.tag if msg.to is not None else None)
    if name == ":from-tag":
        return view(lambda: msg.from_.tag if msg.from_ is not None else None)
    if name == ":body":
        return msg.body.decode("utf-8", "replace")
    return None


def dotted(data: Any, path: str) -> tuple[bool, Any]:
    """(found, value) of ``data.user_name``-style paths in nested JSON."""
    value = data
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


class ScenarioRun:
    """The state of one plan being executed against a target.

    The case's call goes over the case's transport. A ``send`` step with another
    ``transport:`` places its request on a call of its own over that transport (one per
    transport, on an agent of that transport opened at first use); from an INVITE sent so,
    the steps acting on "the current INVITE" or its dialog act on that call (``call``).
    """

    def __init__(self, plan: Plan, target: Target, transport: str, *,
                 agent: Agent | None = None) -> None:
        """``agent``: place the call on this agent (left open by cleanup), e.g. one agent
        for many concurrent runs under load; by default the run has its own."""
        self.plan = plan
        self.target = target
        self.transport = transport
        self.port = target.port_for(transport)
        self.bindings: Bindings = plan.bindings(
            target_host=target.host, target_port=self.port, room_code=target.room_code,
            username=target.username, password=target.password)
        self.bindings.transport = transport
        self.bindings.local_sent_by = self.local_sent_by
        self.step_transport = transport
        """The transport of the step being run (its own ``transport:``, else the case's)."""
        self.owns_agent = agent is None
        self.local_host = "::1" if ":" in target.host else "127.0.0.1"
        self.agent = agent or Agent(transport, timers=TIMERS,  # type: ignore[arg-type]
                                    local_host=self.local_host)
        self.agents: dict[str, Agent] = {transport: self.agent}
        self.calls: dict[str, Call] = {}
        """One call per transport, placed at first use."""
        self.call: Call | None = None
        """The current call: that of the latest INVITE sent, else the first placed."""
        self.sent: list[SentRequest] = []
        self.by_id: dict[str, SentRequest] = {}
        self.responses_by_step: dict[str, Seen] = {}
        self.withheld: set[str] = set()
        self.last_offer: bytes | None = None
        self.started_wall = time.time()
        self.started = time.monotonic()
        self.join_peers: list[str] = []
        self.answered: DigestChallenge | None = None
        if target.password:
            register_secret(target.password)

    # -- helpers --------------------------------------------------------------------------------

    def render(self, template: Template | None) -> str | None:
        return None if template is None else template.render(self.bindings)

    def fail(self, step: m.Step, expected: str, seen: str, data: bytes | None = None,
             text: str = "") -> ExpectationFailed:  # fmt: skip
        message = show_message(data) if data else text
        return ExpectationFailed(self.plan, step, expected, seen, message)

    def uri(self, transport: str | None = None) -> str:
        """The default Request-URI: the room at the target's port for ``transport``."""
        host = f"[{self.target.host}]" if ":" in self.target.host else self.target.host
        port = self.target.port_for(transport) if transport else self.port
        return f"sip:{self.target.room_code}@{host}:{port}"

    def scenario_call_id(self, step: m.Send) -> str | None:
        """The Call-ID a send step writes itself (then the call takes it), if any."""
        if step.raw is not None or step.method not in (None, "INVITE", "invite"):
            return None
        for canonical, item in self.header_items(step.headers):
            if canonical == "call-id":
                text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item[1]
                return text.split(":", 1)[1].strip() if isinstance(item, bytes) else text
        return None

    def ensure_call(self) -> Call:
        """The current call (placing the case's call when there is none yet)."""
        return self.call or self.call_for(self.transport)

    def call_for(self, transport: str, uri: str | None = None,
                 call_id: str | None = None) -> Call:  # fmt: skip
        """The call over ``transport``, placed (nothing sent yet) on first use to ``uri``
        (default: the room at the target's port for that transport)."""
        call = self.calls.get(transport)
        if call is None:
            creds = (Credentials(self.target.username, self.target.password)
                     if self.target.username or self.target.password else None)
            call = self.agent_for(transport).new_call(
                uri or self.uri(transport),
                destination=(self.target.host, self.target.port_for(transport)),
                credentials=creds, sdp_offer=None, call_id=call_id)
            if any(isinstance(s, m.ExpectRequest) for s in self.plan.steps):
                call.auto_answer = False
            self.install_ack_filter(call)
            self.calls[transport] = call
            if self.call is None:
                self.call = call
        return call

    def agent_for(self, transport: str) -> Agent:
        """The agent of ``transport``: the case's, or one of the run's own opened now (the
        test skips when the target does not offer that transport)."""
        agent = self.agents.get(transport)
        if agent is None:
            reason = self.transport_unavailable(transport)
            if reason is not None:
                pytest.skip(f"transport {transport}: {reason}")
            agent = Agent(transport, timers=TIMERS,  # type: ignore[arg-type]
                          local_host=self.local_host)
            self.agents[transport] = agent
        return agent

    def transport_unavailable(self, transport: str) -> str | None:
        """Why the target cannot be reached over ``transport`` besides the case's, or None."""
        if transport == self.transport:
            return None
        profile = self.target.profile
        if transport != "udp" and transport not in profile.features:
            return f"target profile {profile.name!r} does not offer {transport}"
        ports = self.target.extra_ports
        if ports and transport not in ports:
            return f"the target listens on {', '.join(sorted(ports))} only"
        return None

    def local_sent_by(self) -> str:
        """Our address in Via and Contact (``host:port``) over the step's transport."""
        transport = self.step_transport
        try:
            call = self.calls.get(transport)
            if call is not None:
                return call.sent_by
            agent = self.agent_for(transport)
            if agent.transport is None:  # a socket per call: the call's own
                return self.call_for(transport).sent_by
            remote = (self.target.host, self.target.port_for(transport))
            return agent.transport.sent_by_for(remote)
        except (CallError, TransportError) as exc:
            raise TemplateError(f"our {transport.upper()} address is unknown: {exc}") from None

    @contextmanager
    def over(self, transport: str) -> Iterator[None]:
        """Run a step about a request over ``transport``: its ``${target.port}``,
        ``${target.transport}`` and ``${local.*}`` are that transport's."""
        before = self.step_transport, self.bindings.transport, self.bindings.target_port
        self.step_transport = transport
        self.bindings.transport = transport
        self.bindings.target_port = self.target.port_for(transport)
        try:
            yield
        finally:
            self.step_transport, self.bindings.transport, self.bindings.target_port = before

    def install_ack_filter(self, call: Call) -> None:
        """Drop the ACKs the INVITE transaction would send for a withheld INVITE's final."""
        layer = call.layer
        original = layer.data_to_send

        def filtered() -> list[Any]:
            out = []
            for data, destination in original():
                if data.startswith(b"ACK ") and self.withheld:
                    try:
                        msg = parse_message(data)
                    except SipParseError:
                        msg = None
                    if msg is not None and msg.vias and msg.vias[0].branch in self.withheld:
                        call.record.notes.append((time.monotonic(), "ACK withheld"))
                        continue
                out.append((data, destination))
            return out

        layer.data_to_send = filtered  # type: ignore[method-assign]

    def received(self) -> list[Seen]:
        """Everything received so far on the calls and as strays, in arrival order."""
        out: list[Seen] = []
        for call in self.calls.values():
            for e in call.record.entries:
                if e.received and e.message is not None:
                    out.append(Seen(e.time, e.data, e.message))
        for agent in self.agents.values():
            for item in agent.strays:
                if item.message is not None and item.time >= self.started:
                    out.append(Seen(item.time, item.data, item.message))
        out.sort(key=lambda s: s.time)
        return out

    def responses_to(self, sent: SentRequest) -> list[Seen]:
        out = []
        for seen in self.received():
            msg = seen.message
            if not isinstance(msg, Response):
                continue
            cseq = cseq_of(msg)
            if cseq is not None and cseq[1].upper() != sent.method:
                continue
            branch = top_branch(msg)
            if sent.branch is not None and branch != sent.branch:
                continue
            if sent.branch is None and call_id_of(msg) != sent.call_id:
                continue
            if cseq is None and branch is None:
                continue
            out.append(seen)
        return out

    def record_sent(self, step: m.Step, request: Request | None, data: bytes,
                    call: Call) -> SentRequest:  # fmt: skip
        if request is None and data:
            with suppress(SipParseError):
                parsed = parse_message(data)
                request = parsed if isinstance(parsed, Request) else None
        if request is not None:
            method, branch, call_id = request.method, top_branch(request), call_id_of(request)
        else:
            method, branch, call_id = first_line(data).split(" ", 1)[0].upper(), None, None
        sent = SentRequest(step, method, branch, call_id, time.monotonic(), data, request,
                           call=call, transport=call.transport.name.lower())
        self.sent.append(sent)
        if step.id:
            self.by_id[step.id] = sent
        return sent

    def target_of(self, step: m.Step, ref: str | None) -> SentRequest:
        if ref is not None:
            if ref not in self.by_id:
                raise self.fail(step, f"a request sent by step id {ref!r}", "no such request")
            return self.by_id[ref]
        if not self.sent:
            raise self.fail(step, "an earlier request", "nothing sent yet")
        return self.sent[-1]

    # -- building requests ----------------------------------------------------------------------

    def offer(self, spec: m.SdpSpec | None, default: bool) -> bytes | None:
        if spec is None:
            spec = m.DEFAULT_OFFER if default else None
        if spec is None or spec == "none":
            return None
        if spec == "same":
            return self.last_offer
        assert isinstance(spec, m.SdpOffer)
        address = self.render(spec.address) or self.agent.local_host
        sdp: SessionDescription | None = None
        for media in spec.media:
            ptime = media.ptime or (20 if media.type == "audio" else None)
            port = media.port
            if port is None:
                port = offer_port(self) if media.type == "audio" else 9
            one = make_offer(address, port, offer_codecs(media.codecs), media.direction, ptime)
            section = one.media[0]
            if media.type != "audio" or media.crypto:
                fmts = section.formats
                proto = "RTP/SAVP" if media.crypto else section.proto
                lines = list(section.lines[1:])
                if media.crypto:
                    key = secrets.token_urlsafe(30)[:40]
                    lines.append(("a", f"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}"))
                section = MediaDescription.build(media.type, section.port, proto, fmts, lines)
            if sdp is None:
                sdp = one
                sdp.media = [section]
            else:
                sdp.media.append(section)
        assert sdp is not None
        return sdp.to_bytes()

    def header_items(self, lines: Sequence[m.HeaderLine]) -> list[tuple[str | None, Any]]:
        """(canonical name or None, field) for each scenario header line, rendered."""
        out: list[tuple[str | None, Any]] = []
        for line in lines:
            value = self.render(line.value) or ""
            if line.name is None:
                name = value.split(":", 1)[0].strip() if ":" in value else None
                out.append((canonical_name(name) if name else None,
                            value.encode("utf-8", "surrogateescape")))
            else:
                name = self.render(line.name) or ""
                out.append((canonical_name(name), (name, value)))
        return out

    def merge(self, generated: Request, lines: Sequence[m.HeaderLine], only: bool,
              extra: Sequence[tuple[str, str]] = ()) -> list[Any]:
        """Generated fields with scenario lines replacing same-named ones in place, the
        rest of the scenario lines after them (``only``: just the scenario lines)."""
        items = self.header_items(lines)
        if only:
            return [f for _, f in items]
        fields: list[Any] = []
        used: set[int] = set()
        for h in generated.headers:
            if h.canonical == "content-length":
                continue
            match = next((i for i, (c, _) in enumerate(items)
                          if c == h.canonical and i not in used), None)
            if match is None:
                fields.append((h.name, h.value))
            else:
                used.add(match)
                fields.append(items[match][1])
        fields += list(extra)
        fields += [f for i, (_, f) in enumerate(items) if i not in used]
        return fields

    def withhold_ahead(self, step: m.Step) -> bool:
        """True when the next ack step after ``step`` (before another INVITE) withholds."""
        for later in self.plan.steps[step.index + 1:]:
            if isinstance(later, m.Ack):
                return later.withhold
            if isinstance(later, m.Send | m.AnswerChallenge | m.Reinvite):
                return False
        return False

    def send_transaction(self, call: Call, step: m.Step, request: Request, *,
                         stateless: bool = False) -> SentRequest:
        """Send ``request`` in a client transaction (once, without one, when ``stateless``:
        its answers carry another Call-ID and would never reach the transaction)."""
        branch = top_branch(request)
        if request.method == "INVITE" and branch and self.withhold_ahead(step):
            self.withheld.add(branch)
        try:
            call.send_request(request, transaction=request.method != "ACK" and not stateless)
        except (SipParseError, ValueError):
            # A deliberately broken request (garbled CSeq, no Via) cannot start a
            # transaction: send it once, as is.
            call.send_request(request, transaction=False)
        if request.method == "INVITE":
            self.call = call
        return self.record_sent(step, request, request.to_bytes(), call)

    # -- request steps --------------------------------------------------------------------------

    def do_send(self, step: m.Send) -> None:
        with self.over(step.transport or self.transport):
            self.send_step(step)

    def send_step(self, step: m.Send) -> None:
        """A ``send`` over ``step_transport``, on the call of that transport."""
        uri = self.render(step.uri)
        uri_headers: list[tuple[str, str]] = []
        if uri is not None and "?" in uri:
            # Like a trunk: URI headers become header fields, the URI is dialled without them.
            parsed = parse_uri(uri)
            uri_headers = [(n, v) for n, v in parsed.headers]
            uri = str(parsed.without_headers())
        call = self.call_for(self.step_transport, uri, call_id=self.scenario_call_id(step))
        if step.raw is not None:
            text = self.render(step.raw) or ""
            data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
            if b"\r\n\r\n" not in data:  # headers only: end them; never append after a body
                data += b"\r\n" if data.endswith(b"\r\n") else b"\r\n\r\n"
            call.send_bytes(data)
            sent = self.record_sent(step, None, data, call)
        else:
            method = (step.method or "INVITE").upper()
            body: bytes | None
            if step.body is not None:
                body = (self.render(step.body) or "").encode("utf-8")
            else:
                body = self.offer(step.sdp, default=method == "INVITE")
            content_type = step.content_type or ("application/sdp" if body else None)
            target_uri = uri or call.request_uri
            if method == "INVITE":
                generated = call.build_invite(sdp=b"", headers=[])
                if body and step.content_type is None and step.body is None:
                    self.last_offer = body
            elif call.dialog is None:
                generated = call.build_request(method)
            else:
                generated = self.outside_dialog(call, method, target_uri)
            extra = [("Content-Type", content_type)] if body and content_type else []
            fields = self.merge(generated.remove_header("Content-Type"), step.headers,
                                step.only_headers, [*uri_headers, *extra])
            request = build_request(method, target_uri, fields, body or b"")
            sent = self.send_transaction(call, step, request,
                                         stateless=generated.call_id != call.call_id)
        if step.retransmit is not None:
            for offset in step.retransmit.offsets():
                gevent.sleep(max(0.0, sent.first_time + offset - time.monotonic()))
                call.send_bytes(sent.data)

    def do_answer_challenge(self, step: m.AnswerChallenge) -> None:
        challenged = next((s for s in reversed(self.sent) if s.last_response is not None
                           and isinstance(s.last_response.message, Response)
                           and s.last_response.message.status in (401, 407)), None)
        if challenged is None or challenged.request is None:
            raise self.fail(step, "an earlier 401/407 to answer", "no challenge was received")
        call = challenged.call or self.ensure_call()
        response = challenged.last_response.message  # type: ignore[union-attr]
        assert isinstance(response, Response)
        mode = self.render(step.credentials) or "correct"
        variant = None if mode == "correct" else mode
        creds = Credentials(self.render(step.username) or self.target.username,
                            self.render(step.password) or self.target.password)
        register_secret(creds.password)
        try:
            challenges = parse_challenges(response)
            if step.algorithm is not None:
                challenges = [c for c in challenges
                              if (c.algorithm or "MD5").upper() == step.algorithm.upper()]
            challenge = choose_challenge(challenges)
        except DigestError as exc:
            raise self.fail(step, "a usable digest challenge", f"{status_text(response)}: {exc}",
                            response.to_bytes()) from None
        if variant == "replay_nc" and self.answered is not None:
            challenge = self.answered  # a replay answers the nonce answered before, again
        original = challenged.request
        try:
            auth = call.digest.authorize(challenge, original.method, original.uri, creds,
                                         original.body, variant=variant)
        except DigestError as exc:
            raise self.fail(step, f"a digest answer ({mode})", str(exc),
                            response.to_bytes()) from None
        self.answered = challenge
        call.record.outcome.challenged += 1
        assert original.cseq is not None and original.vias
        if (call.dialog is not None and original.method != "INVITE") or (
                call.dialog is not None and original is not call.invite):
            call.dialog.local_cseq += 1
            number = call.dialog.local_cseq
        else:
            call.cseq = max(call.cseq, original.cseq[0]) + 1
            number = call.cseq
        via = original.vias[0]
        sent_by = f"{via.host}:{via.port}" if via.port else via.host
        retry = (original.replace_header("Via", f"SIP/2.0/{via.transport} {sent_by};"
                                                f"branch={new_branch()};rport")
                 .replace_header("CSeq", f"{number} {original.method}")
                 .remove_header("Authorization").remove_header("Proxy-Authorization")
                 .add_header(*auth, before="Content-Length"))
        self.send_transaction(call, step, retry)

    def do_ack(self, step: m.Ack) -> None:
        invite = next((s for s in reversed(self.sent) if s.method == "INVITE"), None)
        if invite is None:
            raise self.fail(step, "an INVITE to acknowledge", "no INVITE was sent")
        call = invite.call or self.ensure_call()
        if step.withhold:
            if invite.branch:
                self.withheld.add(invite.branch)
            return
        finals = [s for s in self.responses_to(invite)
                  if isinstance(s.message, Response) and s.message.status >= 200]
        if not finals:
            raise self.fail(step, "a final response to acknowledge", "none received yet")
        final = finals[-1].message
        assert isinstance(final, Response)
        if final.status >= 300:
            if invite.branch in self.withheld and invite.request is not None:
                self.withheld.discard(invite.branch)
                ack = ack_for_non_2xx(invite.request, final)
                call.send_request(ack, transaction=False)
                self.record_sent(step, ack, ack.to_bytes(), call)
            return
        extra = [f for _, f in self.header_items(step.headers)]
        if call.dialog is None:
            raise self.fail(step, "a dialog to acknowledge in", "no dialog (no To-tag?)",
                            final.to_bytes())
        ack = call.ack(final, headers=extra)
        self.record_sent(step, ack, ack.to_bytes(), call)

    def do_cancel(self, step: m.Cancel) -> None:
        call = self.ensure_call()
        headers = [f for _, f in self.header_items(step.headers)]
        reason = self.render(step.reason)
        if reason:
            headers.append(("Reason", reason))
        try:
            request = call.cancel(headers)
        except CallError as exc:
            raise self.fail(step, "a pending INVITE to cancel", str(exc)) from None
        self.record_sent(step, request, request.to_bytes(), call)

    def in_dialog(self, step: m.Step, method: str, lines: Sequence[m.HeaderLine], only: bool,
                  body: bytes = b"", content_type: str | None = None) -> Request:
        call = self.ensure_call()
        if call.dialog is None:
            raise self.fail(step, f"a dialog for {method}", "no dialog (the call was not answered)")
        generated = call.build_request(method, [], body, content_type=content_type)
        fields = self.merge(generated.remove_header("Content-Type"), lines, only,
                            [("Content-Type", content_type)] if body and content_type else [])
        return build_request(method, generated.uri, fields, body)

    def do_bye(self, step: m.Bye) -> None:
        call = self.ensure_call()
        reason = self.render(step.reason)
        request = self.in_dialog(step, "BYE", step.headers, step.only_headers)
        if reason:
            request = request.add_header("Reason", reason, before="Content-Length")
        if step.dialog == "unknown" and request.to is not None:
            to = request.header("To") or ""
            request = request.replace_header("To", re.sub(r";tag=[^;]*", "", to)
                                             + f";tag={new_tag()}")
        else:
            call.state = CallState.TERMINATING
        self.send_transaction(call, step, request)

    def do_reinvite(self, step: m.Reinvite) -> None:
        call = self.ensure_call()
        body: bytes | None
        if step.body is not None:
            body = (self.render(step.body) or "").encode("utf-8")
            ctype = step.content_type or "application/sdp"
        else:
            spec = step.sdp
            if spec is None:
                body = bump_version(self.last_offer) if self.last_offer else None
            else:
                body = self.offer(spec, default=False)
            ctype = "application/sdp"
            if body:
                self.last_offer = body
        request = self.in_dialog(step, "INVITE", step.headers, step.only_headers,
                                 body or b"", ctype if body else None)
        self.send_transaction(call, step, request)

    def do_options(self, step: m.Options) -> None:
        if step.in_dialog:
            request = self.in_dialog(step, "OPTIONS", step.headers, step.only_headers)
            self.send_transaction(self.ensure_call(), step, request)
            return
        call = self.call_for(self.transport)
        uri = self.render(step.uri) or self.uri()
        generated = self.outside_dialog(call, "OPTIONS", uri, [("Accept", "application/sdp")])
        request = build_request("OPTIONS", uri, self.merge(generated, step.headers,
                                                           step.only_headers))
        self.send_transaction(call, step, request, stateless=True)

    def outside_dialog(self, call: Call, method: str, uri: str,
                       extra: Sequence[tuple[str, str]] = ()) -> Request:
        """A new request outside any dialog, with its own Call-ID and From-tag."""
        sent_by = call.sent_by
        return build_request(method, uri, [
            ("Via", f"SIP/2.0/{call.transport.name} {sent_by};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:sipharness@{sent_by}>;tag={new_tag()}"),
            ("To", f"<{uri}>"),
            ("Call-ID", f"{random_hex(8)}@{sent_by.rsplit(':', 1)[0]}"),
            ("CSeq", f"1 {method}"),
            *extra,
        ])

    def do_pause(self, step: m.Pause) -> None:
        gevent.sleep(step.duration)

    # -- expectations ---------------------------------------------------------------------------

    def next_response(self, step: m.Expect, sent: SentRequest, deadline: float) -> Seen | None:
        def ready() -> Seen | None:
            responses = self.responses_to(sent)
            while sent.cursor < len(responses):
                seen = responses[sent.cursor]
                sent.cursor += 1
                if seen.data in sent.seen_bytes:
                    continue
                sent.seen_bytes.add(seen.data)
                msg = seen.message
                assert isinstance(msg, Response)
                if msg.status < 200 and (step.skips_provisionals
                                         or not step.accepts(msg.status)):
                    continue
                return seen
            return None

        return poll(ready, deadline)

    def do_expect(self, step: m.Expect) -> None:
        sent = self.target_of(step, step.of)
        with self.over(sent.transport or self.transport):
            self.expect_response(step, sent)

    def expect_response(self, step: m.Expect, sent: SentRequest) -> None:
        """The next response to ``sent`` (over its transport) must match ``step``."""
        wanted = "/".join(str(s) for s in step.statuses)
        limit = step.within if step.within is not None else DEFAULT_WAIT
        deadline = sent.first_time + limit
        seen = self.next_response(step, sent, deadline + 0.05)
        of = f" to {sent.method}" + (f" ({sent.step.id})" if sent.step.id else "")
        if seen is None:
            raise self.fail(step, f"status {wanted}{of} within {limit:g} s",
                            "no response", text=show_message(sent.data) and
                            "  in answer to:\n" + show_message(sent.data))
        response = seen.message
        assert isinstance(response, Response)
        sent.last_response = seen
        if step.id:
            self.responses_by_step[step.id] = seen
        if not step.accepts(response.status):
            raise self.fail(step, f"status {wanted}{of}", status_text(response), seen.data)
        if step.within is not None and seen.time > deadline:
            raise self.fail(step, f"status {wanted}{of} within {limit:g} s",
                            f"{status_text(response)} after {seen.time - sent.first_time:.3f} s",
                            seen.data)
        self.check_response(step, response, seen, sent)
        if step.retransmissions is not None:
            self.check_retransmissions(step, seen, sent)
        for rule in step.save:
            self.save(step, rule, response)

    def check_response(self, step: m.Expect, response: Response, seen: Seen,
                       sent: SentRequest) -> None:
        reason = self.render(step.reason)
        if reason is not None and not re.search(reason, response.reason, re.IGNORECASE):
            raise self.fail(step, f"reason phrase matching {reason!r}", repr(response.reason),
                            seen.data)
        for rule in step.headers:
            problem = self.header_problem(rule, response)
            if problem is not None:
                raise self.fail(step, problem[0], problem[1], seen.data)
        if step.to_tag is not None:
            self.check_to_tag(step, response, seen)
        if step.sdp is not None:
            self.check_sdp(step, step.sdp, response, seen, sent)

    def header_problem(self, rule: m.HeaderRule, msg: Response | Request
                       ) -> tuple[str, str] | None:  # fmt: skip
        name = rule.name
        if name.startswith(":"):
            pseudo = pseudo_value(msg, name)
            values = [] if pseudo is None else [pseudo]
        else:
            canonical = canonical_name(name)
            values = [h.value for h in msg.headers if h.canonical == canonical]
        fields = values
        value = values[0] if values else None
        if rule.present is not None and rule.present != bool(fields):
            return (f"header {name} {'present' if rule.present else 'absent'}",
                    f"{name}: {value}" if fields else f"no {name} header")
        if rule.count is not None and len(fields) != rule.count:
            return f"{rule.count} {name} header field(s)", str(len(fields))
        equals, matches, contains = (self.render(rule.equals), self.render(rule.matches),
                                     self.render(rule.contains))
        if (equals or matches or contains) is not None and value is None:
            return f"header {name}", f"no {name} header"
        if equals is not None and value != equals:
            return f"{name}: {equals}", f"{name}: {value}"
        if matches is not None and not re.search(matches, value or ""):
            return f"{name} matching {matches!r}", f"{name}: {value}"
        if contains is not None and contains not in (value or ""):
            return f"{name} containing {contains!r}", f"{name}: {value}"
        return None

    def check_to_tag(self, step: m.Expect, response: Response, seen: Seen) -> None:
        rule = step.to_tag
        assert rule is not None
        tag = response.to.tag if response.to is not None else None
        shown = f"To-tag {tag!r}" if tag else "no To-tag"
        if rule.rule == "present" and not tag:
            raise self.fail(step, "a To-tag", shown, seen.data)
        if rule.rule == "absent" and tag:
            raise self.fail(step, "no To-tag", shown, seen.data)
        if rule.rule in ("same_as", "differs_from"):
            other = self.responses_by_step.get(rule.step or "")
            if other is None and rule.step in self.by_id:
                other = self.by_id[rule.step].last_response
            if other is None or not isinstance(other.message, Response):
                raise self.fail(step, f"a response of step {rule.step!r} to compare To-tags",
                                "none")
            theirs = other.message.to.tag if other.message.to is not None else None
            if (rule.rule == "same_as") != (tag == theirs):
                want = "the same" if rule.rule == "same_as" else "a different"
                raise self.fail(step, f"{want} To-tag as step {rule.step} ({theirs!r})",
                                shown, seen.data)

    def check_sdp(self, step: m.Expect, rules: m.SdpRules, response: Response, seen: Seen,
                  sent: SentRequest) -> None:
        body = response.body
        has = bool(body) and "sdp" in (response.header("Content-Type") or "").lower()
        if rules.present is not None and rules.present != has:
            raise self.fail(step, "an SDP body" if rules.present else "no SDP body",
                            "an SDP body" if has else "none", seen.data)
        if not any(v is not None for v in (rules.valid, rules.codec_from_offer, rules.codec,
                                            rules.m_lines, rules.direction, rules.crypto)):
            return
        if not has:
            raise self.fail(step, "an SDP answer", "no SDP body", seen.data)
        try:
            answer = SessionDescription.parse(body)
        except ValueError as exc:
            raise self.fail(step, "a valid SDP answer", f"unparseable SDP: {exc}",
                            seen.data) from None
        offer = None
        if sent.request is not None and sent.request.body:
            with suppress(ValueError):
                offer = SessionDescription.parse(sent.request.body)
        if rules.valid and offer is not None:
            problems = check_answer(offer, answer)
            if problems:
                raise self.fail(step, "an SDP answer valid for the offer (RFC 3264)",
                                "; ".join(problems), seen.data)
        if rules.m_lines is not None:
            want = len(offer.media) if rules.m_lines == "same_as_offer" and offer else rules.m_lines
            if len(answer.media) != want:
                raise self.fail(step, f"{want} m-line(s)", str(len(answer.media)), seen.data)
        accepted = [md for md in answer.media if md.port != 0]
        if rules.codec_from_offer and offer is not None:
            offered = {n.lower() for md in offer.media for n in md.codec_names()}
            for md in accepted:
                names = [n.lower() for n in md.codec_names()]
                if not names or names[0] not in offered:
                    raise self.fail(step, f"a codec from the offer ({', '.join(sorted(offered))})",
                                    ", ".join(names) or "no codec", seen.data)
        if rules.codec is not None:
            names = [md.codec_names()[0] if md.codec_names() else "" for md in accepted]
            if not names or names[0].lower() != rules.codec.lower():
                raise self.fail(step, f"codec {rules.codec}", ", ".join(names) or "none",
                                seen.data)
        if rules.direction is not None:
            directions = [answer.direction(md) for md in accepted] or ["(no stream)"]
            if directions[0] != rules.direction:
                raise self.fail(step, f"direction {rules.direction}", directions[0], seen.data)
        if rules.crypto is not None:
            has_crypto = any(md.attribute("crypto") is not None for md in accepted)
            if has_crypto != rules.crypto:
                raise self.fail(step, "a=crypto" if rules.crypto else "no a=crypto",
                                "a=crypto" if has_crypto else "none", seen.data)

    def check_retransmissions(self, step: m.Expect, seen: Seen, sent: SentRequest) -> None:
        rule = step.retransmissions
        assert rule is not None
        during = rule.during if rule.during is not None else 64 * TIMERS.t1
        end = seen.time + during
        gevent.sleep(max(0.0, end - time.monotonic()))
        count = sum(1 for s in self.responses_to(sent)
                    if s.data == seen.data and seen.time < s.time <= end)
        if not rule.accepts(count):
            want = " and ".join(x for x in (
                f"exactly {rule.count}" if rule.count is not None else "",
                f"at least {rule.at_least}" if rule.at_least is not None else "",
                f"at most {rule.at_most}" if rule.at_most is not None else "") if x)
            raise self.fail(step, f"{want} retransmission(s) of the {first_line(seen.data)} "
                                  f"within {during:g} s", str(count), seen.data)

    def save(self, step: m.Step, rule: m.SaveRule, msg: Request | Response) -> None:
        if rule.header.startswith(":"):
            value = pseudo_value(msg, rule.header)
        else:
            value = view(lambda: msg.header(rule.header))
        self.store(step, rule, value, msg.to_bytes())

    def store(self, step: m.Step, rule: m.SaveRule, value: str | None, data: bytes) -> None:
        if value is not None and rule.regex is not None:
            found = re.search(rule.regex, value)
            value = (found.group(1) if found.groups() else found.group(0)) if found else None
        if value is None:
            raise self.fail(step, f"a value to save as {rule.name} from {rule.header}"
                                  + (f" (regex {rule.regex!r})" if rule.regex else ""),
                            "nothing", data)
        self.bindings.save(rule.name, value)

    def do_expect_silence(self, step: m.ExpectSilence) -> None:
        start = time.monotonic()
        gevent.sleep(step.duration)
        late = [s for s in self.received() if s.time > start]
        if late:
            raise self.fail(step, f"no SIP message for {step.duration:g} s",
                            first_line(late[0].data), late[0].data)

    def do_expect_request(self, step: m.ExpectRequest) -> None:
        call = self.ensure_call()
        limit = step.within if step.within is not None else DEFAULT_WAIT
        try:
            request = call.expect_request(step.method, within=limit)
        except CallError:
            raise self.fail(step, f"a {step.method} from the target within {limit:g} s",
                            "none") from None
        for header_rule in step.headers:
            problem = self.header_problem(header_rule, request)
            if problem is not None:
                raise self.fail(step, problem[0], problem[1], request.to_bytes())
        headers = [f for _, f in self.header_items(step.answer_headers)]
        with suppress(CallError):
            call.respond(request, step.answer, headers=headers)
        if step.method.upper() == "BYE":
            call.state = CallState.TERMINATED
        for rule in step.save:
            self.save(step, rule, request)

    # -- webhooks and roster --------------------------------------------------------------------

    def webhooks(self, step: m.Step) -> Any:
        receiver = self.target.webhooks
        if receiver is None:
            pytest.skip(f"{step.label}: the webhooks of this target cannot be observed "
                        f"(profile {self.target.profile.name})")
        return receiver

    def events(self, step: m.ExpectWebhook) -> list[dict[str, Any]]:
        """Webhook bodies of ``step.type`` received during this run, one per envelope id."""
        out: dict[str, dict[str, Any]] = {}
        for event in webhook_bodies(self.webhooks(step)):
            when, body = event
            if when < self.started_wall or body.get("type") != step.type:
                continue
            if (step.type == "peer.leave.success" and self.join_peers
                    and dotted(body, "data.peer_id")[1] not in self.join_peers):
                continue
            out.setdefault(str(body.get("id", len(out))), body)
        return list(out.values())

    def field_problem(self, rules: Sequence[m.FieldRule], data: Any) -> str | None:
        for rule in rules:
            found, value = dotted(data, rule.path)
            if rule.present is not None and rule.present != found:
                return f"{rule.path} {'missing' if rule.present else 'present'}"
            if rule.equals is not None:
                want = (self.render(rule.equals) if isinstance(rule.equals, Template)
                        else rule.equals)
                if not found or (value != want and str(value) != str(want)):
                    return f"{rule.path} = {value!r}, not {want!r}"
            if rule.matches is not None:
                pattern = self.render(rule.matches) or ""
                if not found or not re.search(pattern, str(value)):
                    return f"{rule.path} = {value!r}, not matching {pattern!r}"
        return None

    def do_expect_webhook(self, step: m.ExpectWebhook) -> None:
        self.webhooks(step)
        if step.none_within is not None:
            gevent.sleep(step.none_within)
            matching = [e for e in self.events(step) if self.field_problem(step.fields, e) is None]
            if matching:
                raise self.fail(step, f"no {step.type} webhook within {step.none_within:g} s",
                                f"{len(matching)}", text=webhook_text(matching[0]))
            return
        limit = step.within if step.within is not None else DEFAULT_WAIT
        start = time.monotonic()

        def ready() -> list[dict[str, Any]] | None:
            found = [e for e in self.events(step) if self.field_problem(step.fields, e) is None]
            return found or None

        found = poll(ready, start + limit)
        if found is None:
            others = self.events(step)
            problem = self.field_problem(step.fields, others[-1]) if others else None
            raise self.fail(step, f"a {step.type} webhook within {limit:g} s"
                                  + (" with the given fields" if step.fields else ""),
                            problem or "none",
                            text=webhook_text(others[-1]) if others else "")
        if step.count is not None:
            gevent.sleep(DUPLICATE_GRACE)
            found = [e for e in self.events(step) if self.field_problem(step.fields, e) is None]
            if len(found) != step.count:
                raise self.fail(step, f"exactly {step.count} {step.type} webhook(s)",
                                str(len(found)), text=webhook_text(found[-1]))
        event = found[0]
        if step.type == "peer.join.success":
            peer = dotted(event, "data.peer_id")[1]
            if peer:
                self.join_peers.append(str(peer))
        for rule in step.save:
            ok, value = dotted(event, rule.header)
            self.store(step, rule, str(value) if ok else None, b"")

    def do_expect_roster(self, step: m.ExpectRoster) -> None:
        base = self.target.roster_url
        if base is None:
            pytest.skip(f"{step.label}: the roster of this target cannot be observed "
                        f"(profile {self.target.profile.name})")
        room = self.room_id()
        if room is None:
            raise self.fail(step, "a room id (from a join webhook) to read the roster of",
                            "none seen yet")
        url = roster_url(base, room)
        limit = step.within if step.within is not None else 5.0
        last: list[Any] = []

        def ready() -> bool | None:
            peers = fetch_roster(url)
            last[:] = peers
            listed = any(self.field_problem(step.peer, p) is None for p in peers)
            return True if listed == step.present else None

        if poll(ready, time.monotonic() + limit) is None:
            want = "listed" if step.present else "no longer listed"
            raise self.fail(step, f"the peer {want} in the roster within {limit:g} s",
                            f"{len(last)} peer(s): " + json.dumps(last)[:400])

    def room_id(self) -> str | None:
        receiver = self.target.webhooks
        if receiver is None:
            return None
        for when, body in webhook_bodies(receiver):
            if when >= self.started_wall and body.get("type") == "peer.join.success":
                ok, value = dotted(body, "data.room_id")
                if ok:
                    return str(value)
        return None

    def do_media(self, step: m.Media) -> None:
        from sipharness.scenario.media_steps import run_media_step

        run_media_step(self, step)

    # -- the run --------------------------------------------------------------------------------

    def run_step(self, step: m.Step) -> None:
        handler = getattr(self, f"do_{step.kind}")
        try:
            handler(step)
        except TemplateError as exc:
            raise self.fail(step, "every ${...} to resolve", str(exc)) from None

    def cleanup(self) -> None:
        """End every call still up (BYE, or CANCEL while calling), bounded, then close."""
        self.withheld.clear()
        try:
            for call in self.calls.values():
                if not call.closed:
                    end_call(call)
            self.adopt_strays()
        finally:
            for agent in self.agents.values():
                if agent is not self.agent or self.owns_agent:
                    agent.close()
            if not self.owns_agent:
                for call in self.calls.values():
                    call.close()

    def adopt_strays(self) -> None:
        """Put stray responses to our own requests into the records of the calls over the
        transport they came by (else the current call's), for the report."""
        branches = {s.branch for s in self.sent if s.branch}
        for transport, agent in self.agents.items():
            call = self.calls.get(transport) or self.call
            if call is None:
                continue
            record = call.record
            for item in agent.strays:
                msg = item.message
                if item.time < self.started or not isinstance(msg, Response):
                    continue
                if top_branch(msg) in branches:
                    record.entries.append(MessageEntry(
                        "received", item.time, item.wall, item.local, item.source,
                        item.transport, item.data, msg, note="outside the call"))
            record.entries.sort(key=lambda e: e.time)

    def record(self) -> CallRecord | None:
        """The case's record for reports: its call's (else the first placed), with the
        messages of the calls over other transports merged in time order, noted ``over TCP``
        (the entries themselves stay in their calls' records)."""
        if not self.calls:
            return None
        calls = list(self.calls.values())
        base = self.calls.get(self.transport, calls[0]).record
        if len(calls) == 1:
            return base
        entries: list[MessageEntry] = []
        notes: list[tuple[float, str]] = []
        for call in calls:
            notes += call.record.notes
            if call.transport.name.lower() == self.transport:
                entries += call.record.entries
                continue
            over = f"over {call.transport.name}"
            entries += [replace(e, note=", ".join(x for x in (
                e.note or ("repeated" if e.repeated else ""), over) if x))
                for e in call.record.entries]
        entries.sort(key=lambda e: e.time)
        notes.sort()
        return CallRecord(base.call_id, base.target, base.transport, entries,
                          dict(base.timings), base.outcome, notes)


def end_call(call: Call) -> None:
    """ACK a withheld 2xx and BYE an answered call, or CANCEL a ringing one; bounded waits,
    failures ignored (the test's verdict is already made)."""
    call.auto_answer = True
    with suppress(CallError, AssertionError, ValueError):
        if call.state is CallState.ANSWERED and call.dialog is not None:
            call.ack()
        if call.state in (CallState.ANSWERED, CallState.CONFIRMED):
            call.bye(within=CLEANUP_WAIT)
        elif (call.state is CallState.CALLING and call.invite_tx is not None
              and call.invite_tx.final_response is None):  # a 401 ended it already
            call.cancel()
            call.expect_response(method="INVITE", within=CLEANUP_WAIT)


def offer_codecs(names: Sequence[str]) -> list[Codec]:
    """Codecs by name (``PCMU``) or as ``NAME/RATE[/CHANNELS]`` (``H264/90000``), the
    unknown ones on dynamic payload types from 96 up."""
    out: list[Codec] = []
    dynamic = 96
    taken = {c.payload_type for c in KNOWN_CODECS.values()}
    for name in names:
        known = KNOWN_CODECS.get(name.lower())
        if known is not None:
            out.append(known)
            continue
        parts = name.split("/")
        while dynamic in taken:
            dynamic += 1
        rate = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 8000
        channels = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
        out.append(Codec(parts[0], dynamic, rate, channels))
        taken.add(dynamic)
    return out


def bump_version(sdp: bytes) -> bytes:
    """The same SDP with the o= version incremented (an unchanged offer in a re-INVITE)."""
    parsed = SessionDescription.parse(sdp)
    for i, (kind, value) in enumerate(parsed.lines):
        if kind == "o":
            parts = value.split()
            if len(parts) >= 3 and parts[2].isdigit():
                parts[2] = str(int(parts[2]) + 1)
                parsed.lines[i] = ("o", " ".join(parts))
    return parsed.to_bytes()


def webhook_bodies(receiver: Any) -> list[tuple[float, dict[str, Any]]]:
    """(wall time received, JSON body) of every webhook the receiver has collected."""
    out = []
    for event in receiver.events():
        body = getattr(event, "body", event)
        if isinstance(body, bytes | str):
            with suppress(ValueError):
                body = json.loads(body)
        when = float(getattr(event, "received_at", getattr(event, "time", 0.0)))
        if isinstance(body, dict):
            out.append((when, body))
    return out


def webhook_text(body: dict[str, Any]) -> str:
    return "    " + json.dumps(body, indent=2, ensure_ascii=False).replace("\n", "\n    ")


def roster_url(base: str, room_id: str) -> str:
    """The roster API URL for ``room_id`` (``base`` may be a template with ``{room_id}``)."""
    if "{room_id}" in base:
        return base.format(room_id=room_id)
    return f"{base.rstrip('/')}/v2/active-rooms/{room_id}/peers"


def fetch_roster(url: str) -> list[Any]:
    """The peers listed at ``url`` (100ms shape ``{"peers": {id: peer}}``); [] on errors."""
    try:
        with urllib.request.urlopen(url, timeout=2.0) as reply:
            data = json.loads(reply.read())
    except (urllib.error.URLError, OSError, ValueError):
        return []
    peers = data.get("peers", data) if isinstance(data, dict) else data
    if isinstance(peers, dict):
        return [dict(p, peer_id=p.get("peer_id", p.get("id", key))) if isinstance(p, dict)
                else p for key, p in peers.items()]
    return list(peers) if isinstance(peers, list) else []


def execute(plan: Plan, target: Target, *, transport: str | None = None) -> ScenarioRun:
    """Run every step of ``plan`` on one new call (and one per other transport its ``send``
    steps name); raise ExpectationFailed on the first expectation that does not hold, or
    skip before any step when the target does not offer a transport a step names. The
    calls are ended and attached to Allure (one record) either way."""
    run = ScenarioRun(plan, target, transport or plan.transport)
    try:
        for step in plan.steps:
            if isinstance(step, m.Send) and step.transport:
                reason = run.transport_unavailable(step.transport)
                if reason is not None:
                    pytest.skip(f"{step.label}: transport {step.transport}: {reason}")
        for step in plan.steps:
            note = f" — {step.note}" if step.note else ""
            with report.step(f"{step.index + 1}. {describe(step)} (line {step.line}){note}"):
                run.run_step(step)
    finally:
        run.cleanup()
        record = run.record()
        if record is not None:
            report.attach_call(record)
    return run
