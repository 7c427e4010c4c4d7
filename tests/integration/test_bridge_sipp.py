"""SIPp's UAC with digest auth completes calls through the mock bridge, and every answered call
gives exactly one join and one leave webhook."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from sipharness.bridge.probe import DialIn, SipProbe, authenticated_call
from sipharness.bridge.process import MockBridge
from sipharness.webhooks import WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.sipp]

SCENARIO = Path(__file__).resolve().parents[2] / "fixtures" / "sipp" / "uac_auth.xml"


def run_sipp(sipp: str, bridge: MockBridge, tmp_path: Path, *, calls: int, rate: float,
             transport: str, timeout: float) -> subprocess.CompletedProcess[str]:
    args = bridge.sipp_uac_args(SCENARIO, calls=calls, rate=rate, transport=transport,
                                timeout=timeout)
    return subprocess.run([sipp, *args, "-trace_err", "-error_file",
                           str(tmp_path / "sipp_errors.log")],
                          capture_output=True, text=True, timeout=timeout + 15,
                          cwd=tmp_path, check=False)


def assert_one_join_and_leave_each(rx: WebhookReceiver, calls: int, room_id: str) -> None:
    joins = rx.wait_count("peer.join.success", calls, timeout=15)
    leaves = rx.wait_count("peer.leave.success", calls, timeout=15)
    assert len(joins) == len(leaves) == calls
    join_users = Counter(e.data["user_id"] for e in joins)
    assert set(join_users.values()) == {1}
    assert set(join_users) == {f"sipp-{n}" for n in range(1, calls + 1)}
    assert {e.data["peer_id"] for e in joins} == {e.data["peer_id"] for e in leaves}
    assert len({e.id for e in joins + leaves}) == 2 * calls
    for event in joins:
        assert event.data["type"] == "sip"
        assert event.data["room_id"] == room_id
        assert event.data["role"] == "sip-caller"
        assert event.data["user_name"] == f"SIPp Caller {event.data['user_id'][5:]}"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipp_calls_complete_and_announce_each_peer_once(
        require_tool: Callable[[str], str], tmp_path: Path, transport: str) -> None:
    sipp = require_tool("sipp")
    with WebhookReceiver() as rx, MockBridge(webhook_url=rx.url) as bridge:
        done = run_sipp(sipp, bridge, tmp_path, calls=20, rate=20, transport=transport,
                        timeout=20)
        errors = tmp_path / "sipp_errors.log"
        assert done.returncode == 0, errors.read_text() if errors.exists() else done.stdout
        assert bridge.config is not None
        assert_one_join_and_leave_each(rx, 20, bridge.config.rooms[0].room_id)
        assert bridge.log_text().count("call room=abc-defg-hij") == 20
        assert bridge.password not in bridge.log_text()
    assert bridge.returncode == 0


@pytest.mark.slow
def test_sipp_load_2000_calls_at_200_cps_without_a_failure(
        require_tool: Callable[[str], str], tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    with WebhookReceiver() as rx, MockBridge(webhook_url=rx.url,
                                             overrides={"capacity": {"max_calls": 1000}}
                                             ) as bridge:
        done = run_sipp(sipp, bridge, tmp_path, calls=2000, rate=200, transport="udp",
                        timeout=30)
        errors = tmp_path / "sipp_errors.log"
        assert done.returncode == 0, errors.read_text()[-3000:] if errors.exists() else ""
        assert bridge.config is not None
        assert_one_join_and_leave_each(rx, 2000, bridge.config.rooms[0].room_id)


def test_two_worker_processes_share_the_port_and_one_roster(
        require_tool: Callable[[str], str], tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    with WebhookReceiver() as rx, MockBridge(webhook_url=rx.url,
                                             overrides={"listen": {"workers": 2}}) as bridge:
        assert bridge.ready["workers"] == 2
        done = run_sipp(sipp, bridge, tmp_path, calls=40, rate=40, transport="udp-per-call",
                        timeout=20)
        assert done.returncode == 0, done.stdout[-2000:]
        assert bridge.config is not None
        room_id = bridge.config.rooms[0].room_id
        assert_one_join_and_leave_each(rx, 40, room_id)
        assert "bridge stopped" not in bridge.log_text()
        with SipProbe(bridge.sip_host, bridge.sip_port) as probe:
            call = DialIn(probe, bridge.room_code)
            final, _ = authenticated_call(probe, call, bridge.username, bridge.password,
                                          headers=("X-100ms-UserID: roster-check",))
            assert final is not None and final.status == 200
            probe.send(call.ack(final))
            rx.wait_for(lambda e: e.data.get("user_id") == "roster-check")
            peers = bridge.peers(room_id)
            assert [p["user_id"] for p in peers.values()] == ["roster-check"]
            probe.send(call.bye())
            probe.wait_status()
    assert bridge.returncode == 0
    assert bridge.log_text().count("bridge stopped") == 2
