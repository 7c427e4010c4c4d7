"""The mock bridge's configuration: the YAML file, its validation, and command-line overrides."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sipharness.bridge.faults import FAULTS

DIGEST_ALGORITHMS = ("MD5", "SHA-256", "SHA-512-256")
MEDIA_MODES = ("echo", "tone", "silence", "none")
CODECS = {"PCMU": 0, "PCMA": 8, "G722": 9}
DEFAULT_CONFIG_PATH = Path("fixtures/bridge.yaml")


class ConfigError(ValueError):
    """An invalid configuration: names the file, the field path and (when known) the line."""

    def __init__(self, source: str, path: str, reason: str, line: int | None = None) -> None:
        self.source = source
        self.path = path
        self.reason = reason
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {path}: {reason}" if path else f"{where}: {reason}")


@dataclass
class Room:
    """One room a caller can dial by its room code."""

    room_code: str
    room_id: str
    room_name: str
    role: str = "sip-caller"
    enabled: bool = True


@dataclass
class Credential:
    """One username/password pair the bridge accepts."""

    username: str
    password: str = field(repr=False)


@dataclass
class BridgeConfig:
    """Everything the bridge needs to run; see fixtures/bridge.yaml for each field."""

    host: str = "127.0.0.1"
    udp_port: int | None = 5060
    tcp_port: int | None = 5060
    tls_port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    workers: int = 1
    reuse_port: bool = False
    realm: str = "sipharness.test"
    auth_mode: int = 401
    algorithms: list[str] = field(default_factory=lambda: ["MD5"])
    nonce_lifetime: float = 300.0
    max_nonces: int = 10000
    flood_rate: float = 1000.0
    flood_burst: int = 2000
    credentials: list[Credential] = field(default_factory=list)
    rooms: list[Room] = field(default_factory=list)
    unknown_room_status: int = 404
    mask_keep_last: int = 4
    mask_char: str = "X"
    trust_pai: bool = False
    trusted_sources: list[str] = field(default_factory=list)
    webhook_url: str | None = None
    webhook_secret_header: str = "X-Webhook-Secret"
    webhook_secret: str = field(default="", repr=False)
    webhook_retries: list[float] = field(default_factory=lambda: [1.0, 3.0, 10.0])
    app_id: str = "sipharness-app"
    account_id: str = "sipharness-account"
    roster_host: str = "127.0.0.1"
    roster_port: int | None = 0
    media_mode: str = "echo"
    rtp_ports: tuple[int, int] = (20000, 29999)
    codecs: list[str] = field(default_factory=lambda: ["PCMU", "PCMA"])
    rtp_timeout: float | None = None
    max_calls: int = 200
    capacity_status: int = 503
    retry_after: int = 5
    t1: float = 0.5
    t2: float = 4.0
    answer_delay: float = 0.0
    provisional_repeat: float = 60.0
    min_se: int = 90
    faults: list[str] = field(default_factory=list)
    source: str = "<defaults>"

    def room(self, room_code: str) -> Room | None:
        """The room with this code, or None."""
        for room in self.rooms:
            if room.room_code == room_code:
                return room
        return None

    def password_for(self, username: str) -> str | None:
        """The password of ``username``, or None when no such user is configured."""
        for cred in self.credentials:
            if cred.username == username:
                return cred.password
        return None

    def trusts_pai_from(self, host: str) -> bool:
        """True when a P-Asserted-Identity sent from ``host`` names the caller (HDR-07)."""
        if not self.trust_pai:
            return False
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(net, strict=False)
                   for net in self.trusted_sources)

    def has_fault(self, name: str) -> bool:
        """True when the fault ``name`` is switched on."""
        return name in self.faults


class _Reader:
    """Walks a YAML mapping, converting fields and raising ConfigError with the line."""

    def __init__(self, source: str, lines: dict[str, int]) -> None:
        self.source = source
        self.lines = lines

    def fail(self, path: str, reason: str) -> ConfigError:
        return ConfigError(self.source, path, reason, self.lines.get(path))

    def mapping(self, value: Any, path: str, known: set[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(path, "expected a mapping")
        for key in value:
            if key not in known:
                sub = f"{path}.{key}" if path else str(key)
                raise self.fail(sub, f"unknown field (known: {', '.join(sorted(known))})")
        return dict(value)

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, "expected a string")
        return value

    def opt_string(self, value: Any, path: str) -> str | None:
        return None if value is None else self.string(value, path)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, "expected true or false")
        return value

    def port(self, value: Any, path: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise self.fail(path, "expected a port number 0-65535 or null")
        return value

    def number(self, value: Any, path: str, minimum: float = 0.0) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise self.fail(path, f"expected a number >= {minimum:g}")
        return float(value)

    def integer(self, value: Any, path: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(path, f"expected an integer >= {minimum}")
        return value

    def choice(self, value: Any, path: str, choices: tuple[Any, ...]) -> Any:
        if value not in choices:
            raise self.fail(path, f"expected one of {', '.join(str(c) for c in choices)}")
        return value

    def seq(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, "expected a list")
        return value


def _node_lines(node: yaml.Node | None, path: str, out: dict[str, int]) -> None:
    if node is None:
        return
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = f"{path}.{key.value}" if path else str(key.value)
            out[sub] = key.start_mark.line + 1
            _node_lines(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _node_lines(item, f"{path}[{i}]", out)


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, "", f"not valid YAML: {getattr(exc, 'problem', exc)}",
                          line) from exc
    lines: dict[str, int] = {}
    _node_lines(node, "", lines)
    return data, lines


def config_from_mapping(data: Any, source: str = "<dict>",
                        lines: dict[str, int] | None = None) -> BridgeConfig:
    """Validate a parsed configuration mapping and build the BridgeConfig."""
    r = _Reader(source, lines or {})
    top = r.mapping(data, "", {"listen", "realm", "auth", "rooms", "unknown_room_status",
                               "masking", "identity", "webhook", "roster", "media", "capacity",
                               "timers", "faults"})
    cfg = BridgeConfig(source=source)
    listen = r.mapping(top.get("listen"), "listen",
                       {"host", "udp", "tcp", "tls", "tls_cert", "tls_key", "workers",
                        "reuse_port"})
    cfg.host = r.string(listen.get("host", cfg.host), "listen.host")
    cfg.udp_port = r.port(listen.get("udp", cfg.udp_port), "listen.udp")
    cfg.tcp_port = r.port(listen.get("tcp", cfg.tcp_port), "listen.tcp")
    cfg.tls_port = r.port(listen.get("tls"), "listen.tls")
    cfg.tls_cert = r.opt_string(listen.get("tls_cert"), "listen.tls_cert")
    cfg.tls_key = r.opt_string(listen.get("tls_key"), "listen.tls_key")
    if cfg.tls_port is not None and not (cfg.tls_cert and cfg.tls_key):
        raise r.fail("listen.tls", "TLS needs listen.tls_cert and listen.tls_key")
    if cfg.udp_port is None and cfg.tcp_port is None and cfg.tls_port is None:
        raise r.fail("listen", "no SIP listener: udp, tcp and tls are all null (TLS needs "
                     "listen.tls, listen.tls_cert and listen.tls_key)")
    cfg.workers = r.integer(listen.get("workers", 1), "listen.workers", 1)
    cfg.reuse_port = r.boolean(listen.get("reuse_port", cfg.workers > 1), "listen.reuse_port")
    cfg.realm = r.string(top.get("realm", cfg.realm), "realm")

    auth = r.mapping(top.get("auth"), "auth",
                     {"mode", "algorithms", "nonce_lifetime", "max_nonces", "flood",
                      "credentials"})
    cfg.auth_mode = int(r.choice(str(auth.get("mode", "401")), "auth.mode", ("401", "407")))
    algorithms = r.seq(auth.get("algorithms", cfg.algorithms), "auth.algorithms")
    if not algorithms:
        raise r.fail("auth.algorithms", "expected at least one algorithm")
    cfg.algorithms = [r.choice(a, f"auth.algorithms[{i}]", DIGEST_ALGORITHMS)
                      for i, a in enumerate(algorithms)]
    cfg.nonce_lifetime = r.number(auth.get("nonce_lifetime", cfg.nonce_lifetime),
                                  "auth.nonce_lifetime", 0.001)
    cfg.max_nonces = r.integer(auth.get("max_nonces", cfg.max_nonces), "auth.max_nonces", 1)
    flood = r.mapping(auth.get("flood"), "auth.flood", {"rate", "burst"})
    cfg.flood_rate = r.number(flood.get("rate", cfg.flood_rate), "auth.flood.rate", 0.001)
    cfg.flood_burst = r.integer(flood.get("burst", cfg.flood_burst), "auth.flood.burst", 1)
    for i, item in enumerate(r.seq(auth.get("credentials", []), "auth.credentials")):
        p = f"auth.credentials[{i}]"
        c = r.mapping(item, p, {"username", "password"})
        cfg.credentials.append(Credential(r.string(c.get("username"), f"{p}.username"),
                                          r.string(c.get("password"), f"{p}.password")))

    for i, item in enumerate(r.seq(top.get("rooms", []), "rooms")):
        p = f"rooms[{i}]"
        m = r.mapping(item, p, {"room_code", "room_id", "room_name", "role", "enabled"})
        cfg.rooms.append(Room(
            room_code=r.string(m.get("room_code"), f"{p}.room_code"),
            room_id=r.string(m.get("room_id"), f"{p}.room_id"),
            room_name=r.string(m.get("room_name", m.get("room_code")), f"{p}.room_name"),
            role=r.string(m.get("role", "sip-caller"), f"{p}.role"),
            enabled=r.boolean(m.get("enabled", True), f"{p}.enabled"),
        ))
    cfg.unknown_room_status = r.integer(top.get("unknown_room_status", 404),
                                        "unknown_room_status", 400)
    if cfg.unknown_room_status > 499:
        raise r.fail("unknown_room_status", "expected a 4xx status")

    masking = r.mapping(top.get("masking"), "masking", {"keep_last", "mask_char"})
    cfg.mask_keep_last = r.integer(masking.get("keep_last", 4), "masking.keep_last")
    cfg.mask_char = r.string(masking.get("mask_char", "X"), "masking.mask_char")

    identity = r.mapping(top.get("identity"), "identity", {"trust_pai", "trusted_sources"})
    cfg.trust_pai = r.boolean(identity.get("trust_pai", False), "identity.trust_pai")
    sources = r.seq(identity.get("trusted_sources", []) or [], "identity.trusted_sources")
    for i, value in enumerate(sources):
        p = f"identity.trusted_sources[{i}]"
        try:
            ipaddress.ip_network(r.string(value, p), strict=False)
        except ValueError:
            raise r.fail(p, "expected an IP address or network (10.0.0.0/8)") from None
        cfg.trusted_sources.append(value)

    hook = r.mapping(top.get("webhook"), "webhook",
                     {"url", "secret_header", "secret", "retries", "app_id", "account_id"})
    cfg.webhook_url = r.opt_string(hook.get("url"), "webhook.url")
    cfg.webhook_secret_header = r.string(hook.get("secret_header", cfg.webhook_secret_header),
                                         "webhook.secret_header")
    cfg.webhook_secret = r.string(hook.get("secret", ""), "webhook.secret")
    cfg.webhook_retries = [r.number(v, f"webhook.retries[{i}]") for i, v in
                           enumerate(r.seq(hook.get("retries", cfg.webhook_retries),
                                           "webhook.retries"))]
    cfg.app_id = r.string(hook.get("app_id", cfg.app_id), "webhook.app_id")
    cfg.account_id = r.string(hook.get("account_id", cfg.account_id), "webhook.account_id")

    roster = r.mapping(top.get("roster"), "roster", {"host", "port"})
    cfg.roster_host = r.string(roster.get("host", cfg.roster_host), "roster.host")
    cfg.roster_port = r.port(roster.get("port", cfg.roster_port), "roster.port")

    media = r.mapping(top.get("media"), "media", {"mode", "rtp_ports", "codecs", "rtp_timeout"})
    cfg.media_mode = r.choice(media.get("mode", cfg.media_mode), "media.mode", MEDIA_MODES)
    ports = r.seq(media.get("rtp_ports", list(cfg.rtp_ports)), "media.rtp_ports")
    if len(ports) != 2:
        raise r.fail("media.rtp_ports", "expected [first, last]")
    low = r.port(ports[0], "media.rtp_ports[0]")
    high = r.port(ports[1], "media.rtp_ports[1]")
    if not low or not high or high < low + 1:
        raise r.fail("media.rtp_ports", "expected two ports with first < last")
    cfg.rtp_ports = (low, high)
    codecs = r.seq(media.get("codecs", cfg.codecs), "media.codecs")
    cfg.codecs = [r.choice(c, f"media.codecs[{i}]", tuple(CODECS)) for i, c in enumerate(codecs)]
    if media.get("rtp_timeout") is not None:
        cfg.rtp_timeout = r.number(media["rtp_timeout"], "media.rtp_timeout", 0.1)

    cap = r.mapping(top.get("capacity"), "capacity", {"max_calls", "status", "retry_after"})
    cfg.max_calls = r.integer(cap.get("max_calls", cfg.max_calls), "capacity.max_calls", 1)
    cfg.capacity_status = int(r.choice(cap.get("status", 503), "capacity.status",
                                       (486, 480, 503)))
    cfg.retry_after = r.integer(cap.get("retry_after", cfg.retry_after), "capacity.retry_after")

    timers = r.mapping(top.get("timers"), "timers",
                       {"t1", "t2", "answer_delay", "provisional_repeat", "min_se"})
    cfg.t1 = r.number(timers.get("t1", cfg.t1), "timers.t1", 0.001)
    cfg.t2 = r.number(timers.get("t2", cfg.t2), "timers.t2", 0.001)
    cfg.answer_delay = r.number(timers.get("answer_delay", cfg.answer_delay),
                                "timers.answer_delay")
    cfg.provisional_repeat = r.number(timers.get("provisional_repeat", cfg.provisional_repeat),
                                      "timers.provisional_repeat", 0.1)
    cfg.min_se = r.integer(timers.get("min_se", cfg.min_se), "timers.min_se", 1)

    faults = r.seq(top.get("faults", []) or [], "faults")
    cfg.faults = [r.choice(f, f"faults[{i}]", tuple(FAULTS)) for i, f in enumerate(faults)]
    return cfg


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> BridgeConfig:
    """Read and validate the YAML file at ``path`` (None: built-in defaults only).

    ``overrides`` is a nested mapping merged over the file before validation (so a wrong
    override is reported like a wrong field)."""
    data: Any = {}
    lines: dict[str, int] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(source, "", f"cannot read: {exc.strerror or exc}") from exc
        data, lines = _parse_yaml(text, source)
        if data is None:
            data = {}
    if overrides:
        if not isinstance(data, Mapping):
            raise ConfigError(source, "", "expected a mapping at the top level", 1)
        data = merge(data, overrides)
    return config_from_mapping(data, source, lines)


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A deep merge: mappings merge key by key, anything else in ``over`` replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def config_to_mapping(cfg: BridgeConfig) -> dict[str, Any]:
    """The YAML mapping that ``config_from_mapping`` turns back into ``cfg``."""
    return {
        "listen": {"host": cfg.host, "udp": cfg.udp_port, "tcp": cfg.tcp_port,
                   "tls": cfg.tls_port, "tls_cert": cfg.tls_cert, "tls_key": cfg.tls_key,
                   "workers": cfg.workers, "reuse_port": cfg.reuse_port},
        "realm": cfg.realm,
        "auth": {"mode": str(cfg.auth_mode), "algorithms": list(cfg.algorithms),
                 "nonce_lifetime": cfg.nonce_lifetime, "max_nonces": cfg.max_nonces,
                 "flood": {"rate": cfg.flood_rate, "burst": cfg.flood_burst},
                 "credentials": [{"username": c.username, "password": c.password}
                                 for c in cfg.credentials]},
        "rooms": [{"room_code": r.room_code, "room_id": r.room_id, "room_name": r.room_name,
                   "role": r.role, "enabled": r.enabled} for r in cfg.rooms],
        "unknown_room_status": cfg.unknown_room_status,
        "masking": {"keep_last": cfg.mask_keep_last, "mask_char": cfg.mask_char},
        "identity": {"trust_pai": cfg.trust_pai, "trusted_sources": list(cfg.trusted_sources)},
        "webhook": {"url": cfg.webhook_url, "secret_header": cfg.webhook_secret_header,
                    "secret": cfg.webhook_secret, "retries": list(cfg.webhook_retries),
                    "app_id": cfg.app_id, "account_id": cfg.account_id},
        "roster": {"host": cfg.roster_host, "port": cfg.roster_port},
        "media": {"mode": cfg.media_mode, "rtp_ports": list(cfg.rtp_ports),
                  "codecs": list(cfg.codecs), "rtp_timeout": cfg.rtp_timeout},
        "capacity": {"max_calls": cfg.max_calls, "status": cfg.capacity_status,
                     "retry_after": cfg.retry_after},
        "timers": {"t1": cfg.t1, "t2": cfg.t2, "answer_delay": cfg.answer_delay,
                   "provisional_repeat": cfg.provisional_repeat, "min_se": cfg.min_se},
        "faults": list(cfg.faults),
    }
