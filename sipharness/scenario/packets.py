"""Capture one scenario test's SIP and RTP traffic, attach it (redacted, with its ladder) to
Allure, and run the plan's ``packets:`` wire checks on it, reporting each failure by file:line.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sipharness.capture import (
    Capture,
    CaptureError,
    MessageMatch,
    PacketCheck,
    Trace,
    attach_capture,
    capture_available,
    dscp,
    largest_sip_datagram,
    read_pcap,
    responses_to_source_port,
    retransmission_schedule,
    rtp_flow,
)
from sipharness.capture.analysis import (
    RtpPacket,
    SipPacket,
    endpoint,
    sdp_media_addresses,
    sip_label,
)
from sipharness.capture.flows import Flow, flow, keep_flows
from sipharness.scenario import model as m
from sipharness.scenario.checklist import CHECKS
from sipharness.sip.message import Request, Response, SipParseError

if TYPE_CHECKING:
    from sipharness.scenario.executor import ScenarioRun, Target
    from sipharness.scenario.plan import Plan

DEFAULT_T1 = 0.5
DEFAULT_T2 = 4.0
DEFAULT_RTP_PORTS = (10000, 65535)
"""RTP ports captured for a target whose profile does not say (typical PBX/SBC ranges)."""
RPORT_HINT = (
    " (RFC 3581 §4: the server MUST add received= with the source address, even when it "
    "equals the sent-by host, and rport= with the source port)"
)
EVIDENCE_LINES = 8
SETTLE = 0.05
"""Seconds the capture keeps reading after the test before it stops: loopback delivers at
once, so late packets only need the capturer's buffer drained."""
SIP_CHECKS = frozenset({"retransmission_schedule", "rport", "max_datagram", "fragmentation"})
"""Checks that read SIP messages, which a capture cannot see inside TLS."""


# -- what the call left behind ------------------------------------------------------------------


@dataclass(frozen=True)
class StepMessage:
    """The SIP message a step id stands for: a request step's request, an expect step's
    response. ``status`` is None for a request."""

    call_id: str | None
    cseq: int | None
    method: str
    status: int | None = None


@dataclass
class CallFacts:
    """What the packet checks need from a finished run: the Call-IDs the test used, the
    messages its step ids name, and the target's SIP address (``ip:port``)."""

    call_ids: set[str] = field(default_factory=set)
    call_id: str | None = None
    steps: dict[str, StepMessage] = field(default_factory=dict)
    target_sip: str = ""
    transport: str = "udp"

    @classmethod
    def from_run(cls, run: ScenarioRun) -> CallFacts:
        """Collect the facts from an executed :class:`~sipharness.scenario.executor.ScenarioRun`."""
        facts = cls(target_sip=endpoint(wire_address(run.target.host), run.port),
                    transport=run.transport)
        if run.call is not None:
            facts.call_id = run.call.call_id
            facts.call_ids.add(run.call.call_id)
        for sent in run.sent:
            if sent.call_id:
                facts.call_ids.add(sent.call_id)
        for step_id, sent in run.by_id.items():
            described = describe_message(sent.request)
            if described is not None:
                facts.steps[step_id] = described
        for step_id, seen in run.responses_by_step.items():
            described = describe_message(seen.message)
            if described is not None:
                facts.steps[step_id] = described
        return facts


def describe_message(message: Request | Response | None) -> StepMessage | None:
    """A :class:`StepMessage` for a parsed message; None without one or when its Call-ID or
    CSeq is garbled."""
    if message is None:
        return None
    try:
        cseq, call_id = message.cseq, message.call_id
    except SipParseError:
        return None
    if isinstance(message, Response):
        method = cseq[1] if cseq else ""
        return StepMessage(call_id, cseq[0] if cseq else None, method, message.status)
    return StepMessage(call_id, cseq[0] if cseq else None, message.method)


