"""RFC 3261 §17 / RFC 6026 transaction behaviour of sipharness.sip.transaction, on a fake clock."""

from __future__ import annotations

from itertools import pairwise

import pytest

from sipharness.sip.events import (
    AckReceived,
    AckSent,
    Event,
    FinalReceived,
    MalformedMessage,
    ProvisionalReceived,
    RequestReceived,
    RequestRetransmitted,
    ResponseRepeated,
    ResponseRetransmitted,
    RetransmissionAbsorbed,
    StrayResponse,
    TransactionTerminated,
    TransactionTimedOut,
)
from sipharness.sip.message import Request, Response, build_request, build_response, parse_message
from sipharness.sip.timers import TimerConfig
from sipharness.sip.transaction import (
    ClientInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    ServerTransaction,
    TransactionLayer,
    TransactionState,
    TransactionStateError,
)

BRIDGE = ("127.0.0.1", 5060)
CALLER = ("127.0.0.1", 5070)
T1, T2, T4 = 0.5, 4.0, 5.0


def request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bK-inv-1",
    cseq: int = 1,
    to_tag: str | None = None,
    call_id: str = "call-1@127.0.0.1",
) -> Request:
    to = "<sip:abc-defg-hij@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return build_request(
        method,
        "sip:abc-defg-hij@127.0.0.1:5060",
        [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport"),
            ("Route", "<sip:edge.example.com;lr>"),
            ("Max-Forwards", "70"),
            ("From", '"Caller" <sip:+15550100@127.0.0.1>;tag=from-1'),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", "<sip:caller@127.0.0.1:5070>"),
        ],
    )


def wire(message: Request | Response) -> Request | Response:
    """The message as the far end's bytes parse: what a driver hands to ``receive``."""
    return parse_message(message.to_bytes())


def answer(req: Request, status: int, to_tag: str | None = "bridge-1") -> Response:
    response = wire(build_response(req, status, to_tag=None if status == 100 else to_tag))
    assert isinstance(response, Response)
    return response


def run_until(layer: TransactionLayer, end: float) -> list[Event]:
    """Fire every timer up to ``end`` exactly at its deadline, as a perfect driver would."""
    events: list[Event] = []
    for _ in range(100_000):
        deadline = layer.next_deadline()
        if deadline is None or deadline > end:
            return events
        events.extend(layer.on_timer(deadline))
    raise AssertionError("timers kept firing")


def rfc_invite_retransmissions(t1: float) -> list[float]:
    """§17.1.1.2: Timer A starts at T1 and doubles each time; Timer B = 64·T1 stops it."""
    times, interval, elapsed = [], t1, 0.0
    while elapsed + interval < 64 * t1:
        elapsed += interval
        times.append(elapsed)
        interval = 2 * interval
    return times


def rfc_capped_retransmissions(t1: float, t2: float, start: float = 0.0) -> list[float]:
    """§17.1.2.2 Timer E / §17.2.1 Timer G: T1 doubling, capped at T2, until 64·T1."""
    times, interval, elapsed = [], t1, start
    while elapsed + interval < start + 64 * t1:
        elapsed += interval
        times.append(elapsed)
        interval = min(2 * interval, t2)
    return times


def of_type(events: list[Event], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def kinds(events: list[Event]) -> list[tuple[type, object]]:
    """Each event's class with the transaction it concerns (None when it has none)."""
    return [(type(e), getattr(e, "transaction", None)) for e in events]


def new_server_transaction(layer: TransactionLayer, req: Request, now: float) -> ServerTransaction:
    """Deliver a request the layer has not seen and return the server transaction it made."""
    [event] = layer.receive(wire(req), now, CALLER)
    assert isinstance(event, RequestReceived)
    return event.transaction


# --- client INVITE -------------------------------------------------------------------------


def test_invite_is_retransmitted_on_timer_a_until_timer_b_over_udp() -> None:
    layer = TransactionLayer(destination=BRIDGE)
    invite = request()
    tx = layer.send_request(invite, 0.0)
    assert layer.data_to_send() == [(invite.to_bytes(), BRIDGE)]

    events = run_until(layer, 100.0)

    resent = of_type(events, RequestRetransmitted)
    assert [e.time for e in resent] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert [e.time for e in resent] == rfc_invite_retransmissions(T1)
    assert [e.attempt for e in resent] == [1, 2, 3, 4, 5, 6]
    assert layer.data_to_send() == [(invite.to_bytes(), BRIDGE)] * 6
    [timeout] = of_type(events, TransactionTimedOut)
    assert (timeout.time, timeout.timer, timeout.transaction) == (64 * T1, "B", tx)
    assert tx.state is TransactionState.TERMINATED
    assert isinstance(events[-1], TransactionTerminated)
    assert len(layer) == 0 and layer.next_deadline() is None


def test_invite_schedule_scales_with_t1() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1), destination=BRIDGE)
    layer.send_request(request(), 10.0)
    events = run_until(layer, 100.0)
    expected = [10.0 + t for t in rfc_invite_retransmissions(0.1)]
    assert [e.time for e in of_type(events, RequestRetransmitted)] == pytest.approx(expected)
    assert [e.time for e in of_type(events, TransactionTimedOut)] == pytest.approx([16.4])


