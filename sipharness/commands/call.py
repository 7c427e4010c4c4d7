"""``sipharness call``: place one call, print its ladder (credentials redacted) and its outcome."""

from __future__ import annotations

import argparse
import os
import sys

from sipharness.agent import Agent, Call, CallError, Credentials, TimerConfig
from sipharness.agent.useragent import TransportKind
from sipharness.net.transport import TransportError, local_address_for, resolve, tls_client_context
from sipharness.report.ladder import render_text
from sipharness.report.redact import redact_message, redact_text, register_secret
from sipharness.sip.grammar import SipParseError
from sipharness.sip.uri import parse_uri

HELP = "place one call to a bridge and show the SIP exchange as a ladder"
DESCRIPTION = """\
Dial one SIP URI the way a trunk does: INVITE with an SDP offer, answer the 401/407 digest
challenge with --username/--password, ACK the 200, keep the call up for --hold seconds, then
hang up with BYE. Prints a ladder of every message sent and received (digest responses and
the password are redacted) and one line saying how the call went.

The Request-URI's user part is the room code. Headers in the URI (Twilio <Sip> style,
?X-100ms-Display-Name=John%20Doe&X-100ms-UserID=xyz) are decoded once and sent as header
fields, before any --header. The password can come from SIPHARNESS_PASSWORD instead of the
command line (and the username from SIPHARNESS_USERNAME).

examples:
  sipharness call sip:abc-defg-hij@127.0.0.1:5060 --username trunk --password secret
  sipharness call 'sip:abc-defg-hij@bridge.example.net?X-100ms-Display-Name=John%20Doe' \\
      --username trunk --transport tcp --header 'X-100ms-UserID: xyz' --hold 10
  sipharness call sips:abc-defg-hij@bridge.example.net:5061 --tls-ca ca.pem -v

exit status:
  0  answered and torn down cleanly (our BYE got 200, or the far end hung up with BYE)
  1  the call failed at SIP level: rejected with a status (404, 486...), credentials refused
     (403, or challenged again), a 401/407 without a usable challenge, no credentials, or
     (with --require-challenge) answered without any challenge
  2  usage error (bad URI or option)
  3  timeout: no final answer in time (Timer B is 64·T1 = 32 s by default) or no BYE answer
  4  network error: connection refused or reset, TLS handshake or certificate failure
  5  answered, but the BYE was refused
  130  interrupted (Ctrl-C while holding hangs the call up with BYE first)
"""