def wire_address(host: str) -> str:
    """The IP address a host name stands for on the wire (the name itself when unresolved)."""
    with suppress(ValueError):
        return str(ipaddress.ip_address(host))
    with suppress(OSError):
        return str(socket.getaddrinfo(host, None)[0][4][0])
    return host


# -- the checks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PacketResult:
    """One ``packets:`` entry and what its check found."""

    spec: m.PacketCheck
    check: PacketCheck

    @property
    def ok(self) -> bool:
        return self.check.ok


@dataclass(frozen=True)
class Timers:
    """The target's RFC 3261 T1 and T2, in seconds."""

    t1: float = DEFAULT_T1
    t2: float = DEFAULT_T2


def _call_id(packet: SipPacket) -> str | None:
    try:
        return packet.call_id
    except SipParseError:
        return None


def call_trace(trace: Trace, facts: CallFacts) -> Trace:
    """The part of ``trace`` that belongs to this test: SIP of its Call-IDs, and RTP to or
    from a media address their SDP announced (other tests may share the capture)."""
    sip = [p for p in trace.sip if _call_id(p) in facts.call_ids] if facts.call_ids else []
    media: set[str] = set()
    for packet in sip:
        if packet.message is not None:
            media.update(sdp_media_addresses(packet.message.body))
    rtp = [p for p in trace.rtp if p.src in media or p.dst in media]
    return Trace(sip=sip, rtp=rtp, frames=trace.frames, other_udp=trace.other_udp,
                 start=trace.start, end=trace.end, notes=list(trace.notes))


def _seconds(params: Mapping[str, Any], key: str, default: float | None) -> float | None:
    return m.parse_duration(params[key]) if key in params else default


def _step_match(facts: CallFacts, step_id: str, status: int | str | None
                ) -> MessageMatch | str:  # fmt: skip
    """The packets a retransmission check of ``of: step_id`` is about, or why there are none."""
    message = facts.steps.get(step_id)
    if message is None:
        return f"step {step_id!r} left no parsable SIP message to look for on the wire"
    if status is None and message.status is None:
        return MessageMatch(method=message.method, cseq=message.cseq, call_id=message.call_id,
                            dst=facts.target_sip)
    return MessageMatch(status=status if status is not None else message.status,
                        cseq_method=message.method, cseq=message.cseq,
                        call_id=message.call_id, src=facts.target_sip)


def default_timer(match: MessageMatch, transport: str) -> str:
    """The RFC 3261 schedule of a message: none over TCP/TLS, the 2xx schedule for a 2xx to
    INVITE, Timer G for other INVITE finals, none for responses to other requests (a server
    non-INVITE transaction only answers retransmitted requests, §17.2.2), Timer A for an
    INVITE, E for other requests."""
    if transport != "udp":
        return "none"
    if match.status is not None:
        if (match.cseq_method or "INVITE").upper() != "INVITE":
            return "none"
        return "2xx" if str(match.status).startswith("2") else "G"
    return "A" if (match.method or "").upper() == "INVITE" else "E"


def check_retransmissions(trace: Trace, params: Mapping[str, Any], facts: CallFacts,
                          timers: Timers) -> PacketCheck:  # fmt: skip
    match = _step_match(facts, params["of"], params.get("status"))
    if isinstance(match, str):
        return PacketCheck("retransmission_schedule", False, match)
    t1 = _seconds(params, "t1", timers.t1) or timers.t1
    t2 = _seconds(params, "t2", timers.t2) or timers.t2
    timer: Any = params.get("timer") or default_timer(match, facts.transport)
    return retransmission_schedule(
        trace, match, timer, t1=t1, t2=t2, tolerance=float(params.get("tolerance", 0.25)),
        timeout=_seconds(params, "timeout", None))


def _from_target(packet: SipPacket, facts: CallFacts) -> bool:
    return packet.src == facts.target_sip


