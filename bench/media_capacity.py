"""How many concurrent 20 ms G.711 sessions one sipharness process holds, beside SIPp rtp_stream.

sipharness: N bidirectional sessions on one MediaEngine send to an echo peer in a second
process and measure loss, jitter and the echo round trip. A step passes with loss < 0.1 %.
SIPp: a UAC holds N calls, each with ``<exec rtp_stream>`` (send-only) towards a SIPp UAS
whose SDP points at a counting sink in a second process, which measures the same loss and
jitter per stream. CPU is the sender process's CPU time during the hold, per stream.

Usage: python bench/media_capacity.py [--steps 50,100,200] [--seconds 3] [--no-sipp]
       [--sipp-echo]   (echo with SIPp's C ``-rtp_echo``: the Python echo peer saturates
                        first, near 500 sessions = 50 000 packets/s through it)
Every process it starts is killed at the end; everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gevent
import psutil

from sipharness.hostenv import free_port
from sipharness.media import g711
from sipharness.media.engine import MediaEngine, MediaSession
from sipharness.media.sipp_echo import SippRtpEcho
from sipharness.media.source import ToneSource
from sipharness.media.stats import ReceiveStats

HOST = "127.0.0.1"
SIPP_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sipp"
LOSS_LIMIT = 0.001


@dataclass
class Step:
    """One load step's result."""

    tool: str
    streams: int
    packets: int
    loss_ratio: float
    jitter_ms: float
    latency_ms: float | None
    cpu_per_stream_pct: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.packets > 0 and self.loss_ratio < LOSS_LIMIT


def echo_peer(port: int, seconds: float, *, shared: bool = False) -> None:
    """A second process: echo every datagram on ``port`` to its sender for ``seconds``
    (``shared``: one of several processes on the port, SO_REUSEPORT; a 4 MiB receive buffer
    absorbs scheduling pauses)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((HOST, port))
    sock.settimeout(0.5)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, source = sock.recvfrom(2048)
        except TimeoutError:
            continue
        sock.sendto(data, source)


def rtp_sink(port: int, seconds: float) -> None:
    """A second process: count RTP per source and SSRC for ``seconds``; print totals as JSON."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((HOST, port))
    sock.settimeout(0.5)
    streams: dict[tuple[tuple[str, int], bytes], ReceiveStats] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, source = sock.recvfrom(2048)
        except TimeoutError:
            continue
        if len(data) < 12:
            continue
        stats = streams.setdefault((source, data[8:12]), ReceiveStats())  # SIPp shares a port
        stats.receive(
            int.from_bytes(data[8:12], "big"),
            int.from_bytes(data[2:4], "big"),
            int.from_bytes(data[4:8], "big"),
            time.monotonic(),
            data[1] & 0x7F,
        )
    expected = sum(s.expected for s in streams.values())
    print(
        json.dumps(
            {
                "streams": len(streams),
                "packets": sum(s.received for s in streams.values()),
                "expected": expected,
                "lost": sum(s.lost for s in streams.values()),
                "jitter_ms": sum(s.jitter_ms for s in streams.values()) / max(1, len(streams)),
            }
        )
    )


