"""Runs a scenario's ``media:`` steps on its call: RTP bound to the negotiated SDP, sent for a
while and checked for arrival, loss, jitter, echo latency, MOS, ptime, continuity and DTMF."""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gevent

from sipharness.agent.call import CallState
from sipharness.agent.media import CallMedia
from sipharness.media.engine import MediaReport, MediaSession
from sipharness.media.negotiation import MediaNegotiationError
from sipharness.report import allure as report
from sipharness.scenario import model as m
from sipharness.sip.grammar import SipParseError
from sipharness.sip.message import Response
from sipharness.sip.sdp import SessionDescription

if TYPE_CHECKING:
    from sipharness.agent.call import Call
    from sipharness.scenario.executor import ExpectationFailed, ScenarioRun

DISCARD_PORT = 9
"""The m= port of an offer that names no RTP socket (RFC 3264 examples, ``default_offer``)."""
DIGIT_DURATION = 0.1
DIGIT_GAP = 0.06  # MediaSession.send_dtmf's default pause between digits
ECHO_GRACE = 1.0
"""After the last digit is sent, how long its echo may take to come back."""
PTIME_TOLERANCE = 0.15
"""How far the cadence RTP arrives at may stray from the ptime (a ratio of it)."""
POLL = 0.005
WATCH_INTERVAL = 0.05
WATCH_LIMIT = 900.0
"""How long a run's RTP may outlive a call that never ends (the watcher then stops it)."""


def _seconds(spec: Mapping[str, Any], key: str) -> float | None:
    value = spec.get(key)
    return None if value is None else m.parse_duration(value)


@dataclass(frozen=True)
class RtpBounds:
    """``expect_rtp``: RTP arrives, and its quality so far is within these bounds (None: not
    checked). Seconds for times; ``max_loss`` is a ratio."""

    within: float | None = None
    duration: float = 0.0
    max_loss: float | None = None
    max_jitter: float | None = None
    max_latency: float | None = None
    min_mos: float | None = None
    ptime: float | None = None
    continuous: bool = False

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> RtpBounds:
        loss, mos = spec.get("max_loss"), spec.get("min_mos")
        return cls(
            within=_seconds(spec, "within"),
            duration=_seconds(spec, "duration") or 0.0,
            max_loss=None if loss is None else float(loss),
            max_jitter=_seconds(spec, "max_jitter"),
            max_latency=_seconds(spec, "max_latency"),
            min_mos=None if mos is None else float(mos),
            ptime=_seconds(spec, "ptime"),
            continuous=bool(spec.get("continuous", False)),
        )


@dataclass(frozen=True)
class MediaActions:
    """One ``media:`` step's actions (schema-validated), durations in seconds."""

    send: float = 0.0
    codec: str | None = None
    expect: RtpBounds | None = None
    silence: float | None = None
    digits: str = ""
    digit_duration: float = DIGIT_DURATION
    echoed: bool = False

    @classmethod
    def parse(cls, actions: Mapping[str, Mapping[str, Any]]) -> MediaActions:
        send = actions.get("send_rtp") or {}
        expect = actions.get("expect_rtp")
        silence = actions.get("expect_no_rtp") or {}
        dtmf = actions.get("dtmf") or {}
        codec = send.get("codec")
        return cls(
            send=_seconds(send, "duration") or 0.0,
            codec=None if codec is None else str(codec).upper(),
            expect=None if expect is None else RtpBounds.parse(expect),
            silence=_seconds(silence, "during"),
            digits=str(dtmf.get("digits", "")),
            digit_duration=_seconds(dtmf, "duration") or DIGIT_DURATION,
            echoed=bool(dtmf.get("echoed", False)),
        )

    @property
    def window(self) -> float:
        """How long the step sends and observes, from its start."""
        observe = self.expect.duration if self.expect is not None else 0.0
        return max(self.send, observe, self.silence or 0.0)


