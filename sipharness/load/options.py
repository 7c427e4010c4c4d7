"""The load generator's command-line options (added to Locust's) and the settings read from them.

Target options match the conformance runner's, each with the same environment variable;
an option given on the command line wins over the environment.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from typing import Any

from sipharness.target import parse_target_address

TARGET_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--sip-target", "SIPHARNESS_TARGET",
     "HOST:PORT of the bridge to load (default: start the mock bridge on loopback)"),
    ("--sip-transport", "SIPHARNESS_TRANSPORT", "udp or tcp (default udp)"),
    ("--sip-username", "SIPHARNESS_USERNAME", "digest username"),
    ("--sip-password", "SIPHARNESS_PASSWORD", "digest password (never printed or logged)"),
    ("--room-code", "SIPHARNESS_ROOM_CODE", "room code to dial (the Request-URI user part)"),
)  # fmt: skip


def add_options(parser: Any) -> None:
    """Add sipharness's options to Locust's parser (``events.init_command_line_parser``).

    They go on the parser itself (not a group) so the web UI can show them; the password
    is kept out of the web UI, whose page would carry its value.
    """
    for flag, env, text in TARGET_OPTIONS:
        extra = {"include_in_web_ui": False} if flag == "--sip-password" else {}
        parser.add_argument(flag, default=os.environ.get(env, ""),
                           help=f"{text} [env {env}]", **extra)  # fmt: skip
    parser.add_argument(
        "--scenarios", default=os.environ.get("SIPHARNESS_LOAD_SCENARIOS", "loadtests/scenarios"),
        help="scenario files or folders the users dial, comma-separated; each scenario's "
        "load.weight sets how often it is picked [env SIPHARNESS_LOAD_SCENARIOS]")
    parser.add_argument(
        "--scenario-weights", default="",
        help="override weights: 'answered_call=5,wrong_credentials=1' (file stem=weight)")
    parser.add_argument(
        "--hold", default="2",
        help="how long an answered call is held before BYE, in seconds: '30' (fixed), "
        "'uniform:10,60', 'exp:30' (mean), 'normal:30,5' (mean, sd; never below 0)")
    parser.add_argument(
        "--call-interval", type=float, default=0.0,
        help="each user starts a call every N seconds (pacing; 0: the scenario's think "
        "time, or straight away). calls/s = users / N")
    parser.add_argument(
        "--rtp", choices=("auto", "on", "off"), default="auto",
        help="send and receive 20 ms G.711 RTP while holding (auto: when the bridge answers "
        "with an audio stream)")
    parser.add_argument(
        "--call-log", default="",
        help="write one JSON line per call to this file (per process; workers add "
        "'.worker-N' before the extension)")
    parser.add_argument(
        "--source-ports", type=int, default=0,
        help="local SIP sockets (source ports) per process, shared by its users round robin; "
        "0: one per user (default). Fewer sockets cost less CPU; see the README on the "
        "per-source-address trap")
    parser.add_argument(
        "--sip-timers", default="",
        help="RFC 3261 timers as 't1=0.5,t2=4' (seconds); default the RFC's")
    parser.add_argument(
        "--bridge-fault", action="append", default=[],
        help="with the embedded mock bridge only: switch on this fault (repeatable)")
    parser.add_argument("--peak-users", type=int, default=50,
                        help="ramp/soak/spike: the most users (trunks) at once")
    parser.add_argument("--shape-time", type=float, default=60.0,
                        help="ramp/soak/spike: seconds the shape lasts before it stops the run")
    parser.add_argument("--capacity-start-rate", type=float, default=10.0,
                        help="capacity search: first call rate (calls/s)")
    parser.add_argument("--capacity-step-rate", type=float, default=10.0,
                        help="capacity search: calls/s added per step")
    parser.add_argument("--capacity-step-time", type=float, default=20.0,
                        help="capacity search: seconds per step (the first quarter is "
                        "not judged: calls from the previous rate drain)")
    parser.add_argument("--capacity-max-steps", type=int, default=20,
                        help="capacity search: stop after this many steps even if the SLO holds")
    parser.add_argument("--slo-pdd-p95", type=float, default=1000.0,
                        help="capacity search SLO: p95 post-dial delay in ms")
    parser.add_argument("--slo-failure-ratio", type=float, default=0.01,
                        help="capacity search SLO: highest acceptable share of failed calls")


@dataclass(frozen=True)
class Target:
    """Where the users dial, and as whom."""

    host: str
    port: int
    transport: str
    username: str
    password: str
    room_code: str

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def target_from(options: Any) -> Target | None:
    """The target named by parsed options, None when no ``--sip-target`` was given."""
    address = getattr(options, "sip_target", "") or ""
    if not address:
        return None
    host, port = parse_target_address(address)
    return Target(host, port, (options.sip_transport or "udp").lower(),
                  options.sip_username or "", options.sip_password or "",
                  options.room_code or "")  # fmt: skip


def parse_weights(text: str) -> dict[str, float]:
    """``'a=5,b=1'`` -> ``{'a': 5.0, 'b': 1.0}``; an empty text gives no overrides."""
    weights: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--scenario-weights: {item!r} is not NAME=WEIGHT")
        weight = float(value)
        if weight < 0 or not math.isfinite(weight):
            raise ValueError(f"--scenario-weights: weight of {name} must be ≥ 0")
        weights[name.strip()] = weight
    return weights


def parse_timers(text: str) -> dict[str, float]:
    """``'t1=0.1,t2=1'`` -> ``{'t1': 0.1, 't2': 1.0}`` (t1, t2, t4 only)."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name.strip().lower() not in ("t1", "t2", "t4"):
            raise ValueError(f"--sip-timers: {item!r} is not t1=, t2= or t4=SECONDS")
        out[name.strip().lower()] = float(value)
    return out


@dataclass(frozen=True)
class HoldTime:
    """A distribution of call hold times in seconds (see ``--hold``)."""

    kind: str
    a: float
    b: float = 0.0

    @classmethod
    def parse(cls, text: str) -> HoldTime:
        kind, sep, args = text.strip().partition(":")
        try:
            if not sep:
                return cls._checked("fixed", float(kind))
            numbers = [float(x) for x in args.split(",")]
        except ValueError as exc:
            raise ValueError(f"--hold {text!r}: {exc}") from exc
        wanted = {"uniform": 2, "exp": 1, "normal": 2}.get(kind)
        if wanted is None:
            raise ValueError(
                f"--hold {text!r}: use N, uniform:LOW,HIGH, exp:MEAN or normal:MEAN,SD")
        if len(numbers) != wanted:
            raise ValueError(f"--hold {text!r}: {kind} takes {wanted} number(s)")
        hold = cls._checked(kind, *numbers)
        if kind == "uniform" and hold.b < hold.a:
            raise ValueError(f"--hold {text!r}: HIGH is below LOW")
        return hold

    @classmethod
    def _checked(cls, kind: str, *numbers: float) -> HoldTime:
        if any(n < 0 or not math.isfinite(n) for n in numbers):
            raise ValueError(f"--hold: {kind} needs finite numbers ≥ 0")
        return cls(kind, *numbers)

    def sample(self, rng: random.Random) -> float:
        """One hold time, ≥ 0."""
        match self.kind:
            case "uniform":
                return rng.uniform(self.a, self.b)
            case "exp":
                return rng.expovariate(1 / self.a) if self.a else 0.0
            case "normal":
                return max(0.0, rng.gauss(self.a, self.b))
        return self.a

    @property
    def mean(self) -> float:
        return (self.a + self.b) / 2 if self.kind == "uniform" else self.a
