"""sipharness: conformance and load testing for SIP-to-WebRTC dial-in bridges."""

__version__ = "0.1.0"
