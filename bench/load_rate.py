"""Highest clean authenticated call rate of sipharness's Locust generator vs SIPp's UAC.

Both drive the same SIPp UAS (fixtures/sipp/uas_auth.xml: 401 challenge, verifyauth,
200, BYE) on loopback in the same run, each as ONE process, so the rate of each is per CPU
core. A rate is clean when every call completes and at least 90 % of the offered calls
were placed in the time. Then the most concurrent calls one generator process holds with
bidirectional 20 ms G.711 RTP at under 0.1 % loss (echoed by the mock bridge in two worker
processes, a port per call; or by SIPp's -rtp_echo), with jitter and MOS, beside SIPp's
rtp_stream holding as many calls.

    python bench/load_rate.py                      # short defaults, ~3 minutes
    python bench/load_rate.py --duration 10 --max-rate 4000 --rtp-hold 20

Every run is bounded (-t for Locust, -m and -timeout for SIPp).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sipharness.bridge.process import MockBridge  # noqa: E402
from sipharness.hostenv import free_port  # noqa: E402

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from media_capacity import echo_peer, run_sipp  # noqa: E402

USER, PASSWORD, ROOM = "bench", "bench-secret", "abc-defg-hij"
SOURCE_PORTS = 1
"""SIP sockets in the Locust process, like SIPp's ``-t u1`` (one socket for every call)."""
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
MIN_MOS = 4.0
"""An RTP step also needs every call's MOS (the media engine's E-model) at least this."""


@dataclass
class Trial:
    """One run of one tool at one offered rate (or one count of held calls)."""

    tool: str
    offered: float
    completed: int
    failed: int
    elapsed: float
    cpu_seconds: float
    loss: float | None = None
    jitter: str = "n/a"
    mos: str = "n/a"
    mos_worst: float | None = None
    udp_drops: str = "n/a"
    """The kernel's UDP receive drops on this host during the trial (InErrors / RcvbufErrors)."""

    @property
    def cpu_share(self) -> float:
        """CPU cores used on average (1.0 = one core busy all the time)."""
        return self.cpu_seconds / self.elapsed if self.elapsed else 0.0

    def clean(self, duration: float) -> bool:
        return self.failed == 0 and self.completed >= 0.9 * self.offered * duration


