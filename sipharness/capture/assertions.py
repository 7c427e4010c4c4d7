"""Wire-level checks on a :class:`~sipharness.capture.analysis.Trace`: retransmission
schedules, rport, datagram size and fragmentation, DSCP, and RTP flow.

Every check is a pure function returning a :class:`PacketCheck` whose ``message`` is one line
saying what was expected and what the wire showed, with the packets that show it.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sipharness.capture.analysis import RtpPacket, SipPacket, Trace, sdp_media_addresses, sip_label

DSCP_NAMES: dict[str, int] = {
    "BE": 0,
    "CS0": 0,
    "CS1": 8,
    "AF11": 10,
    "AF12": 12,
    "AF13": 14,
    "CS2": 16,
    "AF21": 18,
    "AF22": 20,
    "AF23": 22,
    "CS3": 24,
    "AF31": 26,
    "AF32": 28,
    "AF33": 30,
    "CS4": 32,
    "AF41": 34,
    "AF42": 36,
    "AF43": 38,
    "CS5": 40,
    "EF": 46,
    "CS6": 48,
    "CS7": 56,
}


@dataclass
class PacketCheck:
    """Outcome of one wire-level check."""

    name: str
    ok: bool
    message: str
    evidence: list[SipPacket | RtpPacket] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return f"{self.name}: {'ok' if self.ok else 'FAILED'}: {self.message}"


@dataclass(frozen=True)
class MessageMatch:
    """Which SIP packets a check is about. Every given field must hold; None matches all.

    ``method`` matches the request method; ``cseq_method`` the CSeq method (so responses to
    INVITE are ``status=200, cseq_method="INVITE"``); ``status`` an exact code or a class
    such as "2xx"; ``src``/``dst`` an ``ip:port``, an ``ip``, or ``:port``; ``call_id`` pins
    one call (a scenario step's message).
    """

    method: str | None = None
    status: int | str | None = None
    cseq_method: str | None = None
    cseq: int | None = None
    src: str | None = None
    dst: str | None = None
    call_id: str | None = None

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> MessageMatch:
        """Build from a scenario mapping such as ``{status: 200, cseq_method: INVITE}``."""
        unknown = set(spec) - {"method", "status", "cseq_method", "cseq", "src", "dst", "call_id"}
        if unknown:
            raise ValueError(f"unknown message match keys: {', '.join(sorted(unknown))}")
        return cls(**dict(spec))

    def __call__(self, packet: SipPacket) -> bool:
        message = packet.message
        if message is None:
            return False
        if self.method is not None and (
            not packet.is_request or packet.method != self.method.upper()
        ):
            return False
        if self.status is not None and not _status_matches(packet.status, self.status):
            return False
        cseq = packet.cseq
        if self.cseq_method is not None and (cseq is None or cseq[1] != self.cseq_method.upper()):
            return False
        if self.cseq is not None and (cseq is None or cseq[0] != self.cseq):
            return False
        if self.call_id is not None and packet.call_id != self.call_id:
            return False
        return _addr_matches(packet.src, self.src) and _addr_matches(packet.dst, self.dst)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in vars(self).items() if v is not None]
        return "message(" + ", ".join(parts) + ")"


Match = Callable[[SipPacket], bool]


def _status_matches(status: int | None, want: int | str) -> bool:
    if status is None:
        return False
    text = str(want).lower()
    if text.endswith("xx"):
        return str(status)[0] == text[0]
    return status == int(text)


def _addr_matches(addr: str, want: str | None) -> bool:
    if want is None:
        return True
    if want.startswith(":"):
        return addr.endswith(want)
    if want.count(":") == 1 or want.startswith("["):
        return addr == want
    return addr.rpartition(":")[0].strip("[]") == want.strip("[]")


def _describe(match: Match) -> str:
    return (
        match.describe()
        if isinstance(match, MessageMatch)
        else getattr(match, "__name__", "matching message")
    )


def _fmt_times(values: Iterable[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


Schedule = Literal["T1 doubling capped at T2", "T1 doubling", "none", "A", "B", "E", "G", "2xx"]
# RFC 3261 timer names: A (INVITE request) doubles without cap; E (non-INVITE request), G
# (non-2xx to INVITE) and the 2xx (§13.3.1.4) double up to T2.
TIMER_SCHEDULES: dict[str, str] = {
    "A": "T1 doubling",
    "B": "T1 doubling",
    "E": "T1 doubling capped at T2",
    "G": "T1 doubling capped at T2",
    "2xx": "T1 doubling capped at T2",
}


def expected_intervals(
    expected: Schedule | Sequence[float], t1: float, t2: float, count: int
) -> list[float]:
    """The first ``count`` intervals between sends of a message under a schedule."""
    if not isinstance(expected, str):
        return list(expected)[:count]
    schedule = TIMER_SCHEDULES.get(expected, expected)
    if schedule not in ("T1 doubling capped at T2", "T1 doubling", "none"):
        known = ", ".join(["T1 doubling capped at T2", "T1 doubling", "none", *TIMER_SCHEDULES])
        raise ValueError(f"unknown retransmission schedule {expected!r} (known: {known})")
    if schedule == "none":
        return []
    capped = schedule == "T1 doubling capped at T2"
    out, interval = [], t1
    for _ in range(count):
        out.append(min(interval, t2) if capped else interval)
        interval *= 2
    return out


def _stopper(trace: Trace, first: SipPacket) -> SipPacket | None:
    """The packet that ends a message's retransmission: the ACK for an INVITE response, any
    response for an INVITE request, the final response for another request."""
    call_id, cseq = first.call_id, first.cseq
    for p in trace.sip:
        if p.time <= first.time or p.call_id != call_id or p.cseq is None or cseq is None:
            continue
        if first.status is not None and cseq[1] == "INVITE":
            if p.method == "ACK" and p.is_request and p.cseq[0] == cseq[0] and p.src == first.dst:
                return p
        elif (
            first.is_request
            and p.status is not None
            and p.cseq == cseq
            and (p.status >= 200 or cseq[1] == "INVITE")  # any response stops Timer A
        ):
            return p
    return None


def retransmission_schedule(
    trace: Trace,
    match: Match,
    expected: Schedule | Sequence[float] = "T1 doubling capped at T2",
    *,
    t1: float = 0.5,
    t2: float = 4.0,
    tolerance: float = 0.25,
    slack: float = 0.08,
    timeout: float | None = None,
) -> PacketCheck:
    """The first message matching ``match`` is sent again on the RFC 3261 schedule.

    Sends of the same bytes on the same path are the message and its retransmissions. Each
    interval must be within ``tolerance`` (a fraction) plus ``slack`` seconds of the schedule
    (T1, 2·T1, 4·T1 … capped at T2 by default: Timer G, and the 2xx until ACK). The repeats
    must go on until the stopping packet (the ACK for an INVITE response, a response for an
    INVITE, the final response for another request), the timeout (64·T1 by default: Timer
    H/B/F) or the end of the capture, and stop after it. ``expected`` may name the timer
    ("G", "E", "A", "2xx"); ``expected="none"`` asserts there is no retransmission (TCP).
    """
    name = "retransmission_schedule"
    first = next((p for p in trace.sip if match(p)), None)
    if first is None:
        return PacketCheck(
            name, False, f"no {_describe(match)} in the capture ({len(trace.sip)} SIP packets)"
        )
    sends = [
        p for p in trace.sip if p.raw == first.raw and p.src == first.src and p.dst == first.dst
    ]
    times = [p.time - first.time for p in sends]
    label = sip_label(first)
    stop = _stopper(trace, first)
    limit = timeout if timeout is not None else 64 * t1
    horizon = min(
        limit, (stop.time - first.time) if stop else limit, (trace.end or first.time) - first.time
    )
    schedule: list[float] = []
    at = 0.0
    for interval in expected_intervals(expected, t1, t2, 64):
        at += interval
        if at >= horizon - slack:
            break
        schedule.append(at)
    seen = times[1:]
    wire = f"the wire showed sends at {_fmt_times(times)} s"
    stop_text = (
        f"; {sip_label(stop)} at {stop.time - first.time:.2f} s"
        if stop
        else f"; no ACK/final response, capture ends at {horizon:.2f} s"
    )
    evidence: list[SipPacket | RtpPacket] = [*sends, *([stop] if stop else [])]
    stopped_at = min(limit, stop.time - first.time if stop else limit)
    if any(t > stopped_at + slack for t in seen):
        why = "it was stopped" if stop and stop.time - first.time <= limit else f"{limit:.1f} s"
        return PacketCheck(
            name, False, f"{label} retransmitted after {why}: {wire}{stop_text}", evidence
        )
    if len(seen) < len(schedule):
        want = f"retransmissions at {_fmt_times(schedule)} s" if schedule else "none"
        return PacketCheck(name, False, f"{label}: expected {want}; {wire}{stop_text}", evidence)
    wrong = []
    for i, (actual, interval) in enumerate(
        zip(seen, expected_intervals(expected, t1, t2, len(seen)), strict=False)
    ):
        gap = actual - times[i]
        if abs(gap - interval) > interval * tolerance + slack:
            wrong.append(f"#{i + 1} after {gap:.2f} s instead of {interval:.2f} s")
    extra = len(seen) - len(expected_intervals(expected, t1, t2, len(seen)))
    if extra > 0:
        wrong.append(f"{extra} more than the schedule allows")
    if wrong:
        return PacketCheck(
            name,
            False,
            f"{label}: retransmission intervals off schedule "
            f"({'; '.join(wrong)}); {wire}{stop_text}",
            evidence,
        )
    return PacketCheck(
        name,
        True,
        f"{label}: {len(seen)} retransmission(s) on schedule; {wire}{stop_text}",
        evidence,
    )


def responses_to_source_port(trace: Trace) -> PacketCheck:
    """RFC 3581: a response to a UDP request whose top Via has ``rport`` goes back to the
    request's source address and port, with ``received`` and ``rport`` filled in."""
    name = "responses_to_source_port"
    requests = [
        p
        for p in trace.sip
        if p.is_request
        and p.transport == "UDP"
        and p.message is not None
        and p.message.vias
        and "rport" in p.message.vias[0].params
    ]
    if not requests:
        return PacketCheck(name, False, "no UDP request with rport in its top Via in the capture")
    problems: list[str] = []
    evidence: list[SipPacket | RtpPacket] = []
    answered = 0
    for req in requests:
        assert req.message is not None
        branch = req.message.vias[0].branch
        src_ip = req.src.rpartition(":")[0].strip("[]")
        responses = [
            p
            for p in trace.sip
            if p.status is not None
            and p.time >= req.time
            and p.call_id == req.call_id
            and p.cseq == req.cseq
            and p.message is not None
            and p.message.vias
            and p.message.vias[0].branch == branch
        ]
        for resp in responses:
            assert resp.message is not None
            answered += 1
            via = resp.message.vias[0]
            issues = []
            if resp.dst != req.src:
                issues.append(f"sent to {resp.dst}")
            if str(via.params.get("rport")) != str(req.src_port):
                issues.append(f"rport={via.params.get('rport')}")
            if via.params.get("received") != src_ip:
                issues.append(f"received={via.params.get('received')}")
            if issues:
                evidence.extend((req, resp))
                problems.append(
                    f"{sip_label(resp)} for a request from {req.src}: " + ", ".join(issues)
                )
    if answered == 0:
        return PacketCheck(
            name,
            False,
            f"{len(requests)} request(s) with rport got no response in the capture",
            list(requests),
        )
    if problems:
        return PacketCheck(
            name,
            False,
            "expected responses at the source port with "
            f"received/rport set; the wire showed {'; '.join(problems[:3])}"
            + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""),
            evidence,
        )
    return PacketCheck(
        name,
        True,
        f"{answered} response(s) to {len(requests)} rport request(s) "
        "went to the source port with received/rport set",
    )


