"""The webhook receiver and the bridge's webhook sender, against each other."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from sipharness.bridge.room_events import Peer, Roster, RosterServer, WebhookSender, envelope
from sipharness.webhooks import WebhookReceiver


def post(url: str, body: dict) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "X-S": "k"})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def peer(n: int = 1) -> Peer:
    return Peer(room_id="r1", room_name="room", session_id="s", peer_id=f"p{n}",
                user_id=f"u{n}", user_name="Ada", role="sip-caller", joined_at=time.time())


def test_receiver_collects_posts_and_can_fail_the_first_ones() -> None:
    with WebhookReceiver() as rx:
        rx.fail_next(1, status=503)
        assert post(rx.url, {"type": "a", "id": "1"}) == 503
        assert post(rx.url, {"type": "a", "id": "1"}) == 200
        assert [e.status for e in rx.deliveries()] == [503, 200]
        assert [e.id for e in rx.events("a")] == ["1"]
        assert rx.events()[0].headers["x-s"] == "k"
        rx.clear()
        assert rx.deliveries() == []
        with pytest.raises(TimeoutError, match="no webhook matching"):
            rx.wait_for("a", timeout=0.2)


def test_envelopes_have_the_100ms_shape() -> None:
    p = peer()
    join = envelope("peer.join.success", p, "app", "acct")
    leave = envelope("peer.leave.success", p, "app", "acct", left_at=p.joined_at + 2.4,
                     reason="peer left")
    assert set(join) == {"version", "id", "app_id", "account_id", "timestamp", "type", "data"}
    assert join["data"]["type"] == "sip" and join["data"]["joined_at"].endswith("Z")
    assert leave["data"]["duration"] == 2 and leave["data"]["reason"] == "peer left"
    assert join["id"] != leave["id"]


def test_sender_retries_with_the_same_envelope_until_accepted() -> None:
    with WebhookReceiver() as rx:
        rx.fail_next(2)
        sender = WebhookSender(rx.url, "X-Webhook-Secret", "shh", [0.1, 0.3, 1.0])
        try:
            env = envelope("peer.join.success", peer(), "app", "acct")
            sender.send(env)
            assert sender.drain(3.0)
        finally:
            sender.close()
        ids = [d.id for d in rx.deliveries()]
        assert ids == [env["id"]] * 3
        assert rx.events()[0].headers["x-webhook-secret"] == "shh"
        gaps = [d.received_at for d in rx.deliveries()]
        assert gaps[2] - gaps[0] >= 0.25


def test_sender_gives_up_after_the_last_retry() -> None:
    with WebhookReceiver() as rx:
        rx.fail_next(10)
        sender = WebhookSender(rx.url, "", "", [0.05, 0.1])
        try:
            sender.send(envelope("peer.join.success", peer(), "app", "acct"))
            assert sender.drain(3.0)
        finally:
            sender.close()
        assert len(rx.deliveries()) == 3 and sender.failed == 1


def test_roster_api_lists_the_peers_of_a_room() -> None:
    roster = Roster()
    server = RosterServer(roster, "127.0.0.1", 0)
    try:
        roster.join(peer(1))
        roster.join(peer(2))
        roster.leave(peer(1))
        with urllib.request.urlopen(f"{server.url}/v2/active-rooms/r1/peers", timeout=2) as r:
            peers = json.loads(r.read())["peers"]
        assert list(peers) == ["p2"] and peers["p2"]["user_id"] == "u2"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{server.url}/nope", timeout=2)
    finally:
        server.close()
