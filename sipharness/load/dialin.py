"""The load path over scenario plans: pick a plan by weight, dial it with the agent, hold, hang up.

A plan that is a plain dial-in takes the fast path: its INVITE (URI and headers rendered
from the plan's templates), its answer to the challenge (correct or a wrong variant), then —
for an answered call — a hold from the ``--hold`` distribution with RTP, and BYE. The call
itself is the agent's (``Agent.dial`` / ``Agent.finish``). Any other plan is scripted: the
conformance executor runs its steps (sipharness.load.scripted). Webhook and roster
expectations are not checked per call under load.
"""

from __future__ import annotations

import _socket
import contextlib
import random
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import gevent

from sipharness.agent import Agent, Call, CallError, Credentials, default_offer, room_uri
from sipharness.load.options import HoldTime, Target
from sipharness.load.phases import POST_DIAL, CallResult, failure_name
from sipharness.load.scripted import run_scripted
from sipharness.media.engine import MediaSession, shared_engine
from sipharness.scenario import Plan, expand, find_scenario_files, load_scenario
from sipharness.scenario.model import (
    Ack,
    AnswerChallenge,
    Bye,
    Expect,
    ExpectRoster,
    ExpectWebhook,
    HeaderLine,
    Media,
    Pause,
    Send,
)
from sipharness.scenario.variables import Bindings, Template, TemplateError
from sipharness.sip.message import canonical_name

DIAL_IN_STEPS = (Send, Expect, AnswerChallenge, Ack, Pause, Bye, Media, ExpectWebhook,
                 ExpectRoster)  # fmt: skip
G711 = {0: "PCMU", 8: "PCMA"}
GENERATED_HEADERS = frozenset({"via", "from", "to", "call-id", "cseq", "max-forwards",
                               "contact", "content-type", "content-length"})  # fmt: skip


class LoadPlanError(ValueError):
    """Scenarios that cannot be run under load (with the file and the reason)."""


@dataclass(frozen=True)
class LoadPlan:
    """One scenario case as the load users place it."""

    name: str
    plan: Plan
    weight: float
    think_time: float | None
    uri: Template | None
    headers: tuple[HeaderLine, ...]
    credentials: Template | None
    hangs_up: bool
    scripted: bool = False
    """Not a plain dial-in: run step by step by the conformance executor."""

    def bindings(self, target: Target) -> Bindings:
        return self.plan.bindings(target_host=target.host, target_port=target.port,
                                  room_code=target.room_code, username=target.username,
                                  password=target.password)  # fmt: skip


def as_load_plan(plan: Plan, weight: float | None = None) -> LoadPlan:
    """The dial-in a plan describes, or a scripted plan when it is more than a dial-in.

    A dial-in sends one plain INVITE (headers and URI only), answers the challenge, expects
    statuses only, and either has the call answered and ended with a plain BYE, or answers
    the challenge wrongly on purpose and expects no answer. Anything else is scripted, so
    that every expectation of the file is still checked.
    """
    invite: Send | None = None
    challenge: AnswerChallenge | None = None
    hangs_up = False
    scripted = False
    for step in plan.steps:
        if not isinstance(step, DIAL_IN_STEPS):
            scripted = True
        elif isinstance(step, Send):
            plain = (step.raw is None and (step.method or "INVITE").upper() == "INVITE"
                     and not step.only_headers and step.sdp is None and step.body is None
                     and step.transport is None and step.retransmit is None
                     and not any(_replaces_generated(h) for h in step.headers))  # fmt: skip
            scripted = scripted or not plain or invite is not None
            invite = step
        elif isinstance(step, Expect):
            scripted = scripted or bool(step.headers or step.save or step.to_tag or step.sdp
                                        or step.retransmissions or step.reason
                                        or step.of)  # fmt: skip
        elif isinstance(step, Ack):
            scripted = scripted or step.withhold or bool(step.headers)
        elif isinstance(step, AnswerChallenge):
            scripted = scripted or any(x is not None for x in (step.username, step.password,
                                                               step.algorithm))  # fmt: skip
            challenge = step
        elif isinstance(step, Bye):
            scripted = scripted or step.dialog != "current" or bool(
                step.headers or step.reason or step.only_headers)
            hangs_up = True
    wrong_on_purpose = challenge is not None and _credentials_of(plan, challenge) != "correct"
    scripted = scripted or invite is None or not (hangs_up or wrong_on_purpose)
    settings = plan.scenario.load
    return LoadPlan(
        name=Path(plan.scenario.path).stem + (f"[{plan.case_id}]" if plan.case_id else ""),
        plan=plan,
        weight=settings.weight if weight is None else weight,
        think_time=settings.think_time,
        uri=invite.uri if invite is not None else None,
        headers=invite.headers if invite is not None else (),
        credentials=challenge.credentials if challenge is not None else None,
        hangs_up=hangs_up,
        scripted=scripted,
    )


