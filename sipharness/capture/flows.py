"""Copy of a pcap keeping only the given UDP/TCP flows (and IP fragments between their hosts),
so one test's attachment leaves out calls of other tests that shared the capture."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sipharness.capture.analysis import split_endpoint

Flow = frozenset[str]
"""The two ``ip:port`` ends of a UDP or TCP flow (either direction)."""

NON_FIRST_FRAGMENTS = "(ip and ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)"
"""IPv4 fragments after the first (no port header), and every IPv6 fragment (BPF port
matching stops at the fragment extension header)."""


def flow(a: str, b: str) -> Flow:
    """The flow between endpoints ``a`` and ``b`` (``ip:port``, ``[v6]:port``)."""
    return frozenset((a, b))


def flows_filter(flows: Iterable[Flow]) -> str:
    """BPF matching every packet of ``flows``, and IP fragments between their hosts."""
    terms: list[str] = []
    hosts: set[str] = set()
    for pair in sorted(tuple(sorted(f)) for f in flows):
        (ha, pa), (hb, pb) = (split_endpoint(pair[0]), split_endpoint(pair[-1]))
        hosts.update((ha, hb))
        terms.append(f"(src host {ha} and src port {pa} and dst host {hb} and dst port {pb})")
        terms.append(f"(src host {hb} and src port {pb} and dst host {ha} and dst port {pa})")
    if not terms:
        return "less 0"  # matches nothing: a zero-length frame is impossible
    flow_terms = f"((udp or tcp) and ({' or '.join(terms)}))"
    host_terms = " or ".join(f"host {h}" for h in sorted(hosts))
    return f"{flow_terms} or (({NON_FIRST_FRAGMENTS}) and ({host_terms}))"


def keep_flows(source: str | Path, target: str | Path, flows: Iterable[Flow]) -> None:
    """Write to ``target`` the frames of ``source`` that belong to ``flows`` (see
    :func:`flows_filter`), with tcpdump when installed, else with scapy."""
    wanted = set(flows)
    tcpdump = shutil.which("tcpdump")
    if tcpdump is not None:
        done = subprocess.run([tcpdump, "-r", str(source), "-w", str(target), "-n",
                               flows_filter(wanted)],
                              capture_output=True, timeout=60, check=False)
        if done.returncode == 0:
            return
    _keep_flows_by_scapy(source, target, wanted)


def _ends(ip: Any) -> tuple[str, str] | None:
    from scapy.layers.inet import TCP, UDP

    from sipharness.capture.analysis import endpoint

    l4 = ip.getlayer(UDP) or ip.getlayer(TCP)
    if l4 is None:
        return None
    return endpoint(ip.src, l4.sport), endpoint(ip.dst, l4.dport)


def _keep_flows_by_scapy(source: str | Path, target: str | Path, flows: set[Flow]) -> None:
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
    from scapy.utils import PcapReader, PcapWriter

    hosts = {split_endpoint(e)[0] for f in flows for e in f}
    with PcapReader(str(source)) as reader:
        linktype = reader.linktype
        kept = []
        for frame in reader:
            ip = frame.getlayer(IP) or frame.getlayer(IPv6)
            if ip is None:
                continue
            fragment = (isinstance(ip, IP) and ip.frag > 0) or (
                isinstance(ip, IPv6) and ip.getlayer(IPv6ExtHdrFragment) is not None)
            ends = None if fragment else _ends(ip)
            if (ends is not None and flow(*ends) in flows) or (
                    fragment and (ip.src in hosts or ip.dst in hosts)):
                kept.append(frame)
    with PcapWriter(str(target), linktype=linktype, sync=True) as writer:
        for frame in kept:
            writer.write(frame)