def largest_sip_datagram(
    trace: Trace,
    *,
    at_least: int | None = None,
    at_most: int | None = None,
    fragmented: bool | None = None,
    match: Match | None = None,
) -> PacketCheck:
    """Size (UDP payload) of the largest SIP datagram, optionally bounded, and whether it was
    IP-fragmented (``fragmented=True`` requires it, ``False`` forbids any fragmentation)."""
    name = "largest_sip_datagram"
    udp = [p for p in trace.sip if p.transport == "UDP" and (match is None or match(p))]
    if not udp:
        return PacketCheck(name, False, "no SIP datagram over UDP in the capture")
    largest = max(udp, key=lambda p: p.size)
    frag_packets = [p for p in udp if p.fragmented]
    shown = (
        f"largest SIP datagram {largest.size} bytes ({sip_label(largest)}), "
        + (f"in {largest.fragments} IP fragments" if largest.fragmented else "unfragmented")
        + f"; {len(frag_packets)} fragmented datagram(s)"
    )
    problems = []
    if at_least is not None and largest.size < at_least:
        problems.append(f"expected at least {at_least} bytes")
    if at_most is not None and largest.size > at_most:
        problems.append(f"expected at most {at_most} bytes")
    if fragmented is True and not largest.fragmented:
        problems.append("expected it to be IP-fragmented")
    if fragmented is False and frag_packets:
        problems.append("expected no IP fragmentation")
    evidence: list[SipPacket | RtpPacket] = [largest, *frag_packets[:5]]
    if problems:
        return PacketCheck(name, False, f"{'; '.join(problems)}; the wire showed {shown}", evidence)
    return PacketCheck(name, True, shown, evidence)