def test_nothing_is_retransmitted_over_a_reliable_transport() -> None:
    layer = TransactionLayer(reliable=True, destination=BRIDGE)
    layer.send_request(request(), 0.0)
    layer.send_request(request("OPTIONS", branch="z9hG4bK-opt"), 0.0)
    events = run_until(layer, 100.0)
    assert of_type(events, RequestRetransmitted) == []
    assert len(layer.data_to_send()) == 2
    assert sorted((e.time, e.timer) for e in of_type(events, TransactionTimedOut)) == [
        (32.0, "B"),
        (32.0, "F"),
    ]


def test_provisional_stops_retransmissions_and_timer_b() -> None:
    layer = TransactionLayer(destination=BRIDGE)
    invite = request()
    tx = layer.send_request(invite, 0.0)
    run_until(layer, 0.6)
    events = layer.receive(answer(invite, 100), 0.7, BRIDGE)
    assert [type(e) for e in events] == [ProvisionalReceived]
    assert events[0].time - tx.created_at == pytest.approx(0.7)
    assert tx.state is TransactionState.PROCEEDING
    assert run_until(layer, 1000.0) == []
    assert tx.state is TransactionState.PROCEEDING


def test_ack_for_401_reuses_branch_and_takes_the_to_tag_of_the_401() -> None:
    layer = TransactionLayer(destination=BRIDGE)
    invite = request()
    tx = layer.send_request(invite, 0.0)
    layer.data_to_send()
    challenge = answer(invite, 401, to_tag="chal-7")

    events = layer.receive(challenge, 0.2, BRIDGE)

    assert [type(e) for e in events] == [FinalReceived, AckSent]
    assert tx.state is TransactionState.COMPLETED
    [(data, destination)] = layer.data_to_send()
    assert destination == BRIDGE
    ack = parse_message(data)
    assert isinstance(ack, Request)
    assert ack.method == "ACK" and ack.uri == invite.uri
    assert ack.cseq == (1, "ACK")
    assert ack.header_values("via") == [invite.header("via")]
    assert ack.top_via is not None and ack.top_via.branch == "z9hG4bK-inv-1"
    assert ack.to is not None and ack.to.tag == "chal-7"
    assert ack.header("from") == invite.header("from")
    assert ack.call_id == invite.call_id
    assert ack.header_values("route") == ["<sip:edge.example.com;lr>"]
    assert ack.body == b""


def test_retransmitted_401_is_acked_again_and_timer_d_ends_the_transaction() -> None:
    layer = TransactionLayer(destination=BRIDGE)
    invite = request()
    tx = layer.send_request(invite, 0.0)
    challenge = answer(invite, 401)
    layer.receive(challenge, 0.2, BRIDGE)
    first_ack = layer.data_to_send()[-1]

    events = layer.receive(challenge, 0.7, BRIDGE)

    assert [type(e) for e in events] == [ResponseRepeated, AckSent]
    assert layer.data_to_send() == [first_ack]
    assert run_until(layer, 0.2 + 31.9) == []
    assert tx.state is TransactionState.COMPLETED
    events = run_until(layer, 0.2 + 32.0)
    assert [type(e) for e in events] == [TransactionTerminated]
    assert events[0].time == pytest.approx(32.2)
    assert layer.receive(challenge, 40.0, BRIDGE)[0].__class__ is StrayResponse


def test_timer_d_is_zero_over_a_reliable_transport() -> None:
    layer = TransactionLayer(reliable=True, destination=BRIDGE)
    invite = request()
    tx = layer.send_request(invite, 0.0)
    events = layer.receive(answer(invite, 486), 1.0, BRIDGE)
    assert [type(e) for e in events] == [FinalReceived, AckSent, TransactionTerminated]
    assert tx.state is TransactionState.TERMINATED and tx.terminated_at == 1.0


