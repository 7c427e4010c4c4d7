"""The agent and ``sipharness call`` against SIPp as the far end (and stunnel for TLS).

SIPp runs fixtures/sipp/uas_auth.xml: 401 challenge, ``verifyauth`` of our answer, 180/200
with SDP, ACK, BYE → 200; a wrong answer gets 403. Debian's SIPp has no TLS (``-t l1``:
"To use a TLS transport you must compile SIPp with OpenSSL"), so TLS goes through stunnel
terminating TLS in front of SIPp's TCP port, with a certificate trustme makes at test time.
"""

from __future__ import annotations

import argparse
import itertools
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gevent
import gevent.socket
import pytest
import trustme

from sipharness.agent import Agent, Call, Credentials, TimerConfig, room_uri
from sipharness.commands import call as call_command
from sipharness.hostenv import free_port
from sipharness.net.transport import tls_client_context
from sipharness.sip.digest import parse_authorization
from sipharness.sip.message import Request, Response

pytestmark = [pytest.mark.integration, pytest.mark.sipp]

SCENARIO = Path(__file__).resolve().parents[2] / "fixtures" / "sipp" / "uas_auth.xml"
HANGUP = SCENARIO.with_name("uas_hangup.xml")
USER, PASSWORD = "alice", "s3cret-Pa55"
ROOM = "abc-defg-hij"
FAST = TimerConfig(t1=0.05)  # for timeouts; calls that complete use the default T1 (0.5 s)


def wait_bound(port: int, kind: int, within: float = 5.0, host: str = "127.0.0.1") -> None:
    """Wait until some process listens on host:port (binding it ourselves fails)."""
    deadline = time.monotonic() + within
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while time.monotonic() < deadline:
        with socket.socket(family, kind) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {host}:{port} after {within} s")


@dataclass
class Uas:
    port: int
    process: subprocess.Popen[bytes]

    def exit_code(self, within: float = 10.0) -> int:
        return self.process.wait(timeout=within)


@pytest.fixture
def sipp_uas(require_tool: Callable[[str], str], tmp_path: Path) -> Iterator[Callable[..., Uas]]:
    sipp = require_tool("sipp")
    started: list[subprocess.Popen[bytes]] = []

    def start(mode: str, host: str = "127.0.0.1", scenario: Path = SCENARIO) -> Uas:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        port = free_port(host, family)
        process = subprocess.Popen(
            [sipp, "-sf", str(scenario), "-i", host, "-p", str(port), "-t", mode,
             "-m", "1", "-timeout", "20", "-timeout_error", "-nostdin",
             *(["-set", "user", USER, "-set", "pass", PASSWORD] if scenario == SCENARIO else [])],
            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started.append(process)
        wait_bound(port, socket.SOCK_DGRAM if mode == "u1" else socket.SOCK_STREAM, host=host)
        return Uas(port, process)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)


def assert_clean_call(agent: Agent, uas: Uas, kind: str, host: str = "127.0.0.1") -> Call:
    call = agent.dial(room_uri(ROOM, host, uas.port),
                      credentials=Credentials(USER, PASSWORD))  # fmt: skip
    assert call.outcome.answered, call.outcome.failure
    agent.finish(call)
    assert call.outcome.ok and call.outcome.ending == "completed"
    assert call.outcome.challenged == 1 and call.outcome.torn_down_by == "us"
    invites = [e.message for e in call.record.sent("INVITE")]
    assert len(invites) == 2
    first, second = invites
    assert isinstance(first, Request) and isinstance(second, Request)
    assert first.call_id == second.call_id and second.cseq == (first.cseq[0] + 1, "INVITE")  # type: ignore[index]
    assert first.vias[0].branch != second.vias[0].branch
    auth = parse_authorization(second.header("authorization") or "")
    assert auth["username"] == USER and auth["uri"] == second.uri
    assert all(e.transport == kind for e in call.record.entries)
    firsts = [e.label.split()[0] for e in call.record.entries
              if not (e.note or e.repeated) and e.status != 100]  # fmt: skip
    assert firsts == ["INVITE", "401", "ACK", "INVITE", "180", "200", "ACK", "BYE", "200"]
    timings = call.record.timings
    assert timings["invite_to_200"] >= timings["auth_invite_to_200"] > 0
    assert call.remote_media is not None and call.remote_media.payload_type == 0
    assert uas.exit_code() == 0  # SIPp saw a valid Authorization, our ACK and our BYE
    return call