def _replaces_generated(header: HeaderLine) -> bool:
    """A header line that replaces one the INVITE is built with (executor semantics)."""
    if header.name is None:
        return True
    name = header.name.text if header.name.is_literal else ""
    return not name or canonical_name(name) in GENERATED_HEADERS


def _credentials_of(plan: Plan, step: AnswerChallenge) -> str:
    """``correct`` or the wrong variant a plan's answer_challenge renders to (its matrix
    case decides); ``unknown`` when it depends on the target."""
    try:
        return step.credentials.render(plan.bindings(target_host="", target_port=0,
                                                     room_code=""))  # fmt: skip
    except (TemplateError, KeyError):
        return "unknown"


def load_plans(paths: Sequence[str], weights: Mapping[str, float] | None = None,
               root: Path | None = None, transport: str | None = None,
               ) -> list[LoadPlan]:  # fmt: skip
    """Every case of every scenario under ``paths`` (relative ones also tried under
    ``root``), as load plans with their weights; ``weights`` maps file stems to overrides.
    With ``transport``, cases of a ``transport`` matrix axis for another transport are left
    out (a run uses one)."""
    weights = dict(weights or {})
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if not path.exists() and root is not None and (root / path).exists():
            path = root / path
        if not path.exists():
            raise LoadPlanError(f"--scenarios: {text} does not exist")
        files.extend(find_scenario_files([path]))
    plans = []
    for file in files:
        scenario = load_scenario(file)
        for plan in expand(scenario):
            case_transport = plan.matrix.get("transport")
            if transport and case_transport and case_transport.lower() != transport.lower():
                continue
            plans.append(as_load_plan(plan, weights.pop(file.stem, None)
                                      if file.stem in weights else None))  # fmt: skip
    if weights:
        raise LoadPlanError(f"--scenario-weights: no scenario named {', '.join(weights)}")
    if not plans or not any(p.weight > 0 for p in plans):
        raise LoadPlanError("no load scenario with a weight above 0 was found")
    return plans


def pick(plans: Sequence[LoadPlan], rng: random.Random) -> LoadPlan:
    """One plan, chosen with probability proportional to its weight."""
    if len(plans) == 1:
        return plans[0]
    return rng.choices(plans, weights=[p.weight for p in plans], k=1)[0]


def _rtp_socket(host: str) -> _socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = _socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