def test_2xx_moves_invite_to_accepted_and_its_retransmissions_are_surfaced() -> None:
    layer = TransactionLayer(destination=BRIDGE)
    invite = request()
    tx = layer.send_request(invite, 0.0)
    ok = answer(invite, 200, to_tag="leg-a")

    assert [type(e) for e in layer.receive(ok, 0.3, BRIDGE)] == [FinalReceived]
    assert tx.state is TransactionState.ACCEPTED
    assert isinstance(tx, ClientInviteTransaction) and tx.ack is None
    layer.data_to_send()

    repeated = layer.receive(ok, 0.8, BRIDGE)
    assert [type(e) for e in repeated] == [ResponseRepeated]
    forked = layer.receive(answer(invite, 200, to_tag="leg-b"), 0.9, BRIDGE)
    assert [type(e) for e in forked] == [FinalReceived]
    assert layer.data_to_send() == [], "the ACK for a 2xx is the agent's, not the transaction's"
    assert of_type(run_until(layer, 0.3 + 64 * T1 - 0.01), RequestRetransmitted) == []
    assert tx.state is TransactionState.ACCEPTED

    assert [type(e) for e in run_until(layer, 0.3 + 64 * T1)] == [TransactionTerminated]
    [stray] = layer.receive(ok, 40.0, BRIDGE)
    assert isinstance(stray, StrayResponse) and stray.response.status == 200


def test_cancel_responses_do_not_reach_the_invite_transaction() -> None:
    layer = TransactionLayer(destination=BRIDGE)
    invite = request()
    invite_tx = layer.send_request(invite, 0.0)
    layer.receive(answer(invite, 180), 0.1, BRIDGE)

    cancel_tx = layer.cancel(invite_tx, 1.0)

    cancel = cancel_tx.request
    assert cancel.method == "CANCEL" and cancel.cseq == (1, "CANCEL")
    assert cancel.top_via is not None and cancel.top_via.branch == "z9hG4bK-inv-1"
    events = layer.receive(answer(cancel, 200), 1.1, BRIDGE)
    assert kinds(events) == [(FinalReceived, cancel_tx)]
    assert invite_tx.state is TransactionState.PROCEEDING
    events = layer.receive(answer(invite, 487), 1.2, BRIDGE)
    assert kinds(events) == [
        (FinalReceived, invite_tx),
        (AckSent, invite_tx),
    ]


# --- client non-INVITE ---------------------------------------------------------------------


def test_non_invite_retransmissions_are_capped_at_t2_until_timer_f() -> None:
    layer = TransactionLayer(destination=BRIDGE)
    layer.send_request(request("BYE", to_tag="bridge-1", cseq=2), 0.0)
    events = run_until(layer, 100.0)
    times = [e.time for e in of_type(events, RequestRetransmitted)]
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert times == rfc_capped_retransmissions(T1, T2)
    assert [(e.time, e.timer) for e in of_type(events, TransactionTimedOut)] == [(32.0, "F")]


def test_non_invite_in_proceeding_retransmits_every_t2() -> None:
    layer = TransactionLayer(destination=BRIDGE)
    bye = request("BYE", to_tag="bridge-1", cseq=2)
    layer.send_request(bye, 0.0)
    layer.receive(answer(bye, 100), 0.2, BRIDGE)
    events = run_until(layer, 100.0)
    expected = [0.5 + k * T2 for k in range(8)]  # E still armed at T1, then T2 each time
    assert [e.time for e in of_type(events, RequestRetransmitted)] == expected
    assert [e.timer for e in of_type(events, TransactionTimedOut)] == ["F"]


def test_timer_k_keeps_absorbing_repeated_finals_for_t4() -> None:
    layer = TransactionLayer(destination=BRIDGE)
    options = request("OPTIONS", branch="z9hG4bK-opt")
    tx = layer.send_request(options, 0.0)
    ok = answer(options, 200)
    assert [type(e) for e in layer.receive(ok, 1.0, BRIDGE)] == [FinalReceived]
    assert tx.final_response is ok
    assert [type(e) for e in layer.receive(ok, 2.0, BRIDGE)] == [ResponseRepeated]
    assert run_until(layer, 1.0 + T4 - 0.01) == []
    events = run_until(layer, 1.0 + T4)
    assert [(type(e), e.time) for e in events] == [(TransactionTerminated, 6.0)]

    reliable = TransactionLayer(reliable=True, destination=BRIDGE)
    reliable.send_request(options, 0.0)
    assert TransactionTerminated in [type(e) for e in reliable.receive(ok, 1.0, BRIDGE)]