def run_measured(args: list[str], timeout: float, cwd: Path) -> tuple[int, float, float, str]:
    """Run a process to its end: (exit status, wall seconds, CPU seconds, stderr tail)."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
    return proc.returncode, time.monotonic() - started, usage.ru_utime + usage.ru_stime, tail


class EchoBridge:
    """The mock bridge in its own processes (``listen.workers``), echoing each call's RTP on
    a port of its own, with room for every call (``capacity.max_calls``)."""

    def __init__(self, workers: int) -> None:
        self.bridge = MockBridge(transports=("udp",), overrides={
            "listen": {"workers": workers},
            "capacity": {"max_calls": 20000},
            "auth": {"flood": {"rate": 100000, "burst": 100000}},
            "media": {"mode": "echo"}})  # fmt: skip

    def __enter__(self) -> EchoBridge:
        self.bridge.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bridge.stop()
        self.bridge.cleanup()

    def target_args(self) -> list[str]:
        return ["--sip-target", self.bridge.target(), "--sip-username", self.bridge.username,
                "--sip-password", self.bridge.password, "--room-code", self.bridge.room_code]


class SippUas:
    """SIPp's UAS with verifyauth (and RTP echo) on a free loopback port."""

    def __init__(self, sipp: str, workdir: Path, *, echo_workers: int = 0,
                 seconds: float = 120.0) -> None:  # fmt: skip
        self.port = free_port()
        self.media_port = free_port()
        self.echoes: list[subprocess.Popen[bytes]] = []
        scenario = REPO / "fixtures/sipp/uas_auth.xml"
        echo = ["-rtp_echo"]
        if echo_workers:
            # The SDP answer names a port that echo_workers processes share (SO_REUSEPORT):
            # each call's RTP lands on one of them, each with its own large receive buffer.
            echo_port = free_port()
            self.echoes = [subprocess.Popen(
                [sys.executable, __file__, "--echo-worker", str(echo_port), f"{seconds:g}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(echo_workers)]  # fmt: skip
            text = scenario.read_text().replace("m=audio [media_port]", f"m=audio {echo_port}")
            scenario = workdir / "uas_auth_echo_workers.xml"
            scenario.write_text(text)
            echo = []
        self.proc = subprocess.Popen(
            [sipp, "-sf", str(scenario), "-i", "127.0.0.1",
             "-p", str(self.port), "-mp", str(self.media_port), *echo, "-t", "u1",
             "-set", "user", USER, "-set", "pass", PASSWORD, "-nostdin", "-max_recv_loops",
             "10000", "-buff_size", str(8 << 20)],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if self.proc.poll() is not None or any(e.poll() is not None for e in self.echoes):
            self.close()
            raise SystemExit(f"SIPp UAS or an echo worker did not start (SIPp exit "
                             f"{self.proc.returncode})")

    def __enter__(self) -> SippUas:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for echo in self.echoes:
            echo.kill()
            echo.wait()


def echo_worker(port: int, seconds: float) -> None:
    """One of the processes sharing the answered RTP port: echo for ``seconds``."""
    echo_peer(port, seconds, shared=True)


def locust_trial(uas: SippUas | EchoBridge | None, rate: float, duration: float, workdir: Path,
                 *, hold: float = 0.0, users: int | None = None, rtp: str = "off") -> Trial:
    """One Locust process: ``users`` (default ``rate``) users, each a call every
    ``users / rate`` seconds, dialing ``uas`` (None: the embedded mock bridge)."""
    prefix = workdir / f"locust-{rate:g}-{users or 0}"
    count = users or max(1, round(rate))
    interval = str(count / rate) if rate else "0"
    if isinstance(uas, EchoBridge):
        target = uas.target_args()
    else:
        target = [] if uas is None else [
            "--sip-target", f"127.0.0.1:{uas.port}", "--sip-username", USER,
            "--sip-password", PASSWORD, "--room-code", ROOM]
    status, elapsed, cpu, err = run_measured(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(count),
         "-r", str(count), "-t", f"{duration + 1:g}s", "--stop-timeout", f"{hold + 3:g}",
         *target, "--call-interval", interval,
         "--hold", f"{hold:g}", "--rtp", rtp, "--csv", str(prefix), "--only-summary",
         "--source-ports", str(SOURCE_PORTS)],
        timeout=duration + hold + 60, cwd=workdir)
    rows: dict[str, dict[str, str]] = {}
    stats = Path(f"{prefix}_stats.csv")
    if stats.exists():
        with stats.open(newline="") as f:
            rows = {r["Name"]: r for r in csv.DictReader(f)}
    completed = int(rows.get("BYE → 200", {}).get("Request Count", 0))
    failed = int(rows.get("Aggregated", {}).get("Failure Count", 0))
    loss = None
    drops = "n/a"
    sip = Path(f"{prefix}_sip.csv")
    if sip.exists():
        with sip.open(newline="") as f:
            table = {r["statistic"]: r["value"] for r in csv.DictReader(f)}
        text = table.get("RTP loss", "n/a").rstrip(" %")
        loss = None if text == "n/a" else float(text) / 100
        drops = table.get("local: kernel UDP drops (InErrors / RcvbufErrors)", "n/a")
        jitter = table.get("RTP jitter (mean of calls)", "n/a")
        mos = (f"{table.get('RTP MOS (mean of calls)', 'n/a')} mean, "
               f"{table.get('RTP MOS (worst call)', 'n/a')} worst")  # fmt: skip
    if status not in (0, 1):
        print(f"  locust exited {status}: {err.strip().splitlines()[-1:]}")
    trial = Trial("sipharness", rate, completed, failed, elapsed, cpu, loss, udp_drops=drops)
    if sip.exists():
        trial.jitter, trial.mos = jitter, mos
        worst = table.get("RTP MOS (worst call)", "n/a")
        trial.mos_worst = None if worst == "n/a" else float(worst)
    return trial


def sipp_trial(sipp: str, uas: SippUas, rate: float, duration: float, workdir: Path, *,
               hold: float = 0.0, calls: int | None = None) -> Trial:
    """One SIPp UAC process at ``rate`` for ``duration`` seconds (or ``calls`` calls)."""
    total = calls or max(1, round(rate * duration))
    status, elapsed, cpu, _ = run_measured(
        [sipp, "-sf", str(REPO / "fixtures/sipp/uac_auth.xml"), "-s", ROOM, "-au", USER,
         "-ap", PASSWORD, "-auth_uri", f"{ROOM}@127.0.0.1:{uas.port}", "-m", str(total),
         "-r", f"{rate:g}", "-l", str(total), "-d", str(int(hold * 1000)), "-t", "u1",
         "-i", "127.0.0.1", "-p", str(free_port()), "-timeout", f"{duration + hold + 30:g}s",
         "-timeout_error", "-nostdin", "-buff_size", str(8 << 20),
         f"127.0.0.1:{uas.port}"],
        timeout=duration + hold + 60, cwd=workdir)
    # SIPp exits 0 when every call succeeded, 1 when at least one failed.
    return Trial("SIPp", rate, total if status == 0 else 0, 0 if status == 0 else 1,
                 elapsed, cpu)


def highest_clean(trial: Callable[[float], Trial], duration: float, start: float,
                  maximum: float) -> tuple[Trial | None, list[Trial]]:  # fmt: skip
    """Double the rate until a trial is not clean, then bisect twice between the last two."""
    trials: list[Trial] = []
    best: Trial | None = None
    rate, bad = start, None
    while rate <= maximum:
        t = trial(rate)
        trials.append(t)
        report(t, duration)
        if not t.clean(duration):
            bad = rate
            break
        best, rate = t, rate * 2
    low = best.offered if best else 0.0
    for _ in range(2 if bad else 0):
        mid = round((low + bad) / 2) if bad else low
        if mid in (low, bad):
            break
        t = trial(mid)
        trials.append(t)
        report(t, duration)
        if t.clean(duration):
            best, low = t, mid
        else:
            bad = mid
    return best, trials


def report(t: Trial, duration: float) -> None:
    verdict = "clean" if t.clean(duration) else "NOT clean"
    loss = "" if t.loss is None else f", RTP loss {100 * t.loss:.3f} %"
    print(f"  {t.tool:10} offered {t.offered:7.0f}/s: {t.completed:6d} calls, "
          f"{t.failed} failed, {t.cpu_share:.2f} cores{loss} -> {verdict} "
          f"(host load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per rate trial")
    parser.add_argument("--start-rate", type=float, default=50.0)
    parser.add_argument("--max-rate", type=float, default=3200.0)
    parser.add_argument("--rtp-hold", type=float, default=8.0,
                        help="seconds each call holds with RTP in the concurrency trials")
    parser.add_argument("--rtp-calls", default="50,100,200,400,800",
                        help="concurrent call counts to try with RTP, in order")
    parser.add_argument("--rtp-echo", choices=("workers", "bridge", "sipp", "mock"),
                        default="workers",
                        help="who echoes the RTP: SIPp's UAS answering with a port that "
                        "--echo-workers plain echo processes share (default), the mock bridge "
                        "in --bridge-workers processes (a port per call, but its own G.711 "
                        "pacing), SIPp's UAS -rtp_echo (one media socket with the default "
                        "receive buffer: it overflows first), or the bridge Locust embeds")
    parser.add_argument("--echo-workers", type=int, default=2,
                        help="echo processes sharing the answered RTP port (--rtp-echo workers)")
    parser.add_argument("--bridge-workers", type=int, default=2,
                        help="processes of the echoing mock bridge (--rtp-echo bridge)")
    parser.add_argument("--skip-sipp-rtp", action="store_true",
                        help="do not run SIPp's rtp_stream beside each RTP step")
    parser.add_argument("--skip-rtp", action="store_true", help="measure the call rate only")
    parser.add_argument("--skip-rate", action="store_true", help="measure the RTP calls only")
    parser.add_argument("--echo-worker", nargs=2, metavar=("PORT", "SECONDS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_worker:
        echo_worker(int(args.echo_worker[0]), float(args.echo_worker[1]))
        return 0
    sipp = shutil.which("sipp")
    if sipp is None:
        print("bench: SIPp is not installed (Debian: apt-get install sip-tester)")
        return 2
    with tempfile.TemporaryDirectory(prefix="sipharness-bench-") as tmp:
        workdir = Path(tmp)

        def ours_at(rate: float) -> Trial:
            with SippUas(sipp, workdir) as uas:  # a fresh UAS per trial: no carry-over
                return locust_trial(uas, rate, args.duration, workdir)

        def theirs_at(rate: float) -> Trial:
            with SippUas(sipp, workdir) as uas:
                return sipp_trial(sipp, uas, rate, args.duration, workdir)

        if not args.skip_rate:
            rate_comparison(args, ours_at, theirs_at)
        if not args.skip_rtp:
            rtp_capacity(sipp, args, workdir)
    return 0


def rate_comparison(args: argparse.Namespace, ours_at: Callable[[float], Trial],
                    theirs_at: Callable[[float], Trial]) -> None:  # fmt: skip
    """Highest clean rate of each tool, and the ratios."""
    print(f"authenticated call rate, one process each, against SIPp's UAS "
          f"({args.duration:g} s per trial)")
    ours, _ = highest_clean(ours_at, args.duration, args.start_rate, args.max_rate)
    theirs, _ = highest_clean(theirs_at, args.duration, args.start_rate, args.max_rate)
    a = ours.offered if ours else 0.0
    b = theirs.offered if theirs else 0.0
    if theirs is not None and b >= args.max_rate:
        print(f"  (SIPp was clean at --max-rate {args.max_rate:g}: its real limit is higher)")
    print(f"highest clean rate, one process each: sipharness {a:g} calls/s, SIPp {b:g} "
          f"calls/s; ratio sipharness/SIPp = {a / b if b else float('nan'):.2f}")
    per_core = [t.completed / t.cpu_seconds if t and t.cpu_seconds else 0.0
                for t in (ours, theirs)]  # fmt: skip
    print(f"calls per CPU-second at that rate (process start included): sipharness "
          f"{per_core[0]:.0f}, SIPp {per_core[1]:.0f}; ratio "
          f"{per_core[0] / per_core[1] if per_core[1] else float('nan'):.2f}")


def rtp_capacity(sipp: str, args: argparse.Namespace, workdir: Path) -> None:
    """Most calls held at once with 20 ms G.711 both ways at < 0.1 % loss (one process)."""
    hold = args.rtp_hold
    echo = {"sipp": "SIPp's UAS (-rtp_echo: one media socket for every call)",
            "workers": f"{args.echo_workers} echo processes sharing the answered port "
                       "(SO_REUSEPORT, 4 MiB receive buffer each); SIPp's UAS answers",
            "mock": "the mock bridge Locust embeds (one process, one RTP port per call)",
            "bridge": f"the mock bridge in {args.bridge_workers} worker processes (one RTP "
                      "port per call)"}[args.rtp_echo]  # fmt: skip
    print(f"concurrent calls with bidirectional 20 ms PCMU RTP, {hold:g} s hold, echoed by {echo}")
    best = 0
    for count in (int(c) for c in args.rtp_calls.split(",")):
        rate = count / (hold + 1)
        if args.rtp_echo in ("sipp", "workers"):
            workers = args.echo_workers if args.rtp_echo == "workers" else 0
            with SippUas(sipp, workdir, echo_workers=workers, seconds=hold + 60) as uas:
                t = locust_trial(uas, rate, hold + 2, workdir, hold=hold, users=count, rtp="on")
        elif args.rtp_echo == "bridge":
            with EchoBridge(args.bridge_workers) as bridge:
                t = locust_trial(bridge, rate, hold + 2, workdir, hold=hold, users=count,
                                 rtp="on")  # fmt: skip
        else:
            t = locust_trial(None, rate, hold + 2, workdir, hold=hold, users=count, rtp="on")
        t.offered = count
        # Loss is counted per RFC 3550 from the first packet that came back, so packets lost
        # before it are not; a poor MOS (echo round trip and jitter) flags such a step too.
        ok = (t.failed == 0 and t.completed >= count and t.loss is not None and t.loss < 0.001
              and t.mos_worst is not None and t.mos_worst >= MIN_MOS)  # fmt: skip
        loss = "n/a" if t.loss is None else f"{100 * t.loss:.3f} %"
        print(f"  sipharness {count:5d} calls held: {t.completed} completed, {t.failed} "
              f"failed, RTP loss {loss}, jitter {t.jitter}, MOS {t.mos}, {t.cpu_share:.2f} "
              f"cores, kernel UDP drops {t.udp_drops} -> {'ok' if ok else 'NOT ok'} "
              f"(host load average {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
        if not args.skip_sipp_rtp:
            s = run_sipp(sipp, count, hold, workdir)
            print(f"  SIPp       {count:5d} calls held: rtp_stream send-only to a counting "
                  f"sink: {s.packets} packets, loss {100 * s.loss_ratio:.3f} %, jitter "
                  f"{s.jitter_ms:.2f} ms, {s.cpu_per_stream_pct * count / 100:.2f} cores "
                  f"{s.note} -> {'ok' if s.passed else 'NOT ok'} "
                  f"(host load average {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
        if not ok:
            break
        best = count
    print(f"most concurrent calls with RTP at < 0.1 % loss and every call's MOS >= {MIN_MOS:g}: "
          f"sipharness {best} (SIPp's "
          "rtp_stream sends only and SIPp counts no loss on RTP it receives: its column is "
          "measured by a counting sink)")


if __name__ == "__main__":
    raise SystemExit(main())
