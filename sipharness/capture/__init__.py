"""Packet capture (tcpdump or scapy) and pcap analysis for wire-level assertions."""

from sipharness.capture.analysis import RtpPacket, SipPacket, Trace, read_pcap, sip_label
from sipharness.capture.assertions import (
    MessageMatch,
    PacketCheck,
    dscp,
    largest_sip_datagram,
    no_rtp_after_bye,
    responses_to_source_port,
    retransmission_schedule,
    rtp_after_ack,
    rtp_flow,
    run_check,
)
from sipharness.capture.attach import attach_capture
from sipharness.capture.live import (
    DEFAULT_BPF,
    Capture,
    CaptureError,
    CaptureStats,
    capture_available,
    require_capture,
)

__all__ = [
    "DEFAULT_BPF",
    "Capture",
    "CaptureError",
    "CaptureStats",
    "MessageMatch",
    "PacketCheck",
    "RtpPacket",
    "SipPacket",
    "Trace",
    "attach_capture",
    "capture_available",
    "dscp",
    "largest_sip_datagram",
    "no_rtp_after_bye",
    "read_pcap",
    "require_capture",
    "responses_to_source_port",
    "retransmission_schedule",
    "rtp_after_ack",
    "rtp_flow",
    "run_check",
    "sip_label",
]