# --- server transactions -------------------------------------------------------------------


def test_server_non_invite_absorbs_retransmissions_and_repeats_its_answer() -> None:
    layer = TransactionLayer()
    bye = request("BYE", branch="z9hG4bK-bye", cseq=2, to_tag="us")

    [received] = layer.receive(wire(bye), 0.0, BRIDGE)
    assert isinstance(received, RequestReceived) and received.request.method == "BYE"
    tx = received.transaction
    assert isinstance(tx, ServerNonInviteTransaction)
    [early] = layer.receive(wire(bye), 0.5, BRIDGE)
    assert isinstance(early, RetransmissionAbsorbed) and early.response is None
    assert layer.data_to_send() == []

    ok = build_response(bye, 200)
    assert layer.respond(tx, ok, 0.6) == []
    [late] = layer.receive(wire(bye), 1.0, BRIDGE)
    assert isinstance(late, RetransmissionAbsorbed) and late.response is ok
    assert layer.data_to_send() == [(ok.to_bytes(), BRIDGE)] * 2
    with pytest.raises(TransactionStateError):
        layer.respond(tx, build_response(bye, 500), 1.1)

    assert run_until(layer, 0.6 + 64 * T1 - 0.01) == []
    assert [type(e) for e in run_until(layer, 0.6 + 64 * T1)] == [TransactionTerminated]


def test_server_invite_sends_100_and_repeats_it_for_a_retransmitted_invite() -> None:
    layer = TransactionLayer()
    invite = request()
    tx = new_server_transaction(layer, invite, 0.0)
    [(data, destination)] = layer.data_to_send()
    trying = parse_message(data)
    assert isinstance(trying, Response) and trying.status == 100 and destination == CALLER
    assert trying.to is not None and trying.to.tag is None

    [absorbed] = layer.receive(wire(invite), 0.5, CALLER)
    assert isinstance(absorbed, RetransmissionAbsorbed)
    assert absorbed.transaction is tx
    assert layer.data_to_send() == [(data, CALLER)]