def dscp_value(value: int | str) -> int:
    """A DSCP given as a number (46) or a PHB name ("EF", "AF41", "CS3")."""
    if isinstance(value, int):
        return value
    text = value.strip().upper()
    return DSCP_NAMES[text] if text in DSCP_NAMES else int(text, 0)


def dscp(
    trace: Trace,
    kind: Literal["sip", "rtp"],
    expected: int | str | Iterable[int | str],
    *,
    src: str | None = None,
) -> PacketCheck:
    """Every SIP (or RTP) packet — from ``src`` when given — carries the expected DSCP."""
    name = f"dscp_{kind}"
    wanted = (
        {dscp_value(expected)}
        if isinstance(expected, int | str)
        else {dscp_value(v) for v in expected}
    )
    packets: list[SipPacket | RtpPacket] = [
        p for p in (trace.sip if kind == "sip" else trace.rtp) if _addr_matches(p.src, src)
    ]
    if not packets:
        return PacketCheck(
            name,
            False,
            f"no {kind.upper()} packets" + (f" from {src}" if src else "") + " in the capture",
        )
    seen = Counter(p.dscp for p in packets)
    wrong = [p for p in packets if p.dscp not in wanted]
    shown = ", ".join(f"DSCP {d}: {n}" for d, n in sorted(seen.items()))
    want = " or ".join(str(w) for w in sorted(wanted))
    if wrong:
        return PacketCheck(
            name,
            False,
            f"expected DSCP {want} on every {kind.upper()} packet; the wire showed {shown}",
            wrong[:10],
        )
    return PacketCheck(name, True, f"{len(packets)} {kind.upper()} packets, {shown}")