def _media_of(trace: Trace, sender: str, facts: CallFacts) -> set[str]:
    """Media addresses announced in SDP sent by the target (or by the harness)."""
    found: set[str] = set()
    for p in trace.sip:
        if p.message is not None and _from_target(p, facts) == (sender == "target"):
            found.update(sdp_media_addresses(p.message.body))
    return found


def sent_by(trace: Trace, sender: str | None, facts: CallFacts) -> Trace:
    """Only the packets the target (or the harness) sent; everything for None."""
    if sender is None:
        return trace
    media = _media_of(trace, sender, facts)
    sip = [p for p in trace.sip if _from_target(p, facts) == (sender == "target")]
    rtp = [p for p in trace.rtp if p.src in media]
    return Trace(sip=sip, rtp=rtp, start=trace.start, end=trace.end)


def check_max_message(trace: Trace, params: Mapping[str, Any], facts: CallFacts
                      ) -> PacketCheck:  # fmt: skip
    """Largest SIP datagram over UDP; over TCP/TLS the largest framed message."""
    scoped = sent_by(trace, params.get("from"), facts)
    at_least, at_most = params.get("at_least"), params.get("at_most")
    if facts.transport == "udp":
        check = largest_sip_datagram(scoped, at_least=at_least, at_most=at_most)
        check.name = "max_datagram"
        return check
    stream = [p for p in scoped.sip if p.transport == "TCP"]
    if not stream:
        return PacketCheck("max_datagram", False,
                           f"no SIP message over {facts.transport.upper()} in the capture")
    largest = max(stream, key=lambda p: p.size)
    shown = f"largest SIP message {largest.size} bytes ({sip_label(largest)}) on the stream"
    problems = []
    if at_least is not None and largest.size < at_least:
        problems.append(f"expected at least {at_least} bytes")
    if at_most is not None and largest.size > at_most:
        problems.append(f"expected at most {at_most} bytes")
    if problems:
        return PacketCheck("max_datagram", False,
                           f"{'; '.join(problems)}; the wire showed {shown}", [largest])
    return PacketCheck("max_datagram", True, shown, [largest])


def check_dscp(trace: Trace, params: Mapping[str, Any], facts: CallFacts) -> PacketCheck:
    scoped = sent_by(trace, params.get("from", "target"), facts)
    results = [dscp(scoped, kind, params[kind]) for kind in ("sip", "rtp") if kind in params]
    failed = [r for r in results if not r.ok]
    shown = "; ".join(f"{r.name}: {r.message}" for r in (failed or results))
    evidence = [p for r in failed for p in r.evidence]
    return PacketCheck("dscp", not failed, shown, evidence)


def check_rtp(trace: Trace, kind: str, params: Mapping[str, Any], facts: CallFacts
              ) -> PacketCheck:  # fmt: skip
    if kind == "rtp_after_ack":
        options: dict[str, Any] = {"after_ack_within": _seconds(params, "within", 1.0),
                                   "none_after_bye": False, "continuous": False}
    elif kind == "no_rtp_after_bye":
        options = {"after_ack_within": None, "bye_grace": _seconds(params, "after", 0.1),
                   "continuous": False, "both_directions": False}
    else:
        options = {"after_ack_within": _seconds(params, "within", 1.0),
                   "bye_grace": _seconds(params, "after_bye", 0.1),
                   "continuous": bool(params.get("continuous", True)),
                   "both_directions": bool(params.get("both_directions", True)),
                   "ptime_ms": params.get("ptime")}
    if kind == "no_rtp_after_bye" and not any(
            p.is_request and p.method == "BYE" for p in trace.sip):
        return PacketCheck(kind, False, "no BYE of the call in the capture")
    check = rtp_flow(trace, call_id=facts.call_id, **options)
    check.name = kind
    return check


