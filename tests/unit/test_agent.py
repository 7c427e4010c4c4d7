"""The call agent against a scripted far end on an in-memory transport (no sockets)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import gevent
import pytest

from sipharness.agent import (
    Agent,
    Call,
    CallState,
    CallTimeout,
    Credentials,
    TimerConfig,
    UnexpectedResponse,
    remote_media,
    room_uri,
    with_direction,
)
from sipharness.net.transport import Connection, HostPort, Received, Transport
from sipharness.sip.digest import format_challenge, verify
from sipharness.sip.message import Request, Response, build_response, parse_message

FAR: HostPort = ("127.0.0.1", 5060)
TARGET = "sip:abc-defg-hij@127.0.0.1:5060"
USER, PASSWORD = "trunk", "pa:ss;w\"rd"
REALM = "bridge.test"
SDP_ANSWER = (b"v=0\r\no=b 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
              b"m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
              b"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")  # fmt: skip

Script = Callable[["FarEnd", Request | Response], None]
Make = Callable[..., tuple["Agent", "FarEnd"]]


class FarEnd(Transport):
    """An in-memory transport: what the agent sends goes to ``script``; ``reply`` delivers
    a message back to the agent asynchronously, as a socket would."""

    name = "UDP"
    reliable = False

    def __init__(self, script: Script | None = None) -> None:
        super().__init__("127.0.0.1", 5999)
        self.script = script
        self.sent: list[Request | Response] = []

    def _start(self) -> None:
        pass

    def send(self, data: bytes, remote: HostPort, *, flow: Connection | None = None) -> HostPort:
        message = parse_message(data)
        self.sent.append(message)
        if self.script is not None:
            self.script(self, message)
        return self.local

    def _close_sockets(self) -> None:
        pass

    def reply(self, message: Request | Response) -> None:
        data = message.to_bytes()
        item = Received(data, parse_message(data), None, FAR, self.local, "UDP", None,
                        time.monotonic(), time.time())  # fmt: skip
        assert self.handler is not None
        gevent.spawn(self.handler, item)

    def requests(self, method: str) -> list[Request]:
        return [m for m in self.sent if isinstance(m, Request) and m.method == method]

    def responses(self, status: int) -> list[Response]:
        return [m for m in self.sent if isinstance(m, Response) and m.status == status]


def challenge(invite: Request, *, stale: bool = False, nonce: str = "n1") -> Response:
    value = format_challenge(REALM, nonce, qop=("auth",), stale=stale)
    return build_response(invite, 401, headers=[("WWW-Authenticate", value)], to_tag="t401")


def answer(invite: Request, status: int = 200, tag: str = "t200") -> Response:
    headers: list[tuple[str, str]] = []
    body = b""
    if status == 200:
        headers = [("Contact", "<sip:bridge@127.0.0.1:5060>"), ("Content-Type", "application/sdp")]
        body = SDP_ANSWER
    return build_response(invite, status, headers=headers, body=body, to_tag=tag)


def bridge(*, stale_first: bool = False, final: int = 200) -> Script:
    """A bridge: 401 to an INVITE without credentials, then ``final`` to a valid answer
    (401 again to a wrong one); 200 to BYE and OPTIONS."""
    state = {"challenges": 0}

    def script(far: FarEnd, msg: Request | Response) -> None:
        if not isinstance(msg, Request):
            return
        if msg.method == "INVITE" and msg.to is not None and msg.to.tag is None:
            auth = msg.header("authorization")
            if auth is None:
                far.reply(challenge(msg))
            elif stale_first and state["challenges"] == 0:
                state["challenges"] += 1
                far.reply(challenge(msg, stale=True, nonce="n2"))
            elif verify(auth, "INVITE", PASSWORD, realm=REALM, uri=msg.uri):
                far.reply(answer(msg, final))
            else:
                far.reply(challenge(msg, nonce="n3"))
        elif msg.method in ("BYE", "OPTIONS"):
            far.reply(build_response(msg, 200))

    return script


@pytest.fixture
def agent_with() -> Iterator[Make]:
    agents: list[Agent] = []

    def make(script: Script | None = None, t1: float = 0.05) -> tuple[Agent, FarEnd]:
        far = FarEnd(script)
        agent = Agent(far, timers=TimerConfig(t1=t1), default_wait=2.0)
        agents.append(agent)
        return agent, far

    yield make
    for agent in agents:
        agent.close()


def test_dial_answers_the_challenge_on_the_same_call(agent_with: Make) -> None:
    agent, far = agent_with(bridge())
    call = agent.dial(TARGET, credentials=Credentials(USER, PASSWORD))
    assert call.outcome.answered and call.outcome.ending == "answered"
    first, second = far.requests("INVITE")
    assert second.call_id == first.call_id and second.from_.tag == first.from_.tag  # type: ignore[union-attr]
    assert second.to is not None and second.to.tag is None
    assert second.cseq == (2, "INVITE") and first.cseq == (1, "INVITE")
    assert second.vias[0].branch != first.vias[0].branch
    assert verify(second.header("authorization") or "", "INVITE", PASSWORD, realm=REALM,
                  uri=second.uri, username=USER)  # fmt: skip
    acks = far.requests("ACK")
    assert acks[0].vias[0].branch == first.vias[0].branch  # ACK for the 401: same transaction
    assert acks[1].cseq == (2, "ACK") and acks[1].to.tag == "t200"  # type: ignore[union-attr]
    assert call.state is CallState.CONFIRMED
    media = call.remote_media
    assert media is not None and (media.address, media.port, media.payload_type) == (
        "127.0.0.2", 40000, 8)


def test_finish_sends_bye_in_the_dialog(agent_with: Make) -> None:
    agent, far = agent_with(bridge())
    call = agent.finish(agent.dial(TARGET, credentials=Credentials(USER, PASSWORD)))
    assert call.outcome.ok and call.outcome.torn_down_by == "us"
    (bye,) = far.requests("BYE")
    assert bye.uri == "sip:bridge@127.0.0.1:5060"  # the 2xx Contact
    assert bye.to.tag == "t200" and bye.cseq == (3, "BYE")  # type: ignore[union-attr]
    assert set(call.record.timings) >= {"invite_to_401", "auth_invite_to_200", "bye_to_200"}


def test_stale_challenge_is_answered_again_without_new_credentials(
    agent_with: Make,
) -> None:
    agent, far = agent_with(bridge(stale_first=True))
    call = agent.dial(TARGET, credentials=Credentials(USER, PASSWORD))
    assert call.outcome.answered and call.outcome.challenged == 2
    assert 'nonce="n2"' in (far.requests("INVITE")[2].header("authorization") or "")


def test_a_second_plain_challenge_means_wrong_credentials(
    agent_with: Make,
) -> None:
    agent, far = agent_with(bridge())
    call = agent.dial(TARGET, credentials=Credentials(USER, "wrong"))
    assert call.outcome.ending == "auth_failed" and not call.outcome.answered
    assert "401" in call.outcome.failure and "credentials refused" in call.outcome.failure
    assert len(far.requests("INVITE")) == 2


def test_wrong_variant_is_sent_on_purpose(agent_with: Make) -> None:
    agent, far = agent_with(bridge())
    call = agent.dial(TARGET, credentials=Credentials(USER, PASSWORD), auth_variant="password")
    sent = far.requests("INVITE")[1].header("authorization") or ""
    assert not verify(sent, "INVITE", PASSWORD, realm=REALM)
    assert call.outcome.ending == "auth_failed"


def test_a_401_without_a_challenge_header_is_named(agent_with: Make) -> None:
    def script(far: FarEnd, msg: Request | Response) -> None:
        if isinstance(msg, Request) and msg.method == "INVITE":
            far.reply(build_response(msg, 401, to_tag="x"))

    agent, _ = agent_with(script)
    call = agent.dial(TARGET, credentials=Credentials(USER, PASSWORD))
    assert call.outcome.ending == "no_challenge" and "401" in call.outcome.failure


def test_challenge_without_credentials_fails_clearly(agent_with: Make) -> None:
    agent, far = agent_with(bridge())
    call = agent.dial(TARGET)
    assert call.outcome.ending == "auth_failed" and "no credentials" in call.outcome.failure
    assert len(far.requests("INVITE")) == 1


def test_rejection_reports_status(agent_with: Make) -> None:
    agent, _ = agent_with(bridge(final=404))
    call = agent.dial(TARGET, credentials=Credentials(USER, PASSWORD))
    assert call.outcome.ending == "rejected" and call.outcome.status == 404
    assert call.outcome.failure == "call rejected: 404 Not Found"
    assert call.state is CallState.TERMINATED


def test_uri_headers_become_header_fields_decoded_once(
    agent_with: Make,
) -> None:
    agent, far = agent_with()
    call = agent.new_call(TARGET + "?X-100ms-Display-Name=John%2520Doe&X-100ms-UserID=xyz",
                          headers=[("X-Extra", "1")])  # fmt: skip
    call.send_invite()
    (invite,) = far.requests("INVITE")
    assert invite.uri == TARGET
    assert invite.header("x-100ms-display-name") == "John%20Doe"
    names = [h.name for h in invite.headers]
    assert names.index("X-100ms-UserID") < names.index("X-Extra")


def test_withheld_ack_lets_the_runner_watch_2xx_retransmissions(
    agent_with: Make,
) -> None:
    agent, far = agent_with()
    call = agent.new_call(TARGET)
    invite = call.send_invite()
    ok = answer(invite)
    far.reply(ok)
    assert call.expect_response(200).status == 200
    assert call.state is CallState.ANSWERED
    far.reply(ok)
    repeated = call.wait_for(lambda e: e.received and e.status == 200 and e.repeated, within=1)
    assert repeated.data == ok.to_bytes()
    assert far.requests("ACK") == []
    ack = call.ack()
    far.reply(ok)
    call.wait_for(lambda e: e.direction == "sent" and e.note == "retransmission", within=1)
    assert [a.to_bytes() for a in far.requests("ACK")] == [ack.to_bytes()] * 2


def test_expect_response_skips_provisionals_and_refuses_other_finals(
    agent_with: Make,
) -> None:
    agent, far = agent_with()
    call = agent.new_call(TARGET)
    invite = call.send_invite()
    far.reply(build_response(invite, 100))
    far.reply(build_response(invite, 180, to_tag="e1"))
    far.reply(build_response(invite, 486, to_tag="e1"))
    assert call.expect_response(180).status == 180
    with pytest.raises(UnexpectedResponse, match="expected 200, got 486 Busy Here") as info:
        call.expect_response(200)
    assert info.value.response.status == 486


def test_cancel_before_the_answer(agent_with: Make) -> None:
    agent, far = agent_with()
    call = agent.new_call(TARGET)
    invite = call.send_invite()
    far.reply(build_response(invite, 180, to_tag="r1"))
    call.expect_response(180)
    cancel = call.cancel()
    assert cancel.vias[0].branch == invite.vias[0].branch and cancel.cseq == (1, "CANCEL")
    far.reply(build_response(cancel, 200))
    far.reply(build_response(invite, 487, to_tag="r1"))
    assert call.expect_response(method="CANCEL").status == 200
    assert call.expect_response(487).status == 487
    (ack,) = far.requests("ACK")
    assert ack.vias[0].branch == invite.vias[0].branch


def test_dial_cancels_a_call_that_rings_past_its_wait(agent_with: Make) -> None:
    ringing: list[Request] = []

    def script(far: FarEnd, msg: Request | Response) -> None:
        if isinstance(msg, Request) and msg.method == "INVITE":
            far.reply(build_response(msg, 180, to_tag="ring"))
            ringing.append(msg)
        elif isinstance(msg, Request) and msg.method == "CANCEL":
            far.reply(build_response(msg, 200))
            far.reply(build_response(ringing[0], 487, to_tag="ring"))

    agent, far = agent_with(script)
    call = agent.dial(TARGET, within=0.2)
    assert call.outcome.ending == "timeout" and not call.outcome.answered
    assert [type(m).__name__ + " " + (m.method if isinstance(m, Request) else str(m.status))
            for m in far.sent] == ["Request INVITE", "Request CANCEL", "Request ACK"]  # fmt: skip
    assert call.state is CallState.TERMINATED


def test_far_end_bye_is_answered_and_ends_the_call(agent_with: Make) -> None:
    agent, far = agent_with(bridge())
    call = agent.dial(TARGET, credentials=Credentials(USER, PASSWORD))
    dialog = call.dialog
    assert dialog is not None
    bye = _far_request("BYE", call)
    far.reply(bye)
    assert call.wait_ended(1.0)
    (ok,) = far.responses(200)
    assert ok.cseq == (1, "BYE") and ok.to.tag == dialog.local_tag  # type: ignore[union-attr]
    agent.finish(call)
    assert call.outcome.ok and call.outcome.torn_down_by == "far end"
    assert far.requests("BYE") == []


def test_far_end_options_in_dialog_gets_200_with_allow(
    agent_with: Make,
) -> None:
    agent, far = agent_with(bridge())
    call = agent.dial(TARGET, credentials=Credentials(USER, PASSWORD))
    far.reply(_far_request("OPTIONS", call))
    request = call.expect_request("OPTIONS", within=1)
    assert request.method == "OPTIONS"
    gevent.sleep(0)
    (ok,) = far.responses(200)
    assert "BYE" in (ok.header("allow") or "")


def test_requests_for_unknown_calls_get_481_and_options_200(
    agent_with: Make,
) -> None:
    agent, far = agent_with()
    text = ("BYE sip:x@127.0.0.1:5999 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKl1"
            ";rport\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@c>;tag=2\r\nCall-ID: nobody\r\n"
            "CSeq: 5 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
    for message in (text, text.replace("BYE", "OPTIONS").replace("nobody", "probe")):
        request = parse_message(message.encode())
        assert isinstance(request, Request)
        far.reply(request)
    deadline = time.monotonic() + 1
    while len(far.sent) < 2 and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert sorted(m.status for m in far.sent if isinstance(m, Response)) == [200, 481]
    assert len(agent.strays) == 2


def test_no_answer_retransmits_on_timer_a_then_times_out_on_timer_b(
    agent_with: Make,
) -> None:
    agent, far = agent_with(t1=0.04)
    call = agent.new_call(TARGET)
    call.send_invite()
    started = time.monotonic()
    with pytest.raises(CallTimeout, match="Timer B"):
        call.expect_response(within=5)
    assert time.monotonic() - started >= 64 * 0.04
    # sent at 0, 1, 3, 7, 15, 31, 63 T1 (the last may slip past B at 64 T1 on a busy machine)
    sent = [e for e in call.record.entries if e.direction == "sent"]
    assert 6 <= len(sent) <= 7 and len(far.requests("INVITE")) == len(sent)
    assert all(e.note == "retransmission" for e in sent[1:]) and sent[0].note == ""
    gaps = [b.time - a.time for a, b in itertools.pairwise(sent)]
    assert gaps[2] < gaps[3] < gaps[4]  # 4, 8, 16 T1: doubling


def test_hold_sends_a_sendonly_reinvite_with_a_newer_version(
    agent_with: Make,
) -> None:
    def script(far: FarEnd, msg: Request | Response) -> None:
        bridge()(far, msg)
        if isinstance(msg, Request) and msg.method == "INVITE" and msg.to and msg.to.tag:
            far.reply(build_response(msg, 200, headers=[("Content-Type", "application/sdp")],
                                     body=SDP_ANSWER.replace(b"sendrecv", b"recvonly")))

    agent, far = agent_with(script)
    call = agent.dial(TARGET, credentials=Credentials(USER, PASSWORD))
    offer = call.local_sdp or b""
    assert call.hold().status == 200
    reinvite = far.requests("INVITE")[-1]
    assert b"a=sendonly" in reinvite.body and b"a=sendrecv" not in reinvite.body
    version = int(offer.split(b"\r\n")[1].split()[2])
    assert int(reinvite.body.split(b"\r\n")[1].split()[2]) == version + 1
    assert reinvite.cseq == (3, "INVITE") and reinvite.to.tag == "t200"  # type: ignore[union-attr]
    assert far.requests("ACK")[-1].cseq == (3, "ACK")
    assert call.remote_media is not None and call.remote_media.direction == "recvonly"


def _far_request(method: str, call: Call) -> Request:
    dialog = call.dialog
    assert dialog is not None
    head = (f"{method} {call.contact.strip('<>')} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfar{method};rport\r\n"
            f"From: {dialog.remote_address}\r\nTo: {dialog.local_address}\r\n"
            f"Call-ID: {call.call_id}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
            f"Content-Length: 0\r\n\r\n")  # fmt: skip
    request = parse_message(head.encode())
    assert isinstance(request, Request)
    return request


def test_with_direction_and_remote_media() -> None:
    held = with_direction(SDP_ANSWER, "inactive")
    media = remote_media(held)
    assert media is not None and media.direction == "inactive"
    assert media.rtpmap == {8: "PCMA/8000", 101: "telephone-event/8000"}
    assert b"o=b 1 2 IN IP4" in held
    with pytest.raises(ValueError, match="direction"):
        with_direction(SDP_ANSWER, "sideways")
    assert remote_media(b"v=0\r\n") is None


def test_room_uri() -> None:
    assert room_uri("abc-defg-hij", "::1", 5070) == "sip:abc-defg-hij@[::1]:5070"
    assert room_uri("r", "h", headers=[("X-100ms-Display-Name", "John Doe")]) == (
        "sip:r@h?X-100ms-Display-Name=John%20Doe")
