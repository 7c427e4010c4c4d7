"""Highest clean call rate with digest auth: the mock bridge beside SIPp's own UAS, same run.

Both targets are driven by SIPp's UAC (fixtures/sipp/uac_auth.xml) on loopback with a rising
call rate; a step is clean when every call succeeds (and, for the bridge, every answered call
gave one join and one leave webhook). Prints each step, both highest clean rates and their
ratio. Not a test: run it by hand, e.g.  .venv/bin/python bench/bridge_rate.py
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sipharness.bridge.process import MockBridge  # noqa: E402
from sipharness.hostenv import free_port  # noqa: E402
from sipharness.webhooks import WebhookReceiver  # noqa: E402

UAC = ROOT / "fixtures" / "sipp" / "uac_auth.xml"
UAS = ROOT / "fixtures" / "sipp" / "uas_auth.xml"
DEFAULT_RATES = (100, 200, 300, 400, 500, 600, 700, 800, 1000, 1300, 1600, 2000, 2500, 3000)
USER, PASSWORD, ROOM = "bench", "bench-secret", "abc-defg-hij"


@dataclass
class Step:
    """One rate tried against one target."""

    rate: int
    calls: int
    ok: int
    failed: int
    seconds: float
    clean: bool
    note: str = ""


def sipp_counts(output: str) -> tuple[int, int]:
    """(successful, failed) calls from SIPp's final statistics screen."""
    def last(label: str) -> int:
        found = re.findall(rf"{label}\s+\|\s+\d+\s+\|\s+(\d+)", output)
        return int(found[-1]) if found else 0
    return last("Successful call"), last("Failed call")


def run_uac(sipp: str, host: str, port: int, rate: int, seconds: float,
            transport: str, workdir: Path) -> Step:
    calls = max(1, int(rate * seconds))
    timeout = seconds + 10
    cmd = [sipp, "-sf", str(UAC), "-s", ROOM, "-au", USER, "-ap", PASSWORD,
           "-auth_uri", f"{ROOM}@{host}:{port}", "-m", str(calls), "-r", str(rate),
           "-t", {"udp": "u1", "tcp": "t1", "udp-per-call": "un"}[transport],
           "-timeout", f"{timeout:g}s", "-timeout_error", "-nostdin", "-i", host,
           "-max_socket", "4096", f"{host}:{port}"]
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 15,
                          cwd=workdir, check=False)
    elapsed = time.monotonic() - start
    ok, failed = sipp_counts(done.stdout)
    late = elapsed > seconds * 1.2 + 0.5
    clean = done.returncode == 0 and ok == calls and failed == 0 and not late
    note = "" if clean else f"exit {done.returncode}" + (", fell behind" if late else "")
    return Step(rate, calls, ok, failed, elapsed, clean, note)


def climb(name: str, rates: tuple[int, ...], attempt: Callable[[int], Step],
          deadline: float) -> int:
    """Try rising rates until one is not clean (one retry each); the highest clean rate."""
    best = 0
    for rate in rates:
        if time.monotonic() > deadline:
            print(f"  {name}: time budget used up, stopping at {best} calls/s")
            break
        step = attempt(rate)
        if not step.clean:
            step = attempt(rate)
        print(f"  {name:<12} {rate:>5} calls/s  {step.ok:>5}/{step.calls:<5} ok  "
              f"{step.failed:>4} failed  {step.seconds:5.1f}s  "
              f"{'clean' if step.clean else 'NOT clean: ' + step.note}", flush=True)
        if not step.clean:
            break
        best = rate
    return best