def evaluate(checks: Iterable[m.PacketCheck], trace: Trace, facts: CallFacts,
             timers: Timers = Timers()) -> list[PacketResult]:  # fmt: skip
    """Run every ``packets:`` entry on the test's part of ``trace``."""
    ours = call_trace(trace, facts)
    results = []
    for spec in checks:
        params: Any = spec.params if isinstance(spec.params, Mapping) else {}
        if facts.transport == "tls" and spec.kind in SIP_CHECKS:
            check = PacketCheck(spec.kind, False, "SIP over TLS is encrypted on the wire: "
                                                  "this check needs a udp or tcp case")
        elif spec.kind == "retransmission_schedule":
            check = check_retransmissions(ours, params, facts, timers)
        elif spec.kind == "rport":
            check = responses_to_source_port(ours)
            if not check.ok and "received=None" in check.message:
                check.message += RPORT_HINT
            check.name = "rport"
        elif spec.kind == "max_datagram":
            check = check_max_message(ours, params, facts)
        elif spec.kind == "fragmentation":
            check = largest_sip_datagram(ours, fragmented=bool(spec.params))
            check.name = "fragmentation"
        elif spec.kind == "dscp":
            check = check_dscp(ours, params, facts)
        elif spec.kind in ("rtp_after_ack", "no_rtp_after_bye", "rtp_flow"):
            check = check_rtp(ours, spec.kind, params, facts)
        else:
            check = PacketCheck(spec.kind, False, f"unknown packet check {spec.kind!r}")
        results.append(PacketResult(spec, check))
    return results


# -- failures -------------------------------------------------------------------------------------


def _evidence_line(packet: SipPacket | RtpPacket, start: float) -> str:
    at = f"+{packet.time - start:.3f} s"
    if isinstance(packet, SipPacket):
        size = f"{packet.size} bytes" + (f", {packet.fragments} fragments"
                                         if packet.fragmented else "")
        return f"    {at} {packet.src} -> {packet.dst} {packet.transport} {sip_label(packet)} " \
               f"({size}, DSCP {packet.dscp})"
    return (f"    {at} {packet.src} -> {packet.dst} RTP SSRC {packet.ssrc:#010x} seq {packet.seq} "
            f"ts {packet.ts} (DSCP {packet.dscp})")


def failure_text(plan: Plan, result: PacketResult, start: float) -> str:
    """``scenarios/x.yaml:12 packets[0].retransmission_schedule: expected …; the wire showed …``
    and the packets that show it."""
    case = f" [{plan.case_id}]" if plan.case_id else ""
    head = (f"{plan.scenario.path}:{result.spec.line}{case} packets[{result.spec.index}]."
            f"{result.spec.kind}: {result.check.message}")
    lines = [_evidence_line(p, start) for p in result.check.evidence[:EVIDENCE_LINES]]
    more = len(result.check.evidence) - EVIDENCE_LINES
    if more > 0:
        lines.append(f"    ... ({more} more packets)")
    return "\n".join([head, *lines])


class PacketCheckFailed(AssertionError):
    """One or more ``packets:`` checks failed; ``str()`` lists each with file:line."""

    def __init__(self, plan: Plan, failed: list[PacketResult], start: float) -> None:
        self.failed = failed
        checks = "checks: " + ", ".join(
            f"{c} ({CHECKS[c].title})" if c in CHECKS else c for c in plan.scenario.checks)
        super().__init__("\n".join([*(failure_text(plan, r, start) for r in failed), checks]))


# -- the capture around one test ------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def capture_interface(host: str) -> str:
    """``lo`` for a loopback target, else the interface the route to ``host`` leaves by
    (``any`` when the route cannot be found)."""
    if is_loopback(host):
        return "lo"
    with suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["ip", "route", "get", host], capture_output=True, text=True,
                             timeout=5, check=False).stdout
        found = re.search(r"\bdev (\S+)", out)
        if found:
            return found.group(1)
    return "any"


