"""The mock bridge: a sippy-based SIP server that keeps the 100ms dial-in contract."""
