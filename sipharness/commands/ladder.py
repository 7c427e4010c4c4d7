"""``sipharness ladder FILE.pcap``: draw the SIP exchange of any capture as text and SVG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "draw the SIP ladder diagram of a pcap (text and SVG, credentials redacted)"
DESCRIPTION = """\
Read a pcap (tcpdump, Wireshark, or a sipharness capture), reassemble IP fragments and
TCP streams, parse every SIP message, and draw who sent what to whom and when.

Prints the text ladder unless only --svg is given; --svg writes an SVG whose arrows show
the full (redacted) message as a tooltip. Authorization secrets never appear in the output.

examples:
  sipharness ladder staging-call.pcap
  sipharness ladder call.pcap --svg call.svg --text
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pcap", type=Path, help="the capture to read (pcap or pcapng)")
    parser.add_argument("--svg", type=Path, metavar="OUT.svg", help="write an SVG ladder here")
    parser.add_argument(
        "--text",
        action="store_true",
        help="print the text ladder (the default when --svg is not given)",
    )
    parser.add_argument(
        "--no-rtp-heuristic", action="store_true", help="count RTP only on ports announced in SDP"
    )


def run(args: argparse.Namespace) -> int:
    from sipharness.capture.analysis import read_pcap
    from sipharness.report.ladder import entries_from_trace, render_svg, render_text

    if not args.pcap.is_file():
        print(f"sipharness ladder: {args.pcap}: no such file", file=sys.stderr)
        return 2
    try:
        trace = read_pcap(args.pcap, rtp_heuristic=not args.no_rtp_heuristic)
    except Exception as exc:  # scapy raises plain Scapy_Exception/OSError for bad files
        print(f"sipharness ladder: cannot read {args.pcap}: {exc}", file=sys.stderr)
        return 2
    entries = entries_from_trace(trace)
    if args.svg is not None:
        args.svg.write_text(render_svg(entries), encoding="utf-8")
        print(f"wrote {args.svg} ({len(entries)} SIP messages)", file=sys.stderr)
    if args.text or args.svg is None:
        sys.stdout.write(render_text(entries))
        if trace.rtp:
            streams = {(p.src, p.dst, p.ssrc) for p in trace.rtp}
            print(f"RTP: {len(trace.rtp)} packets in {len(streams)} stream(s)")
        for note in trace.notes:
            print(f"note: {note}")
    if not entries:
        print(f"sipharness ladder: no SIP messages in {args.pcap}", file=sys.stderr)
        return 1
    return 0