def bench_bridge(sipp: str, rates: tuple[int, ...], seconds: float, transport: str,
                 webhooks: bool, workers: int, workdir: Path, deadline: float) -> int:
    config = {"listen": {"workers": workers},
              "auth": {"credentials": [{"username": USER, "password": PASSWORD}]},
              "rooms": [{"room_code": ROOM, "room_id": "bench-room", "room_name": "bench"}],
              "media": {"mode": "none"}, "capacity": {"max_calls": 5000},
              "roster": {"port": 0}}
    with WebhookReceiver() as rx, MockBridge(config, webhook_url=rx.url if webhooks else None,
                                             ) as bridge:
        def attempt(rate: int) -> Step:
            rx.clear()
            step = run_uac(sipp, bridge.sip_host, bridge.sip_port, rate, seconds, transport,
                           workdir)
            if webhooks and step.clean:
                try:
                    rx.wait_count("peer.leave.success", step.ok, timeout=20.0)
                    joins = len(rx.events("peer.join.success"))
                    leaves = len(rx.events("peer.leave.success"))
                except TimeoutError as exc:
                    step.clean, step.note = False, str(exc)
                else:
                    if joins != step.ok or leaves != step.ok:
                        step.clean = False
                        step.note = f"{joins} joins / {leaves} leaves for {step.ok} calls"
            return step

        return climb("mock bridge", rates, attempt, deadline)


def bench_sipp_uas(sipp: str, rates: tuple[int, ...], seconds: float, transport: str,
                   workdir: Path, deadline: float) -> int:
    port = free_port()
    flag = {"udp": "u1", "tcp": "t1", "udp-per-call": "un"}[transport]
    uas = subprocess.Popen([sipp, "-sf", str(UAS), "-p", str(port), "-i", "127.0.0.1",
                            "-t", flag, "-set", "user", USER, "-set", "pass", PASSWORD,
                            "-nostdin", "-max_socket", "4096"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir)
    try:
        time.sleep(0.5)
        return climb("SIPp UAS", rates,
                     lambda rate: run_uac(sipp, "127.0.0.1", port, rate, seconds, transport,
                                          workdir), deadline)
    finally:
        uas.terminate()
        try:
            uas.wait(timeout=5)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default=",".join(str(r) for r in DEFAULT_RATES),
                        help="comma-separated call rates to climb (calls/s)")
    parser.add_argument("--seconds", type=float, default=2.5,
                        help="length of each step in seconds (calls = rate x seconds)")
    parser.add_argument("--transport", choices=("udp", "tcp", "udp-per-call"),
                        default="udp-per-call",
                        help="SIPp transport: one UDP socket (u1), TCP (t1), or a UDP socket "
                        "per call (un)")
    parser.add_argument("--workers", type=int, default=2,
                        help="bridge processes sharing the port (use with udp-per-call)")
    parser.add_argument("--no-webhooks", action="store_true",
                        help="do not require the bridge's join/leave webhooks per call")
    parser.add_argument("--budget", type=float, default=110.0,
                        help="stop climbing after this many seconds in all")
    args = parser.parse_args(argv)
    sipp = shutil.which("sipp")
    if sipp is None:
        print("bridge_rate: SIPp is not installed (Debian: apt-get install sip-tester)",
              file=sys.stderr)
        return 2
    rates = tuple(int(r) for r in args.rates.split(",") if r.strip())
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sipharness-bench-") as tmp:
        workdir = Path(tmp)
        print(f"clean call rate with digest auth, {args.transport}, {args.seconds:g}s steps, "
              f"{args.workers} bridge process(es)")
        half = start + args.budget / 2
        bridge = bench_bridge(sipp, rates, args.seconds, args.transport,
                              not args.no_webhooks, args.workers, workdir, half)
        uas = bench_sipp_uas(sipp, rates, args.seconds, args.transport, workdir,
                             start + args.budget)
    ratio = bridge / uas if uas else 0.0
    capped = " (the highest rate tried: raise --rates)" if uas == rates[-1] else ""
    print(f"mock bridge: {bridge} calls/s   SIPp UAS: {uas} calls/s{capped}   "
          f"ratio {ratio:.2f}   ({time.monotonic() - start:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