def _call_anchor(trace: Trace, call_id: str | None) -> tuple[SipPacket | None, SipPacket | None]:
    """(ACK of the first answered INVITE, first BYE of that call)."""
    ok = next(
        (
            p
            for p in trace.sip
            if p.status is not None
            and 200 <= p.status < 300
            and p.cseq is not None
            and p.cseq[1] == "INVITE"
            and (call_id is None or p.call_id == call_id)
        ),
        None,
    )
    if ok is None:
        return None, None
    ack = next(
        (
            p
            for p in trace.sip
            if p.time >= ok.time and p.is_request and p.method == "ACK" and p.call_id == ok.call_id
        ),
        None,
    )
    bye = next(
        (
            p
            for p in trace.sip
            if p.is_request and p.method == "BYE" and p.call_id == ok.call_id and p.time >= ok.time
        ),
        None,
    )
    return ack, bye


def _stream_problems(packets: list[RtpPacket]) -> list[str]:
    """Sequence/timestamp continuity of one SSRC, in capture order."""
    problems: list[str] = []
    steps = Counter(
        (b.ts - a.ts) & 0xFFFFFFFF
        for a, b in itertools.pairwise(packets)
        if (b.seq - a.seq) & 0xFFFF == 1 and a.pt == b.pt and not b.marker
    )
    step = steps.most_common(1)[0][0] if steps else None
    for a, b in itertools.pairwise(packets):
        dseq = (b.seq - a.seq) & 0xFFFF
        if dseq != 1:
            problems.append(f"seq {a.seq} -> {b.seq} at +{b.time - packets[0].time:.3f} s")
        elif step is not None and a.pt == b.pt and not b.marker:
            dts = (b.ts - a.ts) & 0xFFFFFFFF
            if dts != step:
                problems.append(f"timestamp step {dts} instead of {step} at seq {b.seq}")
    return problems


