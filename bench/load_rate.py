"""Highest clean authenticated call rate of sipharness's Locust generator vs SIPp's UAC.

Both drive the same SIPp UAS (fixtures/sipp/uas_auth.xml: 401 challenge, verifyauth,
200, BYE) on loopback in the same run, each as ONE process, so the rate of each is per CPU
core. A rate is clean when every call completes and at least 90 % of the offered calls
were placed in the time. Then the most concurrent calls one generator process holds with
bidirectional 20 ms G.711 RTP (echoed by SIPp's -rtp_echo) at under 0.1 % loss.

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

from sipharness.hostenv import free_port  # noqa: E402

USER, PASSWORD, ROOM = "bench", "bench-secret", "abc-defg-hij"
SOURCE_PORTS = 1
"""SIP sockets in the Locust process, like SIPp's ``-t u1`` (one socket for every call)."""
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"


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


class SippUas:
    """SIPp's UAS with verifyauth (and RTP echo) on a free loopback port."""

    def __init__(self, sipp: str, workdir: Path) -> None:
        self.port = free_port()
        self.media_port = free_port()
        self.proc = subprocess.Popen(
            [sipp, "-sf", str(REPO / "fixtures/sipp/uas_auth.xml"), "-i", "127.0.0.1",
             "-p", str(self.port), "-mp", str(self.media_port), "-rtp_echo", "-t", "u1",
             "-set", "user", USER, "-set", "pass", PASSWORD, "-nostdin", "-max_recv_loops",
             "10000", "-buff_size", str(8 << 20)],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise SystemExit(f"SIPp UAS did not start (exit {self.proc.returncode})")

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


def locust_trial(uas: SippUas | None, rate: float, duration: float, workdir: Path, *,
                 hold: float = 0.0, users: int | None = None, rtp: str = "off") -> Trial:
    """One Locust process: ``users`` (default ``rate``) users, each a call every
    ``users / rate`` seconds, dialing ``uas`` (None: the embedded mock bridge)."""
    prefix = workdir / f"locust-{rate:g}-{users or 0}"
    count = users or max(1, round(rate))
    interval = str(count / rate) if rate else "0"
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
    if status not in (0, 1):
        print(f"  locust exited {status}: {err.strip().splitlines()[-1:]}")
    return Trial("sipharness", rate, completed, failed, elapsed, cpu, loss, drops)


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
    parser.add_argument("--rtp-echo", choices=("sipp", "mock"), default="sipp",
                        help="who echoes the RTP: SIPp's UAS (one media socket for all calls, "
                        "whose receive buffer overflows first) or the mock bridge")
    parser.add_argument("--skip-rtp", action="store_true", help="measure the call rate only")
    parser.add_argument("--skip-rate", action="store_true", help="measure the RTP calls only")
    args = parser.parse_args()
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
    echo = ("SIPp's UAS (-rtp_echo: one media socket for every call)" if args.rtp_echo == "sipp"
            else "the mock bridge (one RTP port per call)")
    print(f"concurrent calls with bidirectional 20 ms PCMU RTP, {hold:g} s hold, echoed by {echo}")
    best = 0
    for count in (int(c) for c in args.rtp_calls.split(",")):
        if args.rtp_echo == "sipp":
            with SippUas(sipp, workdir) as uas:
                t = locust_trial(uas, count / (hold + 1), hold + 2, workdir, hold=hold,
                                 users=count, rtp="on")  # fmt: skip
        else:
            t = locust_trial(None, count / (hold + 1), hold + 2, workdir, hold=hold,
                             users=count, rtp="on")  # fmt: skip
        t.offered = count
        ok = t.failed == 0 and t.completed >= count and t.loss is not None and t.loss < 0.001
        loss = "n/a" if t.loss is None else f"{100 * t.loss:.3f} %"
        print(f"  sipharness {count:5d} calls held: {t.completed} completed, {t.failed} "
              f"failed, RTP loss {loss}, {t.cpu_share:.2f} cores, kernel UDP drops "
              f"{t.udp_drops} -> {'ok' if ok else 'NOT ok'} "
              f"(host load average {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
        if not ok:
            break
        best = count
    print(f"most concurrent calls with RTP at < 0.1 % loss: sipharness {best}. SIPp's "
          "rtp_stream is not compared: SIPp counts no loss on the RTP it receives")


if __name__ == "__main__":
    raise SystemExit(main())
