"""Does the capture keep up with a load run? SIPp uac -> uas at RATE calls/s on loopback
under sipharness.capture; compares the packets SIPp counted with the packets in the pcap.

    .venv/bin/python bench/capture_rate.py                  # 500 calls/s for 3 s, tcpdump
    .venv/bin/python bench/capture_rate.py --backend scapy --rate 200 --seconds 2
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sipharness.capture import Capture
from sipharness.hostenv import free_port


def sipp_wire_packets(counts_csv: Path) -> int:
    """Messages the uac sent and received (with retransmissions and unexpected ones),
    from the last row of SIPp's ``-trace_counts`` file."""
    with counts_csv.open(newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    header, last = rows[0], rows[-1]
    suffixes = ("_Sent", "_Recv", "_Retrans", "_Unexp")
    return sum(
        int(v)
        for name, v in zip(header, last, strict=False)
        if name.endswith(suffixes) and v.strip().isdigit()
    )


def pcap_packets(path: Path) -> int:
    from scapy.utils import RawPcapReader

    with RawPcapReader(str(path)) as reader:
        return sum(1 for _ in reader)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=500, help="calls per second (500)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the run (3)")
    parser.add_argument("--backend", choices=["tcpdump", "scapy"], default="tcpdump")
    args = parser.parse_args()
    sipp = shutil.which("sipp")
    if sipp is None:
        print("sipp is not installed (Debian: apt-get install sip-tester)", file=sys.stderr)
        return 2
    calls = max(1, int(args.rate * args.seconds))
    uas_port, uac_port = free_port(), free_port()
    common = ["-i", "127.0.0.1", "-nostdin", "-timeout", f"{args.seconds + 30:.0f}s"]
    with tempfile.TemporaryDirectory(prefix="sipharness-bench-") as tmp:
        work = Path(tmp)
        uas = subprocess.Popen(
            [sipp, "-sn", "uas", "-p", str(uas_port), *common],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.3)
            with Capture(
                bpf=f"udp port {uas_port} or udp port {uac_port}",
                path=work / "bench.pcap",
                backend=args.backend,
            ) as cap:
                started = time.monotonic()
                subprocess.run(
                    [
                        sipp,
                        "-sn",
                        "uac",
                        f"127.0.0.1:{uas_port}",
                        "-p",
                        str(uac_port),
                        "-r",
                        str(args.rate),
                        "-m",
                        str(calls),
                        "-l",
                        str(args.rate * 4),
                        "-trace_counts",
                        "-fd",
                        "1",
                        *common,
                    ],
                    cwd=work,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=args.seconds + 60,
                    check=False,
                )
                elapsed = time.monotonic() - started
                time.sleep(0.2)
        finally:
            uas.kill()
            uas.wait()
        counts = sorted(work.glob("*_counts.csv"))
        if not counts:
            print("SIPp wrote no -trace_counts file", file=sys.stderr)
            return 1
        sent = sipp_wire_packets(counts[-1])
        captured = pcap_packets(cap.path)
    print(f"backend          {args.backend}")
    print(
        f"calls            {calls} at {args.rate}/s, SIPp ran {elapsed:.1f} s "
        f"({calls / elapsed:.0f} calls/s achieved)"
    )
    print(f"SIPp counted     {sent} messages sent+received")
    print(f"pcap holds       {captured} packets")
    print(f"capturer says    {cap.stats}")
    print(f"ratio            {captured / sent if sent else 0:.4f} (1.0000 = kept up)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