def rtp_ports(target: Target) -> tuple[int, int]:
    """The target's RTP port range: the mock bridge's (a profile with ``bridge:`` settings
    starts one), else a range wide enough for common PBX and SBC defaults."""
    bridge = target.profile.bridge
    if not bridge:
        return DEFAULT_RTP_PORTS
    media = bridge.get("media") or {}
    ports = media.get("rtp_ports") if isinstance(media, Mapping) else None
    if ports and len(ports) == 2:
        return int(ports[0]), int(ports[1])
    from sipharness.bridge.config import BridgeConfig

    return BridgeConfig().rtp_ports


def target_timers(target: Target) -> Timers:
    """T1/T2 of the target: the profile's mock bridge timers when it sets them."""
    timers = target.profile.bridge.get("timers") or {}
    if not isinstance(timers, Mapping):
        return Timers()
    return Timers(float(timers.get("t1", DEFAULT_T1)), float(timers.get("t2", DEFAULT_T2)))


def capture_filter(host: str, sip_ports: Iterable[int], rtp: tuple[int, int]) -> str:
    """BPF for the target's SIP ports, the RTP range, and IP fragments of the target's
    datagrams (later fragments carry no UDP header, so a port filter alone misses them)."""
    sip = " or ".join(f"udp port {p} or tcp port {p}" for p in sorted(set(sip_ports)))
    fragments = "(ip and ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)"
    return f"(host {host} and ({sip} or {fragments})) or (udp portrange {rtp[0]}-{rtp[1]})"


CAPTURE_MODES = ("always", "packets", "never")
"""``--sip-capture``: capture every test (default), only tests with ``packets:``, or none."""


def capture_mode(value: str | None) -> str:
    """The ``--sip-capture`` mode named by ``value`` (None: always); ValueError otherwise."""
    mode = (value or "always").strip().lower()
    if mode not in CAPTURE_MODES:
        raise ValueError(f"expected always, packets or never, got {value!r}")
    return mode


def target_facts(trace: Trace, target_sip: str, transport: str) -> CallFacts:
    """Facts for a run that left nothing behind (its steps raised): every Call-ID the
    capture shows to or from the target's SIP address during the test."""
    facts = CallFacts(target_sip=target_sip, transport=transport)
    for packet in trace.sip:
        call_id = _call_id(packet) if target_sip in (packet.src, packet.dst) else None
        if call_id:
            facts.call_ids.add(call_id)
    return facts


def call_flows(trace: Trace, facts: CallFacts) -> set[Flow]:
    """The UDP/TCP flows of this test's SIP and RTP in ``trace``."""
    ours = call_trace(trace, facts)
    packets: list[SipPacket | RtpPacket] = [*ours.sip, *ours.rtp]
    return {flow(p.src, p.dst) for p in packets}