def test_server_non_2xx_is_retransmitted_on_timer_g_until_timer_h() -> None:
    layer = TransactionLayer(send_trying=False)
    invite = request()
    tx = new_server_transaction(layer, invite, 0.0)
    challenge = build_response(invite, 401, to_tag="chal")
    layer.respond(tx, challenge, 0.0)

    events = run_until(layer, 100.0)

    resent = of_type(events, ResponseRetransmitted)
    intervals = [b - a for a, b in pairwise([0.0, *(e.time for e in resent)])]
    assert intervals[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert [e.time for e in resent] == rfc_capped_retransmissions(T1, T2)
    assert all(e.response is challenge for e in resent)
    assert [(e.time, e.timer) for e in of_type(events, TransactionTimedOut)] == [(32.0, "H")]
    assert layer.data_to_send() == [(challenge.to_bytes(), CALLER)] * (1 + len(resent))


def test_ack_for_non_2xx_is_absorbed_and_stops_timer_g() -> None:
    layer = TransactionLayer(send_trying=False)
    invite = request()
    tx = new_server_transaction(layer, invite, 0.0)
    busy = build_response(invite, 486, to_tag="busy")
    layer.respond(tx, busy, 0.0)
    run_until(layer, 2.0)
    layer.data_to_send()

    ack = request("ACK", to_tag="busy")
    events = layer.receive(wire(ack), 2.2, CALLER)

    assert kinds(events) == [(AckReceived, tx)]
    assert tx.state is TransactionState.CONFIRMED
    assert [type(e) for e in layer.receive(wire(ack), 3.0, CALLER)] == [AckReceived]
    events = run_until(layer, 100.0)
    assert [(type(e), e.time) for e in events] == [(TransactionTerminated, 2.2 + T4)]
    assert layer.data_to_send() == []


def test_server_2xx_is_resent_until_the_ack_with_a_new_branch() -> None:
    layer = TransactionLayer(send_trying=False)
    invite = request()
    tx = new_server_transaction(layer, invite, 0.0)
    assert isinstance(tx, ServerInviteTransaction)
    ok = build_response(invite, 200, to_tag="us")
    layer.respond(tx, ok, 0.0)
    events = run_until(layer, 4.0)
    assert [e.time for e in of_type(events, ResponseRetransmitted)] == [0.5, 1.5, 3.5]

    [absorbed] = layer.receive(wire(invite), 4.1, CALLER)
    assert isinstance(absorbed, RetransmissionAbsorbed) and absorbed.response is None
    ack = request("ACK", branch="z9hG4bK-ack-2xx", to_tag="us")
    assert kinds(layer.receive(wire(ack), 4.2, CALLER)) == [(AckReceived, tx)]
    assert tx.acked
    events = run_until(layer, 100.0)
    assert of_type(events, ResponseRetransmitted) == []
    assert [(type(e), e.time) for e in events] == [(TransactionTerminated, 64 * T1)]


def test_unacknowledged_2xx_times_out_on_timer_l() -> None:
    layer = TransactionLayer(send_trying=False)
    invite = request()
    tx = new_server_transaction(layer, invite, 0.0)
    layer.respond(tx, build_response(invite, 200, to_tag="us"), 0.0)
    events = run_until(layer, 100.0)
    assert [e.time for e in of_type(events, ResponseRetransmitted)] == (
        rfc_capped_retransmissions(T1, T2)
    )
    assert [(e.time, e.timer) for e in of_type(events, TransactionTimedOut)] == [(32.0, "L")]


def test_cancel_gets_its_own_transaction_and_finds_the_invite() -> None:
    layer = TransactionLayer()
    invite = request()
    tx = new_server_transaction(layer, invite, 0.0)
    cancel = request("CANCEL")
    [cancel_received] = layer.receive(wire(cancel), 0.3, CALLER)
    assert isinstance(cancel_received, RequestReceived)
    assert cancel_received.transaction is not tx
    assert layer.invite_for_cancel(cancel_received.request) is tx
    assert layer.invite_for_cancel(request("CANCEL", branch="z9hG4bK-other")) is None


def test_ack_matching_nothing_and_unknown_responses_are_reported() -> None:
    layer = TransactionLayer()
    ack = request("ACK", branch="z9hG4bK-nothing", to_tag="x")
    [event] = layer.receive(wire(ack), 1.0, CALLER)
    assert isinstance(event, AckReceived) and event.transaction is None
    [stray] = layer.receive(answer(request(branch="z9hG4bK-unknown"), 200), 1.0, BRIDGE)
    assert isinstance(stray, StrayResponse)
    assert len(layer) == 0


def test_unparseable_matching_fields_are_reported_not_raised() -> None:
    layer = TransactionLayer()
    broken = parse_message(request().to_bytes().replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"))
    [event] = layer.receive(broken, 0.0, CALLER)
    assert isinstance(event, MalformedMessage) and "CSeq" in event.reason
    assert len(layer) == 0 and layer.data_to_send() == []


def test_rfc_2543_requests_without_magic_cookie_are_matched() -> None:
    layer = TransactionLayer(send_trying=False)
    invite = request(branch="old-style-1")
    tx = new_server_transaction(layer, invite, 0.0)
    layer.respond(tx, build_response(invite, 404, to_tag="nf"), 0.0)
    [absorbed] = layer.receive(wire(invite), 0.1, CALLER)
    assert isinstance(absorbed, RetransmissionAbsorbed) and absorbed.response is not None
    ack = request("ACK", branch="old-style-1", to_tag="nf")
    assert kinds(layer.receive(wire(ack), 0.2, CALLER)) == [(AckReceived, tx)]


def test_thousands_of_transactions_each_keep_their_own_schedule() -> None:
    layer = TransactionLayer(destination=BRIDGE)
    count = 2000
    invites = [request(branch=f"z9hG4bK-{i}", call_id=f"c{i}") for i in range(count)]
    for i, invite in enumerate(invites):
        layer.send_request(invite, i * 0.001)
    for invite in invites[::2]:
        layer.receive(answer(invite, 100), 0.1, BRIDGE)
    events = run_until(layer, 100.0)
    resent = of_type(events, RequestRetransmitted)
    assert len(resent) == (count // 2) * len(rfc_invite_retransmissions(T1))
    assert len(of_type(events, TransactionTimedOut)) == count // 2
    assert len(layer) == count // 2
    assert layer.next_deadline() is None