def rtp_flow(
    trace: Trace,
    *,
    after_ack_within: float | None = 1.0,
    none_after_bye: bool = True,
    bye_grace: float = 0.1,
    continuous: bool = True,
    both_directions: bool = True,
    ptime_ms: float | None = None,
    call_id: str | None = None,
) -> PacketCheck:
    """RTP of the first answered call: present in both directions within ``after_ack_within``
    seconds of the ACK, none later than ``bye_grace`` after the BYE, sequence numbers and
    timestamps continuous, one SSRC per direction, and — with ``ptime_ms`` — packets that
    far apart (median spacing within 25 %).

    Directions are told apart by the SDP: RTP to the address the INVITE's offer announced is
    "to caller", RTP to the address of the 2xx's answer "to bridge"; other RTP is ignored.
    """
    name = "rtp_flow"
    ack, bye = _call_anchor(trace, call_id)
    if ack is None:
        return PacketCheck(name, False, "no ACK for an answered INVITE in the capture")
    offer = next(
        (
            p
            for p in trace.sip
            if p.is_request
            and p.method == "INVITE"
            and p.call_id == ack.call_id
            and p.message is not None
            and p.message.body
        ),
        None,
    )
    answer = next(
        (
            p
            for p in trace.sip
            if p.status is not None
            and 200 <= p.status < 300
            and p.call_id == ack.call_id
            and p.message is not None
            and p.message.body
        ),
        None,
    )
    caller_media = sdp_media_addresses(offer.message.body) if offer and offer.message else set()
    bridge_media = sdp_media_addresses(answer.message.body) if answer and answer.message else set()
    by_direction: dict[str, list[RtpPacket]] = defaultdict(list)
    for p in trace.rtp:
        if not caller_media:
            by_direction[f"{p.src} -> {p.dst}"].append(p)
        elif p.dst in caller_media:
            by_direction["to caller"].append(p)
        elif not bridge_media or p.dst in bridge_media:
            by_direction["to bridge"].append(p)
    problems: list[str] = []
    evidence: list[SipPacket | RtpPacket] = [ack, *([bye] if bye else [])]
    directions = ["to caller", "to bridge"] if caller_media else sorted(by_direction)
    shown = []
    for direction in directions:
        packets = by_direction.get(direction, [])
        if not packets:
            if both_directions:
                problems.append(f"no RTP {direction}")
            continue
        first = packets[0]
        ssrcs = list(dict.fromkeys(p.ssrc for p in packets))
        shown.append(
            f"{direction}: {len(packets)} packets, first at ACK{first.time - ack.time:+.3f} s, "
            f"SSRC {', '.join(f'{s:#010x}' for s in ssrcs)}"
        )
        if after_ack_within is not None and first.time - ack.time > after_ack_within:
            problems.append(
                f"first RTP {direction} {first.time - ack.time:.3f} s after the ACK "
                f"(bound {after_ack_within} s)"
            )
            evidence.append(first)
        if bye is not None and none_after_bye:
            late = [p for p in packets if p.time > bye.time + bye_grace]
            if late:
                problems.append(
                    f"{len(late)} RTP packet(s) {direction} after the BYE "
                    f"(last {late[-1].time - bye.time:.3f} s after)"
                )
                evidence.extend(late[:3])
        if continuous:
            if len(ssrcs) > 1:
                problems.append(f"SSRC changed {direction}: {len(ssrcs)} SSRCs")
            for ssrc in ssrcs:
                issues = _stream_problems([p for p in packets if p.ssrc == ssrc])
                if issues:
                    problems.append(
                        f"{direction} SSRC {ssrc:#010x} not continuous: "
                        + "; ".join(issues[:3])
                        + (f" (+{len(issues) - 3} more)" if len(issues) > 3 else "")
                    )
        if ptime_ms is not None and len(packets) > 2:
            gaps = sorted((b.time - a.time) * 1000 for a, b in itertools.pairwise(packets))
            median = gaps[len(gaps) // 2]
            if abs(median - ptime_ms) > ptime_ms * 0.25:
                problems.append(
                    f"RTP {direction} every {median:.1f} ms (median) instead of {ptime_ms:g} ms"
                )
    if not trace.rtp:
        problems.append("no RTP in the capture")
    if problems:
        return PacketCheck(
            name,
            False,
            "; ".join(problems) + " — the wire showed " + ("; ".join(shown) or "no RTP"),
            evidence,
        )
    return PacketCheck(name, True, "; ".join(shown), evidence)


def rtp_after_ack(trace: Trace, within: float = 1.0) -> PacketCheck:
    """RTP flows both ways, starting no later than ``within`` seconds after the ACK."""
    check = rtp_flow(trace, after_ack_within=within, none_after_bye=False, continuous=False)
    check.name = "rtp_after_ack"
    return check


def no_rtp_after_bye(trace: Trace, after: float = 0.1) -> PacketCheck:
    """No RTP in either direction later than ``after`` seconds after the BYE."""
    name = "no_rtp_after_bye"
    _, bye = _call_anchor(trace, None)
    if bye is None:
        return PacketCheck(name, False, "no BYE of an answered call in the capture")
    check = rtp_flow(
        trace, after_ack_within=None, bye_grace=after, continuous=False, both_directions=False
    )
    check.name = name
    return check


CHECKS: dict[str, Callable[..., PacketCheck]] = {
    "retransmission_schedule": retransmission_schedule,
    "responses_to_source_port": responses_to_source_port,
    "largest_sip_datagram": largest_sip_datagram,
    "dscp": dscp,
    "rtp_flow": rtp_flow,
    "rtp_after_ack": rtp_after_ack,
    "no_rtp_after_bye": no_rtp_after_bye,
}


def run_check(trace: Trace, name: str, options: Mapping[str, Any] | None = None) -> PacketCheck:
    """Run the check ``name`` with keyword ``options`` as a scenario file spells them;
    a ``match`` mapping becomes a :class:`MessageMatch`. Unknown names or options raise
    ValueError naming what is allowed."""
    check = CHECKS.get(name)
    if check is None:
        raise ValueError(f"unknown packet check {name!r}; known: {', '.join(sorted(CHECKS))}")
    kwargs = dict(options or {})
    if isinstance(kwargs.get("match"), Mapping):
        kwargs["match"] = MessageMatch.from_mapping(kwargs["match"])
    try:
        return check(trace, **kwargs)
    except TypeError as exc:
        raise ValueError(f"packet check {name}: {exc}") from exc