KINDS: dict[str, TransportKind] = {"udp": "udp", "tcp": "tcp", "tls": "tls"}
EXIT = {
    "completed": 0,
    "rejected": 1,
    "auth_failed": 1,
    "no_challenge": 1,
    "cancelled": 1,
    "timeout": 3,
    "transport_error": 4,
    "bye_failed": 5,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="URI",
                        help="sip:ROOM@HOST[:PORT][;transport=tcp][?Header=value&...]; "
                             "sips: means TLS")  # fmt: skip
    parser.add_argument("-u", "--username", default=os.environ.get("SIPHARNESS_USERNAME"),
                        help="digest username (default: $SIPHARNESS_USERNAME)")  # fmt: skip
    parser.add_argument("-p", "--password", default=os.environ.get("SIPHARNESS_PASSWORD"),
                        help="digest password, never printed (default: $SIPHARNESS_PASSWORD)")
    parser.add_argument("-t", "--transport", choices=("udp", "tcp", "tls"),
                        help="default: the URI's ;transport=, tls for sips:, else udp")
    parser.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="add a header field to the INVITE (repeatable)")  # fmt: skip
    parser.add_argument("--hold", type=float, default=0.0, metavar="SECONDS",
                        help="keep the answered call up this long before BYE (default 0)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="longest wait for each final answer (default 64·T1 + 1 s)")
    parser.add_argument("--t1", type=float, default=0.5, metavar="SECONDS",
                        help="RFC 3261 T1 (retransmissions start at T1; timeouts at 64·T1)")
    parser.add_argument("--from", dest="from_uri", metavar="URI",
                        help="caller's From URI, e.g. sip:+15551234567@trunk.example")
    parser.add_argument("--display-name", help="caller's display name in From")
    parser.add_argument("--bind", metavar="ADDRESS",
                        help="local address to send from (default: the one routing to HOST)")
    parser.add_argument("--tls-ca", metavar="FILE", help="trust this CA (PEM) for TLS")
    parser.add_argument("--tls-insecure", action="store_true",
                        help="do not verify the TLS certificate (testing only)")
    parser.add_argument("--tls-server-name", metavar="NAME",
                        help="name expected in the TLS certificate (default: HOST)")
    parser.add_argument("--require-challenge", action="store_true",
                        help="fail (exit 1) when the call is answered without a digest "
                             "challenge (AUTH-01)")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print every message in full (redacted)")


def _fail(message: str, code: int) -> int:
    print(f"sipharness call: {redact_text(message)}", file=sys.stderr)
    return code


def _headers(values: list[str]) -> list[tuple[str, str]]:
    headers = []
    for item in values:
        name, colon, value = item.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            raise ValueError(f"--header {item!r} is not 'Name: value'")
        headers.append((name.strip(), value.strip()))
    return headers


def run(args: argparse.Namespace) -> int:
    if args.password:
        register_secret(args.password)
    try:
        uri = parse_uri(args.target)
        headers = _headers(args.header)
        timers = TimerConfig(t1=args.t1)
    except (SipParseError, ValueError) as exc:
        return _fail(str(exc), 2)
    if uri.scheme == "tel" or not uri.host:
        return _fail("the target must be a sip: or sips: URI with a host", 2)
    kind = args.transport or (uri.param("transport") or "").lower() or (
        "tls" if uri.scheme == "sips" else "udp")  # fmt: skip
    if kind not in KINDS:
        return _fail(f"unsupported transport {kind!r}: use udp, tcp or tls", 2)
    if args.hold < 0 or (args.timeout is not None and args.timeout <= 0):
        return _fail("--hold must be ≥ 0 and --timeout > 0", 2)
    credentials = Credentials(args.username, args.password or "") if args.username else None
    try:
        remote = resolve(uri.host, uri.port or (5061 if kind == "tls" else 5060))
        local_host = args.bind or local_address_for(remote)
        context = None
        if kind == "tls":
            context = tls_client_context(args.tls_ca, insecure=args.tls_insecure)
    except (OSError, TransportError) as exc:
        return _fail(f"network error: {exc}", 4)

    agent = Agent(KINDS[kind], local_host=local_host, timers=timers, tls_client_context=context,
                  tls_server_name=args.tls_server_name)  # fmt: skip
    try:
        call = agent.dial(args.target, destination=remote, credentials=credentials,
                          headers=headers, from_uri=args.from_uri,
                          display_name=args.display_name, within=args.timeout)  # fmt: skip
        try:
            if call.outcome.answered and args.hold:
                call.wait_ended(args.hold)
        except KeyboardInterrupt:
            agent.finish(call, within=2.0)  # hang up before giving up
            _print(call, f"{uri.host_port}", verbose=args.verbose)
            raise
        agent.finish(call, within=args.timeout)
        _print(call, f"{uri.host_port}", verbose=args.verbose)
    except CallError as exc:
        return _fail(str(exc), 4)
    finally:
        agent.close()
    outcome = call.outcome
    if outcome.ok and args.require_challenge and not outcome.challenged:
        return _fail("no challenge: the call was answered without asking for credentials", 1)
    if outcome.ok:
        who = "the far end" if outcome.torn_down_by == "far end" else "us (BYE → 200)"
        print(f"answered ({outcome.status} {outcome.reason}), then hung up by {who}")
        return 0
    return _fail(outcome.failure or outcome.ending, EXIT.get(outcome.ending, 1))


def _print(call: Call, remote_name: str, *, verbose: bool) -> None:
    print(render_text(call.record.ladder("sipharness", remote_name)), end="")
    if verbose:
        for entry in call.record.entries:
            arrow = "→" if entry.direction == "sent" else "←"
            print(f"\n{arrow} {entry.transport} {entry.remote[0]}:{entry.remote[1]}")
            print(redact_message(entry.data).decode("utf-8", "replace"))
    timings = call.record.timings
    if timings:
        print("timings: " + ", ".join(f"{name} {value * 1000:.1f} ms"
                                      for name, value in timings.items()))  # fmt: skip