def _child(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.kill()
    if process is not None:
        process.wait(timeout=10)


def run_sipharness(streams: int, seconds: float, sipp: str | None) -> Step:
    """N sessions against the Python echo peer, or SIPp's ``-rtp_echo`` when ``sipp``."""
    with contextlib.ExitStack() as stack:
        if sipp:
            port = stack.enter_context(SippRtpEcho(sipp)).address[1]
        else:
            port = free_port()
            peer = _child("--echo-peer", str(port), str(seconds + 10))
            stack.callback(_kill, peer)
        return _hold_sessions(streams, seconds, port, "SIPp echo" if sipp else "Python echo")


def _hold_sessions(streams: int, seconds: float, port: int, peer_name: str) -> Step:
    engine = MediaEngine()
    sessions: list[MediaSession] = []
    try:
        time.sleep(0.3)
        source = ToneSource()
        for index in range(streams):
            session = MediaSession(engine, (HOST, 0), (HOST, port), source=source, rtcp=False)
            sessions.append(session.start())
            if index % 10 == 9:
                gevent.sleep(0.002)  # calls arrive spread out, not in one burst
        gevent.sleep(0.5)  # settle
        me = psutil.Process()
        cpu_before = sum(me.cpu_times()[:2])
        wall_before = time.monotonic()
        gevent.sleep(seconds)
        cpu = sum(me.cpu_times()[:2]) - cpu_before
        wall = time.monotonic() - wall_before
    finally:
        engine.stop_all()
    reports = [session.stats() for session in sessions]
    expected = sum(r.received.expected for r in reports)
    lost = sum(r.received.lost for r in reports) + sum(
        max(0, r.sent.packets - r.received.received - 2) for r in reports
    )
    latencies = [r.latency_avg_ms for r in reports if r.latency_avg_ms is not None]
    return Step(
        tool="sipharness (sendrecv + echo)",
        streams=streams,
        packets=sum(r.sent.packets for r in reports),
        loss_ratio=lost / max(1, expected),
        jitter_ms=sum(r.received.jitter_ms for r in reports) / max(1, streams),
        latency_ms=sum(latencies) / len(latencies) if latencies else None,
        cpu_per_stream_pct=100 * cpu / wall / streams,
        note=f"{peer_name}; engine lag max {engine.lag_max_ms:.1f} ms",
    )


def _sipp(sipp: str, scenario: str, workdir: Path, *args: str) -> subprocess.Popen[bytes]:
    command = [
        sipp, "-sf", str(SIPP_FIXTURES / scenario), "-i", HOST, "-mi", HOST,
        "-mp", str(free_port()), "-cp", str(free_port()), "-nostdin", "-timeout", "120s", *args,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def run_sipp(sipp: str, streams: int, seconds: float, workdir: Path) -> Step:
    (workdir / "tone.ulaw").write_bytes(b"".join(ToneSource().frames("PCMU", 160)))
    sink_port, uas_port = free_port(), free_port()
    ramp = 1.0
    hold_ms = int((ramp + seconds + 0.5) * 1000)
    sink = _child("--rtp-sink", str(sink_port), str(ramp + seconds + 1.5))
    uas = uac = None
    try:
        uas = _sipp(sipp, "uas_rtp_sink.xml", workdir, "-p", str(uas_port),
                    "-set", "sink", str(sink_port))  # fmt: skip
        time.sleep(0.3)
        rate = str(max(1, int(streams / ramp)))
        uac = _sipp(
            sipp, "uac_rtp_stream.xml", workdir, f"{HOST}:{uas_port}", "-p", str(free_port()),
            "-m", str(streams), "-l", str(streams), "-r", rate, "-d", str(hold_ms),
        )  # fmt: skip
        process = psutil.Process(uac.pid)
        time.sleep(ramp + 0.3)
        cpu_before = sum(process.cpu_times()[:2])
        wall_before = time.monotonic()
        time.sleep(seconds)
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        wall = time.monotonic() - wall_before
        out, _ = sink.communicate(timeout=30)
    finally:
        for process_ in (uac, uas, sink):
            _kill(process_)
    totals = json.loads(out.decode() or "{}")
    note = "send-only streams"
    if totals.get("streams") != streams:
        note = f"sink saw {totals.get('streams', 0)} of {streams} streams"
    return Step(
        tool="SIPp rtp_stream (send-only)",
        streams=streams,
        packets=totals.get("packets", 0),
        loss_ratio=totals.get("lost", 0) / max(1, totals.get("expected", 0)),
        jitter_ms=totals.get("jitter_ms", 0.0),
        latency_ms=None,
        cpu_per_stream_pct=100 * cpu / wall / streams,
        note=note,
    )


def print_step(step: Step) -> None:
    latency = "-" if step.latency_ms is None else f"{step.latency_ms:.2f}"
    print(
        f"{step.tool:30} {step.streams:6d} {step.packets:9d} {100 * step.loss_ratio:7.3f} "
        f"{step.jitter_ms:7.2f} {latency:>8} {step.cpu_per_stream_pct:8.3f}  "
        f"{'pass' if step.passed else 'FAIL'}  {step.note}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--steps", default="50,100,200", help="concurrent streams per step")
    parser.add_argument("--seconds", type=float, default=3.0, help="hold time per step")
    parser.add_argument("--no-sipp", action="store_true", help="skip the SIPp comparison")
    parser.add_argument(
        "--sipp-echo", action="store_true", help="echo with SIPp -rtp_echo, not a Python peer"
    )
    parser.add_argument("--echo-peer", nargs=2, metavar=("PORT", "SECONDS"), help=argparse.SUPPRESS)
    parser.add_argument("--rtp-sink", nargs=2, metavar=("PORT", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_peer:
        echo_peer(int(args.echo_peer[0]), float(args.echo_peer[1]))
        return 0
    if args.rtp_sink:
        rtp_sink(int(args.rtp_sink[0]), float(args.rtp_sink[1]))
        return 0
    steps = [int(n) for n in args.steps.split(",")]
    print(f"{g711.CLOCK_RATE // 160} packets/s per stream, loss limit {100 * LOSS_LIMIT}%")
    print(f"{'tool':30} {'streams':>6} {'packets':>9} {'loss%':>7} {'jit ms':>7} "
          f"{'rtt ms':>8} {'cpu%/st':>8}")  # fmt: skip
    results = []
    sipp = shutil.which("sipp")
    echo_sipp = sipp if args.sipp_echo else None
    if args.sipp_echo and not sipp:
        print("--sipp-echo needs SIPp (Debian: apt-get install sip-tester)")
        return 2
    for streams in steps:
        step = run_sipharness(streams, args.seconds, echo_sipp)
        print_step(step)
        results.append(step)
        if not step.passed:
            break
    if not args.no_sipp and sipp:
        with tempfile.TemporaryDirectory(prefix="sipharness-bench-") as workdir:
            for streams in steps:
                step = run_sipp(sipp, streams, args.seconds, Path(workdir))
                print_step(step)
                results.append(step)
    elif not args.no_sipp:
        print("SIPp not installed: comparison skipped (Debian: apt-get install sip-tester)")
    ours = [s for s in results if s.tool.startswith("sipharness") and s.passed]
    theirs = [s for s in results if s.tool.startswith("SIPp") and s.passed]
    if ours:
        print(f"sipharness held {max(s.streams for s in ours)} sessions with < 0.1 % loss")
    if ours and theirs:
        common = {s.streams for s in ours} & {s.streams for s in theirs}
        for streams in sorted(common):
            a = next(s for s in ours if s.streams == streams)
            b = next(s for s in theirs if s.streams == streams)
            print(
                f"at {streams} streams: CPU per stream sipharness/SIPp = "
                f"{a.cpu_per_stream_pct / max(b.cpu_per_stream_pct, 1e-6):.1f}x "
                "(sipharness also receives and measures every packet)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