class WireCapture:
    """Captures one test's traffic: every test (mode ``always``), only one whose plan has a
    ``packets:`` section (``packets``), or none (``never``).

    Use as ``with capture_for(plan, target, transport) as wire: run = execute(...)`` then
    ``wire.check(run)``. The redacted pcap of the test's own calls (by Call-ID, with the RTP
    their SDP announced) and its ladder are attached to Allure whether the test passes or
    fails. Without capture privilege a test without ``packets:`` runs as usual with a
    "not captured: <reason>" note; one with ``packets:`` still runs its steps, then
    ``check`` skips with how to enable capture, and in CI (SIPHARNESS_REQUIRE_TOOLS=1)
    entering fails at once.
    """

    def __init__(self, plan: Plan, target: Target, transport: str, mode: str = "always"
                 ) -> None:  # fmt: skip
        self.plan = plan
        self.target = target
        self.transport = transport
        self.mode = capture_mode(mode)
        self.checks = bool(plan.scenario.packets)
        self.active = self.mode != "never" and (self.checks or self.mode == "always")
        self.unavailable: str | None = None if self.mode != "never" else (
            "capture is off (--sip-capture never)")
        self.capture: Capture | None = None
        self.path: Path | None = None
        self.results: list[PacketResult] = []

    @property
    def target_sip(self) -> str:
        return endpoint(wire_address(self.target.host), self.target.port_for(self.transport))

    def filter(self) -> str:
        ports = {self.target.port_for(self.transport), *self.target.extra_ports.values()}
        return capture_filter(wire_address(self.target.host), ports, rtp_ports(self.target))

    def __enter__(self) -> WireCapture:
        if not self.active:
            return self
        from sipharness.hostenv import tools_required

        ok, reason = capture_available()
        if ok:
            fd, name = tempfile.mkstemp(prefix="sipharness-packets-", suffix=".pcap")
            os.close(fd)
            self.path = Path(name)
            interface = capture_interface(wire_address(self.target.host))
            self.capture = Capture(interface, self.filter(), self.path, settle=SETTLE)
            try:
                self.capture.start()
            except CaptureError as exc:
                self.capture, reason = None, f"the capture did not start: {exc}"
                self._discard()
        if self.capture is None:
            self.unavailable = reason
            if self.checks and tools_required():
                import pytest

                pytest.fail(f"SIPHARNESS_REQUIRE_TOOLS=1 and packet capture is unavailable: "
                            f"{reason}", pytrace=False)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        if self.capture is None:
            return
        try:
            self.capture.stop()
        finally:
            self.capture = None
        if exc_type is None:
            return
        from sipharness.report import allure as report

        try:
            if self.path is not None:
                trace = read_pcap(self.path)
                self._attach(trace, target_facts(trace, self.target_sip, self.transport))
        except Exception as err:  # the steps' own failure is what the test must report
            report.attach_text("capture", f"not attached: {type(err).__name__}: {err}")
        finally:
            self._discard()

    def _attach(self, trace: Trace, facts: CallFacts) -> None:
        """Attach the redacted pcap of this test's flows and its ladder (or, when that
        breaks, why not: a broken attachment must not hide the test's own outcome)."""
        from sipharness.report import allure as report

        assert self.path is not None
        selected = self.path.with_name(self.path.stem + "-call.pcap")
        try:
            if self.transport == "tls":  # no Call-ID or SDP to select by: the whole capture
                attach_capture(self.path, "capture")
            else:
                keep_flows(self.path, selected, call_flows(trace, facts))
                attach_capture(selected, "capture")
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            report.attach_text("capture", f"not attached: {type(exc).__name__}: {exc}")
        finally:
            with suppress(OSError):
                selected.unlink()

    def _discard(self) -> None:
        if self.path is not None:
            with suppress(OSError):
                self.path.unlink()
            self.path = None

    def check(self, run: ScenarioRun) -> list[PacketResult]:
        """Attach the capture, then run the ``packets:`` checks on it; raise
        PacketCheckFailed listing every failure. Without a capture: a test with ``packets:``
        skips (with how to enable capture), others note why nothing was captured."""
        from sipharness.report import allure as report

        if self.path is None:
            if self.checks:
                import pytest

                pytest.skip(f"packets: checks skipped: {self.unavailable}")
            if self.unavailable is not None and self.mode != "never":
                report.attach_text("capture", f"not captured: {self.unavailable}")
            return []
        try:
            trace = read_pcap(self.path)
            facts = CallFacts.from_run(run)
            self._attach(trace, facts)
            if not self.checks:
                return []
            with report.step(f"packets: {len(self.plan.scenario.packets)} wire check(s)"):
                self.results = evaluate(self.plan.scenario.packets, trace, facts,
                                        target_timers(self.target))
                report.attach_text("packet checks",
                                   "\n".join(str(r.check) for r in self.results))
        finally:
            self._discard()
        failed = [r for r in self.results if not r.ok]
        if failed:
            raise PacketCheckFailed(self.plan, failed, trace.start or 0.0)
        return self.results


def capture_for(plan: Plan, target: Target, transport: str, mode: str = "always"
                ) -> WireCapture:  # fmt: skip
    """The capture context for one test of ``plan`` against ``target`` in the
    ``--sip-capture`` ``mode`` (always, packets, never)."""
    return WireCapture(plan, target, transport, mode)
