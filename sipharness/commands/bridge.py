"""``sipharness bridge``: run the mock SIP-to-WebRTC dial-in bridge (sippy, its own process)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from sipharness.bridge.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from sipharness.bridge.faults import FAULTS, describe_faults

HELP = "run the mock dial-in bridge: a real SIP server keeping the 100ms contract"
DESCRIPTION = f"""\
Run a SIP server that behaves like a 100ms-style SIP-to-WebRTC dial-in bridge, so scenarios
can be written and debugged without staging credentials. It answers INVITEs to
sip:<ROOM_CODE>@host with digest auth, joins the caller to the room, posts
peer.join.success / peer.leave.success webhooks, serves a roster API, and echoes RTP.
It prints one line 'READY {{json}}' on stdout when listening (the bound ports), one line per
call on stderr (no credentials), and on SIGTERM/SIGINT sends BYE to every call that is up,
delivers their leave webhooks, and exits 0.

configuration (YAML; default ./{DEFAULT_CONFIG_PATH}, looked up relative to the current
directory, so run it from a checkout or pass --config; without a file, --room-code and
--username/--password are required; every field optional):
  listen:      host, udp, tcp, tls (ports; null = off; 0 = any free port, the same one for
               udp and tcp; at least one must be on), tls_cert, tls_key, workers (processes
               sharing the port with SO_REUSEPORT; default 1), reuse_port (bind with
               SO_REUSEPORT; default true when workers > 1)
  realm:       digest realm
  auth:        mode ("401" or "407"), algorithms ([MD5, SHA-256, SHA-512-256], in order of
               preference, one challenge each), nonce_lifetime (s; older nonces get
               stale=true), max_nonces (replay table size, default 10000; expired nonces
               are dropped), flood {{rate, burst}} (new INVITEs per second and burst per
               source IP:port, a call takes two; default 1000 and 2000; over it they are
               dropped without an answer), credentials (list of username/password)
  rooms:       list of room_code, room_id, room_name, role, enabled
  unknown_room_status: the 4xx for an unknown or disabled room code (default 404)
  masking:     keep_last (digits kept, default 4), mask_char (default X): a caller with no
               X-100ms-Display-Name is named by the From number masked, +1415555 1234 ->
               XXXXXXX1234
  identity:    trust_pai (default false), trusted_sources (IP addresses or networks): an
               INVITE from a trusted source names the caller by its P-Asserted-Identity;
               with Privacy: id the number is never shown (user_name "Anonymous")
  webhook:     url, secret_header, secret, retries (s after the first attempt, [1, 3, 10]),
               app_id, account_id
  roster:      host, port  -> GET http://host:port/v2/active-rooms/<room_id>/peers
  media:       mode (echo | tone | silence | none), rtp_ports [first, last], codecs,
               rtp_timeout (s without caller RTP before the bridge sends BYE; null = never)
  capacity:    max_calls, status (486 | 480 | 503), retry_after (s)
  timers:      t1, t2 (RFC 3261 timers, 0.5 and 4 s), answer_delay (s from 180 to 200),
               provisional_repeat (s between repeats of the 180 while the join lasts; 60),
               min_se (RFC 4028 session timers, s; default 90: a caller with Supported:
               timer asking for a shorter Session-Expires gets 422 + Min-SE; the caller
               refreshes with re-INVITE or UPDATE, else the bridge ends the call with BYE;
               asked for refresher=uas, the bridge refreshes at half the interval (UPDATE
               if the caller's Allow has UPDATE, else a re-INVITE with the answered SDP)
               and sends BYE when a refresh gets 408/481 or the session expires unrefreshed)
  faults:      list of fault names (below)

faults (--fault NAME, repeatable; each breaks one rule so a check can be seen to fail):
{describe_faults()}

examples:
  sipharness bridge
  sipharness bridge --port 5070 --room-code abc-defg-hij --username trunk --password s3cret
  sipharness bridge --config my-bridge.yaml --webhook-url http://127.0.0.1:8080/hooks
  sipharness bridge --fault no-2xx-retransmit --fault no-100-trying
  sipharness bridge --check --config my-bridge.yaml     # validate the file and exit

The password can also come from the environment: SIPHARNESS_BRIDGE_PASSWORD.
exit status: 0 after a clean stop, 1 when a port cannot be bound, 2 for an invalid
configuration.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help=f"configuration file (default: ./{DEFAULT_CONFIG_PATH} in the "
                        "current directory, if present)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="SIP port for UDP and TCP (0: any free port)")
    parser.add_argument("--transport", choices=("udp", "tcp", "tls", "udp+tcp"),
                        help="which SIP listeners to open (default: as configured; tls needs "
                        "--tls-port/--tls-cert/--tls-key)")
    parser.add_argument("--tls-port", type=int, help="TLS port (needs --tls-cert/--tls-key)")
    parser.add_argument("--tls-cert", metavar="PEM", help="TLS certificate chain file")
    parser.add_argument("--tls-key", metavar="PEM", help="TLS private key file")
    parser.add_argument("--username", help="the one accepted digest username")
    parser.add_argument("--password", help="its password (or SIPHARNESS_BRIDGE_PASSWORD)")
    parser.add_argument("--room-code", action="append", default=[], metavar="CODE",
                        help="add an enabled room with this code (repeatable)")
    parser.add_argument("--webhook-url", help="where to POST peer join/leave webhooks")
    parser.add_argument("--roster-port", type=int, help="roster API port (0: any free port)")
    parser.add_argument("--auth-mode", choices=("401", "407"), help="challenge style")
    parser.add_argument("--media", choices=("echo", "tone", "silence", "none"),
                        help="what to do with RTP")
    parser.add_argument("--max-calls", type=int, help="capacity: concurrent calls")
    parser.add_argument("--workers", type=int,
                        help="bridge processes sharing the port (SO_REUSEPORT), for more cores")
    parser.add_argument("--roster-events", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fault", action="append", default=[], metavar="NAME",
                        help="switch on a fault (repeatable; see --list-faults)")
    parser.add_argument("--list-faults", action="store_true", help="describe the faults and exit")
    parser.add_argument("--check", action="store_true",
                        help="validate the configuration, print a summary and exit")


def overrides_from_args(args: argparse.Namespace, base_rooms: list[Any]) -> dict[str, Any]:
    """The nested config mapping the command-line flags put over the file."""
    over: dict[str, Any] = {}
    listen: dict[str, Any] = {}
    if args.host:
        listen["host"] = args.host
    if args.port is not None:
        listen["udp"] = listen["tcp"] = args.port
    if args.tls_port is not None:
        listen["tls"] = args.tls_port
    if args.tls_cert:
        listen["tls_cert"] = args.tls_cert
    if args.tls_key:
        listen["tls_key"] = args.tls_key
    if args.workers is not None:
        listen["workers"] = args.workers
    if args.transport in ("udp", "tls"):
        listen["tcp"] = None
    if args.transport in ("tcp", "tls"):
        listen["udp"] = None
    if listen:
        over["listen"] = listen
    password = args.password or os.environ.get("SIPHARNESS_BRIDGE_PASSWORD")
    if args.username or password:
        over["auth"] = {"credentials": [{"username": args.username or "sipharness",
                                         "password": password or ""}]}
    if args.auth_mode:
        over.setdefault("auth", {})["mode"] = args.auth_mode
    if args.room_code:
        rooms = list(base_rooms)
        known = {r.get("room_code") for r in rooms if isinstance(r, dict)}
        rooms += [{"room_code": code, "room_id": f"room-{code}", "room_name": code}
                  for code in args.room_code if code not in known]
        over["rooms"] = rooms
    if args.webhook_url:
        over["webhook"] = {"url": args.webhook_url}
    if args.roster_port is not None:
        over["roster"] = {"port": args.roster_port}
    if args.media:
        over["media"] = {"mode": args.media}
    if args.max_calls is not None:
        over["capacity"] = {"max_calls": args.max_calls}
    return over


def run(args: argparse.Namespace) -> int:
    if args.list_faults:
        print(describe_faults())
        return 0
    unknown = [f for f in args.fault if f not in FAULTS]
    if unknown:
        print(f"sipharness bridge: unknown fault {unknown[0]!r}; see --list-faults",
              file=sys.stderr)
        return 2
    path: Path | None = Path(args.config) if args.config else None
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    try:
        base_rooms: list[Any] = []
        if args.room_code:
            base_rooms = [{"room_code": r.room_code, "room_id": r.room_id,
                           "room_name": r.room_name, "role": r.role, "enabled": r.enabled}
                          for r in load_config(path).rooms]
        config = load_config(path, overrides_from_args(args, base_rooms))
    except ConfigError as exc:
        print(f"sipharness bridge: {exc}", file=sys.stderr)
        return 2
    config.faults = list(dict.fromkeys([*config.faults, *args.fault]))
    missing = [what for what, have in (("rooms", config.rooms),
                                        ("credentials", config.credentials)) if not have]
    if missing and path is None:
        print(f"sipharness bridge: no configuration: ./{DEFAULT_CONFIG_PATH} is not in "
              f"{Path.cwd()} and there are no {' and no '.join(missing)}; pass --config PATH "
              "(or --room-code and --username/--password)", file=sys.stderr)
        return 2
    for what in missing:
        print(f"sipharness bridge: warning: {config.source}: no {what}: every INVITE will be "
              f"refused", file=sys.stderr)
    if args.check:
        print(f"{config.source}: ok: {len(config.rooms)} rooms, "
              f"{len(config.credentials)} credentials, auth {config.auth_mode} "
              f"{'/'.join(config.algorithms)}, faults: {', '.join(config.faults) or 'none'}")
        return 0
    try:
        if config.workers > 1:
            from sipharness.bridge.workers import serve_workers

            return serve_workers(config)
        from sipharness.bridge.server import serve

        return serve(config, roster_events=args.roster_events)
    except OSError as exc:
        print(f"sipharness bridge: cannot listen: {exc}", file=sys.stderr)
        return 1