def place_call(agent: Agent, load_plan: LoadPlan, target: Target, *, hold: HoldTime,
               rng: random.Random, rtp: str = "auto", on_answer: object = None,
               ) -> CallResult:  # fmt: skip
    """Dial ``load_plan`` at ``target``, hold an answered call (with RTP unless ``rtp`` is
    off) for a time drawn from ``hold``, hang up, and say how it went. ``on_answer`` (a
    callable) is called once the call is answered, before the hold. A scripted plan runs
    through the conformance executor instead (no hold, no RTP)."""
    if load_plan.scripted:
        return run_scripted(load_plan.plan, load_plan.name, target)
    bindings = load_plan.bindings(target)
    uri = (load_plan.uri.render(bindings) if load_plan.uri is not None
           else room_uri(target.room_code, target.host, target.port))  # fmt: skip
    headers = [(h.name.render(bindings), h.value.render(bindings))
               for h in load_plan.headers if h.name is not None]  # fmt: skip
    variant_text = (load_plan.credentials.render(bindings)
                    if load_plan.credentials is not None else "correct")  # fmt: skip
    wrong = variant_text != "correct"
    credentials = Credentials(target.username, target.password)
    media_sock = _rtp_socket(agent.local_host) if rtp != "off" else None
    offer: bytes | None = None
    if media_sock is not None:
        offer = default_offer(agent.local_host, media_sock.getsockname()[1])
    try:
        call = agent.dial(uri, credentials=credentials, headers=headers,
                          sdp_offer=offer or "default",
                          auth_variant=variant_text if wrong else None,  # type: ignore[arg-type]
                          destination=(target.host, target.port))  # fmt: skip
        try:
            return _after_dial(agent, call, load_plan, wrong=wrong, hold=hold, rng=rng,
                               media_sock=media_sock, rtp=rtp, on_answer=on_answer)
        finally:
            call.close()
    finally:
        if media_sock is not None:
            media_sock.close()


def _after_dial(agent: Agent, call: Call, load_plan: LoadPlan, *, wrong: bool, hold: HoldTime,
                rng: random.Random, media_sock: _socket.socket | None, rtp: str,
                on_answer: object) -> CallResult:  # fmt: skip
    outcome = call.outcome
    result = CallResult(load_plan.name, call.record, answered=outcome.answered, ok=False)
    challenged = outcome.challenged > 0
    if wrong:
        if outcome.answered:
            agent.finish(call)
            result.failure, result.failed_phase = "INVITE 200 with wrong credentials", POST_DIAL
        else:
            result.ok = outcome.ending == "auth_failed"
            if not result.ok:
                result.failed_phase, result.failure = failure_name(
                    outcome.ending, outcome.status, challenged, False, outcome.failure)
        return result
    if not outcome.answered:
        result.failed_phase, result.failure = failure_name(
            outcome.ending, outcome.status, challenged, False, outcome.failure)
        return result
    if callable(on_answer):
        on_answer()
    session = _start_media(call, media_sock) if media_sock is not None else None
    if rtp == "on" and session is None:
        result.failure, result.failed_phase = "no audio stream to send RTP to", POST_DIAL
    try:
        planned = hold.sample(rng)
        started = time.monotonic()
        ended = call.wait_ended(planned)
        result.hold_s = time.monotonic() - started
        result.far_end_hung_up = ended
    except gevent.GreenletExit:
        _hang_up_quickly(call)  # the run is stopping: leave no call up on the bridge
        raise
    finally:
        if session is not None:
            session.stop()
    if session is not None:
        report = session.stats()
        got = report.received
        result.rtp = {"expected": got.expected, "lost": got.lost, "loss_ratio": got.loss_ratio,
                      "jitter_ms": got.jitter_ms, "packets_sent": report.sent.packets,
                      "latency_avg_ms": report.latency_avg_ms, "mos": report.mos}  # fmt: skip
    agent.finish(call)
    result.ok = outcome.ending == "completed" and not ended and result.failure is None
    if outcome.ending != "completed" and result.failure is None:
        result.failed_phase, result.failure = failure_name(
            outcome.ending, outcome.status, challenged, True, outcome.failure)
    return result


def _hang_up_quickly(call: Call) -> None:
    """BYE with a short wait (one second at most), ignoring how it ends."""
    with contextlib.suppress(CallError):
        call.bye(within=1.0)


def _start_media(call: Call, sock: _socket.socket) -> MediaSession | None:
    """A started MediaSession towards the far end's answered audio, None without one."""
    endpoint = call.remote_media
    if endpoint is None or endpoint.payload_type not in G711 or endpoint.direction == "inactive":
        return None
    pt = endpoint.payload_type
    dtmf = next((p for p, name in endpoint.rtpmap.items()
                 if name.lower().startswith("telephone-event")), None)  # fmt: skip
    return MediaSession(shared_engine(), sock, (endpoint.address, endpoint.port),
                        payload_type=pt, codec=G711[pt], dtmf_payload_type=dtmf,
                        rtcp=False).start()  # fmt: skip