def address(where: tuple[str, int]) -> str:
    host, port = where[0], where[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def latest_answer(call: Call) -> bytes | None:
    """The SDP of the latest 2xx to an INVITE (initial or re-INVITE) the call received."""
    for entry in reversed(call.record.entries):
        msg = entry.message
        if not entry.received or entry.repeated or not isinstance(msg, Response):
            continue
        try:
            cseq = msg.cseq
        except SipParseError:
            continue
        if (
            200 <= msg.status < 300
            and cseq is not None
            and cseq[1].upper() == "INVITE"
            and msg.body
        ):
            return msg.body
    return None


def offered_event_type(offer: bytes) -> int | None:
    """The payload type our offer gave telephone-event in its first audio stream."""
    for media in SessionDescription.parse(offer).media:
        if media.media == "audio":
            for pt, rtpmap in media.rtpmap.items():
                if rtpmap.encoding.upper() == "TELEPHONE-EVENT" and pt.isdigit():
                    return int(pt)
            return None
    return None


def offered_port(offer: bytes) -> int | None:
    for media in SessionDescription.parse(offer).media:
        if media.media == "audio":
            return media.port
    return None


class ScenarioMedia:
    """The RTP of one scenario run, on one ``CallMedia`` socket: reserved for the offer or
    bound at the first media step; it flows from the first media step to the end of the
    last one and stops earlier when the call ends (BYE either way, or the run's cleanup)."""

    def __init__(self, call: Call, host: str) -> None:
        self.media = CallMedia(host)
        self.applied: tuple[bytes, bytes] | None = None
        self.reports: list[MediaReport] = []
        # A weak reference: the call leads back to the run, which must stay collectable.
        self.watcher = gevent.spawn(self._watch, weakref.ref(call))

    def _watch(self, call_ref: weakref.ref[Call]) -> None:
        for _ in range(int(WATCH_LIMIT / WATCH_INTERVAL)):
            call = call_ref()
            if (
                call is None
                or self.media.closed
                or call.closed
                or call.state in (CallState.TERMINATING, CallState.TERMINATED)
            ):
                break
            del call
            gevent.sleep(WATCH_INTERVAL)
        self.media.close()

    def close(self) -> None:
        self.media.close()
        self.watcher.kill(block=False)

    def session_for(self, run: ScenarioRun, step: m.Media) -> MediaSession:
        """The running session, started or updated for the call's current offer/answer."""
        call = run.call
        if call is None or call.dialog is None:
            raise run.fail(step, "an answered call to send RTP on", "no call was answered")
        if self.media.closed:
            raise run.fail(step, "a call still up to send RTP on", "the call has ended")
        offer, answer = run.last_offer, latest_answer(call)
        if offer is None:
            raise run.fail(
                step,
                "an SDP offer of ours to bind RTP to",
                "the INVITE carried none (media steps need an offer in the INVITE)",
            )
        if answer is None:
            raise run.fail(step, "an SDP answer in a 2xx to INVITE", "none received")
        try:
            if self.media.session is None:
                self.media.start(offer, answer)
            elif self.applied != (offer, answer):
                self.media.update(offer, answer)
        except (MediaNegotiationError, SipParseError) as exc:
            raise run.fail(step, "an audio stream to send G.711 RTP on", str(exc), answer) from None
        self.applied = (offer, answer)
        assert self.media.session is not None
        return self.media.session


_RUNS: weakref.WeakKeyDictionary[ScenarioRun, ScenarioMedia] = weakref.WeakKeyDictionary()


def has_media_steps(run: ScenarioRun) -> bool:
    return any(isinstance(step, m.Media) for step in run.plan.steps)


def offer_port(run: ScenarioRun) -> int:
    """The m= port for the audio offer of ``run``'s INVITE: an RTP port reserved for the
    media steps (so the far end sends RTP where it arrives), or 9 without media steps."""
    if run.call is None or not has_media_steps(run):
        return DISCARD_PORT
    media = _RUNS.get(run)
    if media is None:
        media = _RUNS[run] = ScenarioMedia(run.call, run.agent.local_host)
    return media.media.port


def media_reports(run: ScenarioRun) -> list[MediaReport]:
    """The report of each media step ``run`` executed, in order."""
    media = _RUNS.get(run)
    return list(media.reports) if media is not None else []


def run_media_step(run: ScenarioRun, step: m.Media) -> None:
    """Execute one ``media:`` step; raise ExpectationFailed when RTP is not as expected."""
    actions = MediaActions.parse(step.actions)
    media = _RUNS.get(run)
    if media is None:
        if run.call is None:
            raise run.fail(step, "an answered call to send RTP on", "no call was placed")
        media = _RUNS[run] = ScenarioMedia(run.call, run.agent.local_host)
    last = not any(isinstance(s, m.Media) for s in run.plan.steps[step.index + 1 :])
    try:
        MediaStep(run, step, actions, media).execute()
    except BaseException:
        media.close()
        raise
    if last:
        media.close()


class MediaStep:
    """One media step being executed on the run's session."""

    def __init__(self, run: ScenarioRun, step: m.Media, actions: MediaActions,
                 media: ScenarioMedia) -> None:  # fmt: skip
        self.run, self.step, self.actions, self.media = run, step, actions, media
        self.session = media.session_for(run, step)
        self.start = time.monotonic()
        self.packets_before = self.session.received.packets
        self.digits_before = len(self.session.dtmf_received.digits)

    def fail(self, expected: str, seen: str) -> ExpectationFailed:
        return self.run.fail(self.step, expected, seen, text=self.explain())

    def explain(self) -> str:
        """The session's summary, and why RTP may not come back when our offer named a
        port we do not receive on."""
        lines = [f"  media: {self.session.stats().summary()}"]
        offer = self.media.applied[0] if self.media.applied else None
        port = offered_port(offer) if offer else None
        if port is not None and port != self.session.local[1]:
            lines.append(
                f"  note: our offer named port {port}, RTP is sent and received on "
                f"{address(self.session.local)}: a far end that does not answer "
                "symmetrically (RFC 4961) sends its RTP elsewhere"
            )
        return "\n".join(lines)

    def arrived(self) -> int:
        return self.session.received.packets - self.packets_before

    def no_rtp(self, waited: float) -> str:
        sent = self.session.sent.packets
        return (
            f"nothing: no RTP arrived on {address(self.session.local)} from "
            f"{address(self.session.remote)} in {waited:.1f} s ({sent} RTP packets sent)"
        )

    def sleep_until(self, moment: float) -> None:
        gevent.sleep(max(0.0, moment - time.monotonic()))

    def execute(self) -> None:
        actions, session = self.actions, self.session
        if actions.codec is not None and session.codec != actions.codec:
            raise self.fail(
                f"RTP in {actions.codec}",
                f"the answer chose {session.codec} (payload type {session.payload_type})",
            )
        if actions.digits:
            self.send_digits()
        expect = actions.expect
        if expect is not None and expect.within is not None:
            self.wait_first_packet(expect.within)
        if actions.silence is not None:
            self.sleep_until(self.start + actions.silence)
            if self.arrived():
                raise self.fail(
                    f"no RTP for {actions.silence:g} s",
                    f"{self.arrived()} RTP packets on {address(session.local)}",
                )
        self.sleep_until(self.start + actions.window)
        if actions.digits:
            self.finish_digits()
        stats = session.stats()
        self.media.reports.append(stats)
        report.attach_text(f"RTP after step {self.step.index + 1}", stats.summary())
        report.attach_json(f"RTP report after step {self.step.index + 1}", stats.to_dict())
        if expect is not None:
            self.check(expect, stats)
        if actions.echoed:
            self.check_echoed_digits()

    def wait_first_packet(self, within: float) -> None:
        deadline = self.start + within
        while not self.arrived() and time.monotonic() < deadline:
            gevent.sleep(POLL)
        if not self.arrived():
            raise self.fail(
                f"RTP back within {within:g} s", self.no_rtp(time.monotonic() - self.start)
            )

    def send_digits(self) -> None:
        session, offer = self.session, self.media.applied[0] if self.media.applied else b""
        offered = offered_event_type(offer)
        if offered is None:
            raise self.fail(
                "telephone-event in our offer (to send DTMF)",
                "an offer without it: offer codecs [..., telephone-event]",
            )
        answered = session.dtmf_payload_type
        if answered != offered:
            raise self.fail(
                f"telephone-event on payload type {offered} (as offered) in the answer",
                "no telephone-event in the answer"
                if answered is None
                else f"telephone-event on payload type {answered}",
            )
        session.send_dtmf(
            self.actions.digits, duration_ms=round(self.actions.digit_duration * 1000)
        )

    def finish_digits(self) -> None:
        session, digits = self.session, self.actions.digits
        per_digit = self.actions.digit_duration + DIGIT_GAP + 4 * session.ptime / 1000
        if not session.wait_dtmf(len(digits) * per_digit + 1.0):
            raise self.fail(f"DTMF {digits} sent", "the digits still queued")
        if not self.actions.echoed:
            return
        deadline = time.monotonic() + ECHO_GRACE
        while (
            len(session.dtmf_received.digits) - self.digits_before < len(digits)
            and time.monotonic() < deadline
        ):
            gevent.sleep(POLL)

    def check_echoed_digits(self) -> None:
        session, digits = self.session, self.actions.digits
        back = "".join(session.dtmf_received.digits[self.digits_before :])
        if back != digits:
            pt = session.dtmf_payload_type
            raise self.fail(
                f"DTMF {digits} back (telephone-event, payload type {pt})",
                repr(back) if back else "no digit",
            )

    def check(self, bounds: RtpBounds, stats: MediaReport) -> None:
        got = stats.received
        if not self.arrived():
            raise self.fail("RTP to arrive", self.no_rtp(time.monotonic() - self.start))
        if bounds.max_loss is not None and got.loss_ratio > bounds.max_loss:
            raise self.fail(
                f"RTP loss at most {100 * bounds.max_loss:g}%",
                f"{got.lost} of {got.expected} packets lost ({100 * got.loss_ratio:.2f}%)",
            )
        if bounds.max_jitter is not None and got.jitter_ms > bounds.max_jitter * 1000:
            raise self.fail(
                f"jitter at most {bounds.max_jitter * 1000:g} ms", f"{got.jitter_ms:.2f} ms"
            )
        if bounds.max_latency is not None:
            limit = f"an echo round trip of at most {bounds.max_latency * 1000:g} ms"
            if stats.latency_avg_ms is None:
                raise self.fail(
                    limit,
                    f"no packet of ours came back among {got.packets} "
                    "received (the far end does not echo our RTP)",
                )
            if stats.latency_avg_ms > bounds.max_latency * 1000:
                raise self.fail(
                    limit,
                    f"{stats.latency_avg_ms:.2f} ms on average (max "
                    f"{stats.latency_max_ms or 0.0:.2f} ms)",
                )
        if bounds.min_mos is not None and (stats.mos is None or stats.mos < bounds.min_mos):
            raise self.fail(
                f"MOS at least {bounds.min_mos:g}",
                "no MOS" if stats.mos is None else f"MOS {stats.mos:.2f}",
            )
        if bounds.ptime is not None:
            self.check_ptime(bounds.ptime)
        if bounds.continuous and (got.ssrc_changes or got.sequence_jumps or got.timestamp_jumps):
            raise self.fail(
                "one continuous RTP stream (SSRC, sequence and timestamp)",
                f"{got.ssrc_changes} SSRC change(s), {got.sequence_jumps} sequence "
                f"jump(s), {got.timestamp_jumps} timestamp jump(s)",
            )

    def check_ptime(self, ptime: float) -> None:
        session, want = self.session, ptime * 1000
        if session.ptime != round(want):
            raise self.fail(f"ptime {want:g} ms", f"ptime {session.ptime} ms negotiated")
        got = session.received
        if got.packets < 3 or got.first_arrival is None or got.last_arrival is None:
            raise self.fail(f"RTP every {want:g} ms", f"{got.packets} packets, too few to tell")
        cadence = (got.last_arrival - got.first_arrival) / (got.packets - 1) * 1000
        if abs(cadence - want) > PTIME_TOLERANCE * want:
            raise self.fail(f"RTP every {want:g} ms", f"a packet every {cadence:.1f} ms")
