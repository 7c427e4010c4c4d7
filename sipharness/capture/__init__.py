"""Packet capture (tcpdump or scapy) and pcap analysis for wire-level assertions."""