@pytest.mark.parametrize(("mode", "kind"), [("u1", "udp"), ("t1", "tcp")])
def test_call_completes_against_sipp(sipp_uas: Callable[..., Uas], mode: str, kind: str) -> None:
    uas = sipp_uas(mode)
    with Agent(kind) as agent:  # type: ignore[arg-type]
        assert_clean_call(agent, uas, kind.upper())


def test_call_completes_with_one_socket_per_call(sipp_uas: Callable[..., Uas]) -> None:
    uas = sipp_uas("u1")
    with Agent("udp", socket_mode="per_call", timers=TimerConfig(t1=0.1)) as agent:
        assert agent.transport is None
        call = assert_clean_call(agent, uas, "UDP")
        call.close()
        assert not call.transport.closed  # lingers one T1 for late retransmissions
        gevent.sleep(0.3)
        assert call.transport.closed


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
@pytest.mark.parametrize(("mode", "kind"), [("u1", "udp"), ("t1", "tcp")])
def test_call_completes_over_ipv6_loopback(
    sipp_uas: Callable[..., Uas], mode: str, kind: str
) -> None:
    uas = sipp_uas(mode, "::1")
    with Agent(kind, local_host="::1") as agent:  # type: ignore[arg-type]
        assert_clean_call(agent, uas, kind.upper(), host="::1")


def test_wrong_password_is_a_clear_failure(sipp_uas: Callable[..., Uas]) -> None:
    uas = sipp_uas("u1")
    with Agent("udp") as agent:
        call = agent.dial(room_uri(ROOM, "127.0.0.1", uas.port),
                          credentials=Credentials(USER, "not-the-password"))  # fmt: skip
    assert not call.outcome.answered
    assert call.outcome.ending == "auth_failed" and call.outcome.status == 403
    assert "403 Forbidden" in call.outcome.failure and "credentials" in call.outcome.failure
    assert [e.label.split()[0] for e in call.record.entries][-2:] == ["403", "ACK"]


def test_far_end_hangup_is_answered_and_counts_as_clean(sipp_uas: Callable[..., Uas]) -> None:
    uas = sipp_uas("u1", scenario=HANGUP)
    with Agent("udp") as agent:
        call = agent.dial(room_uri(ROOM, "127.0.0.1", uas.port))
        assert call.outcome.answered and call.outcome.challenged == 0
        assert call.wait_ended(5.0)
        agent.finish(call)
    assert call.outcome.ok and call.outcome.torn_down_by == "far end"
    assert call.record.sent("BYE") == []
    bye_answer = call.record.entries[-1].message
    assert isinstance(bye_answer, Response) and (bye_answer.status, bye_answer.cseq) == (
        200, (1, "BYE"))  # fmt: skip
    assert uas.exit_code() == 0  # SIPp got our 200 to its BYE


@pytest.fixture
def stunnel_in_front_of(require_tool: Callable[[str], str], tmp_path: Path
                        ) -> Iterator[Callable[[int], tuple[int, trustme.CA]]]:  # fmt: skip
    stunnel = require_tool("stunnel4")
    started: list[subprocess.Popen[bytes]] = []

    def start(backend_port: int) -> tuple[int, trustme.CA]:
        ca = trustme.CA()
        pem = tmp_path / "server.pem"
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
        port = free_port()
        conf = tmp_path / "stunnel.conf"
        conf.write_text(
            f"foreground = yes\npid =\noutput = {tmp_path / 'stunnel.log'}\n"
            f"[sip-tls]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend_port}\n"
            f"cert = {pem}\n"
        )
        process = subprocess.Popen([stunnel, str(conf)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        wait_bound(port, socket.SOCK_STREAM)
        return port, ca

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)


def test_call_completes_over_tls_through_stunnel(
    sipp_uas: Callable[..., Uas],
    stunnel_in_front_of: Callable[[int], tuple[int, trustme.CA]],
) -> None:
    uas = sipp_uas("t1")
    tls_port, ca = stunnel_in_front_of(uas.port)
    context = tls_client_context()
    ca.configure_trust(context)
    with Agent("tls", tls_client_context=context) as agent:
        call = agent.dial(room_uri(ROOM, "127.0.0.1", tls_port),
                          credentials=Credentials(USER, PASSWORD))  # fmt: skip
        assert call.outcome.answered, call.outcome.failure
        agent.finish(call)
    assert call.outcome.ok
    assert {e.transport for e in call.record.entries} == {"TLS"}
    invite = call.record.entries[0]
    assert isinstance(invite.message, Request)
    # we do not listen for TLS: sent-by and Contact name our end of the connection
    assert invite.message.vias[0].port == invite.local[1] != 0
    assert f":{invite.local[1]};transport=tls>" in (invite.message.header("contact") or "")
    assert uas.exit_code() == 0


def test_tls_with_an_untrusted_certificate_fails_before_any_sip(
    sipp_uas: Callable[..., Uas],
    stunnel_in_front_of: Callable[[int], tuple[int, trustme.CA]],
) -> None:
    uas = sipp_uas("t1")
    tls_port, _ = stunnel_in_front_of(uas.port)
    with Agent("tls", tls_client_context=tls_client_context()) as agent:
        call = agent.dial(room_uri(ROOM, "127.0.0.1", tls_port),
                          credentials=Credentials(USER, PASSWORD))  # fmt: skip
    assert call.outcome.ending == "transport_error"
    assert "certificate" in call.outcome.failure.lower()
    assert call.record.entries == []


class SilentUas:
    """A UDP socket that receives everything and answers nothing."""

    def __init__(self) -> None:
        self.sock = gevent.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.arrivals: list[float] = []
        self.greenlet = gevent.spawn(self._swallow)

    def _swallow(self) -> None:
        while True:
            self.sock.recv(65535)
            self.arrivals.append(time.monotonic())

    def close(self) -> None:
        self.greenlet.kill()
        self.sock.close()


@pytest.fixture
def silent_uas() -> Iterator[SilentUas]:
    uas = SilentUas()
    yield uas
    uas.close()


def dial_silent(uas: SilentUas, timers: TimerConfig) -> float:
    with Agent("udp", timers=timers) as agent:
        started = time.monotonic()
        call = agent.dial(room_uri(ROOM, "127.0.0.1", uas.port),
                          credentials=Credentials(USER, "x"),
                          within=64 * timers.t1 * 3)  # fmt: skip
        elapsed = time.monotonic() - started
    assert call.outcome.ending == "timeout"
    assert "Timer B" in call.outcome.failure and "64·T1" in call.outcome.failure
    return elapsed


def test_a_uas_that_never_answers_times_out_at_64_t1(silent_uas: SilentUas) -> None:
    elapsed = dial_silent(silent_uas, FAST)
    timer_b = 64 * FAST.t1
    assert timer_b <= elapsed < timer_b * 1.5
    # Timer A: the INVITE went out at 0, T1, 3·T1, 7·T1, 15·T1, 31·T1 and 63·T1 (the last
    # one may slip past Timer B at 64·T1 when the machine is busy)
    assert 6 <= len(silent_uas.arrivals) <= 7
    gaps = [b - a for a, b in itertools.pairwise(silent_uas.arrivals)]
    assert gaps[4] / gaps[3] == pytest.approx(2, rel=0.25)  # 16·T1 after 8·T1: doubling


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_uas_that_never_answers_times_out_at_32_s_with_default_timers(
    silent_uas: SilentUas,
) -> None:
    elapsed = dial_silent(silent_uas, TimerConfig())
    assert 32.0 <= elapsed < 34.0
    assert len(silent_uas.arrivals) == 7  # at T1 = 0.5 s the last resend is 0.5 s before B


def run_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    call_command.add_arguments(parser)
    code = call_command.run(parser.parse_args(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_call_command_prints_a_redacted_ladder_and_exits_0(
    sipp_uas: Callable[..., Uas], capsys: pytest.CaptureFixture[str]
) -> None:
    uas = sipp_uas("t1")
    code, out, err = run_command(
        [f"sip:{ROOM}@127.0.0.1:{uas.port}?X-100ms-Display-Name=John%20Doe",
         "--username", USER, "--password", PASSWORD, "--transport", "tcp",
         "--header", "X-100ms-UserID: xyz"], capsys)  # fmt: skip
    assert code == 0, out + err
    assert "INVITE" in out and "401 Unauthorized" in out and "BYE" in out
    assert PASSWORD not in out + err
    assert "answered" in out.splitlines()[-1].lower()


def test_call_command_wrong_password_exits_1_with_one_line(
    sipp_uas: Callable[..., Uas], capsys: pytest.CaptureFixture[str]
) -> None:
    uas = sipp_uas("u1")
    code, out, err = run_command(
        [f"sip:{ROOM}@127.0.0.1:{uas.port}", "--username", USER, "--password", "wrong-one"],
        capsys)  # fmt: skip
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "403" in err
    assert "wrong-one" not in out + err


def test_call_command_holds_until_the_far_end_hangs_up(
    sipp_uas: Callable[..., Uas], capsys: pytest.CaptureFixture[str]
) -> None:
    uas = sipp_uas("t1", scenario=HANGUP)
    started = time.monotonic()
    code, out, _ = run_command(
        [f"sip:{ROOM}@127.0.0.1:{uas.port}", "-t", "tcp", "--hold", "20"],
        capsys)  # fmt: skip
    assert code == 0 and time.monotonic() - started < 10  # did not sit out --hold 20
    assert out.splitlines()[-1].endswith("hung up by the far end")


def test_call_command_require_challenge_fails_an_unchallenged_call(
    sipp_uas: Callable[..., Uas], capsys: pytest.CaptureFixture[str]
) -> None:
    uas = sipp_uas("u1", scenario=HANGUP)
    code, _, err = run_command(
        [f"sip:{ROOM}@127.0.0.1:{uas.port}", "-u", USER, "-p", PASSWORD, "--hold", "5",
         "--require-challenge"], capsys)  # fmt: skip
    assert code == 1 and "no challenge" in err


def test_call_command_dials_sips_with_a_ca_file(
    sipp_uas: Callable[..., Uas],
    stunnel_in_front_of: Callable[[int], tuple[int, trustme.CA]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    uas = sipp_uas("t1")
    tls_port, ca = stunnel_in_front_of(uas.port)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    argv = [f"sips:{ROOM}@127.0.0.1:{tls_port}", "-u", USER, "-p", PASSWORD]
    code, out, err = run_command([*argv, "--tls-ca", str(ca_file), "-v"], capsys)
    assert code == 0, err
    assert f"INVITE sips:{ROOM}@127.0.0.1:{tls_port} SIP/2.0" in out
    assert "Via: SIP/2.0/TLS " in out and "Contact: <sips:" in out
    assert 'response="[REDACTED]"' in out and PASSWORD not in out + err
    code, _, err = run_command(argv, capsys)  # the system CAs do not know trustme's CA
    assert code == 4 and "certificate" in err.lower()


def test_call_command_timeout_exits_3(
    silent_uas: SilentUas, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_command(
        [f"sip:{ROOM}@127.0.0.1:{silent_uas.port}", "--username", USER, "--password", "p",
         "--t1", "0.02"], capsys)  # fmt: skip
    assert code == 3
    assert "timeout" in err.lower()


def test_connection_refused_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens there
    code, _, err = run_command(
        [f"sip:{ROOM}@127.0.0.1:{port}", "--transport", "tcp", "--username", USER,
         "--password", "p"], capsys)  # fmt: skip
    assert code == 4
    assert "refused" in err.lower()
