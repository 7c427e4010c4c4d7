"""MockBridge: start ``sipharness bridge`` as a subprocess on loopback, wait until ready, stop it.

This module never imports sippy, so it is safe to use from gevent (Locust) and pytest."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from sipharness.bridge.config import BridgeConfig, ConfigError, load_config, merge
from sipharness.hostenv import free_port

REPO_CONFIG = Path(__file__).resolve().parents[2] / "fixtures" / "bridge.yaml"


class BridgeStartError(RuntimeError):
    """The bridge process did not become ready; the message ends with its stderr."""


class MockBridge:
    """The mock bridge in its own process, on 127.0.0.1 with free ports.

    ``config`` is a YAML path, a mapping, or None for ``fixtures/bridge.yaml`` (built-in
    defaults when that file is absent); ``overrides`` (a nested mapping) goes over it.
    ``transports`` picks the listeners: any of "udp", "tcp", "tls" (TLS needs ``tls_cert``
    and ``tls_key`` paths). UDP and TCP share one port number.

    with MockBridge(faults=["no-100-trying"], webhook_url=receiver.url) as bridge:
        sipp ... f"{bridge.sip_host}:{bridge.sip_port}"
    """

    def __init__(self, config: str | Path | Mapping[str, Any] | None = None, *,
                 overrides: Mapping[str, Any] | None = None, faults: Iterable[str] = (),
                 webhook_url: str | None = None,
                 transports: Iterable[str] = ("udp", "tcp"),
                 tls_cert: str | Path | None = None, tls_key: str | Path | None = None,
                 host: str = "127.0.0.1", startup_timeout: float = 15.0,
                 stop_timeout: float = 20.0, python: str = sys.executable) -> None:
        self.sip_host = host
        self.transports = tuple(transports)
        unknown = set(self.transports) - {"udp", "tcp", "tls"}
        if unknown or not self.transports:
            raise ValueError(f"transports must be some of udp, tcp, tls; got {self.transports}")
        self._base = self._base_mapping(config)
        self._overrides = dict(overrides or {})
        self.faults = list(faults)
        self.webhook_url = webhook_url
        self.tls_cert = str(tls_cert) if tls_cert else None
        self.tls_key = str(tls_key) if tls_key else None
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.python = python
        self.sip_port = 0
        self.tls_port: int | None = None
        self.roster_url: str | None = None
        self.ready: dict[str, Any] = {}
        self.config: BridgeConfig | None = None
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._final_log = ""

    @staticmethod
    def _base_mapping(config: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
        if isinstance(config, Mapping):
            return dict(config)
        path = Path(config) if config is not None else REPO_CONFIG
        if config is None and not path.exists():
            return {"auth": {"credentials": [{"username": "sipharness",
                                              "password": "sipharness-test-only"}]},
                    "rooms": [{"room_code": "abc-defg-hij", "room_id": "room-abc-defg-hij",
                               "room_name": "sipharness-demo"}]}
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError(str(path), "", "expected a mapping at the top level", 1)
        return data

    # ----- what callers read
    @property
    def transport(self) -> str:
        """The first transport (the one to use when a caller needs just one)."""
        return self.transports[0]

    @property
    def username(self) -> str:
        assert self.config is not None and self.config.credentials, "bridge has no credentials"
        return self.config.credentials[0].username

    @property
    def password(self) -> str:
        assert self.config is not None and self.config.credentials, "bridge has no credentials"
        return self.config.credentials[0].password

    @property
    def room_codes(self) -> list[str]:
        """Codes of the enabled rooms, in configuration order."""
        assert self.config is not None
        return [r.room_code for r in self.config.rooms if r.enabled]

    @property
    def room_code(self) -> str:
        """The first enabled room code."""
        return self.room_codes[0]

    def port_for(self, transport: str) -> int:
        """The port of one transport."""
        if transport == "tls":
            assert self.tls_port is not None, "TLS is not enabled on this bridge"
            return self.tls_port
        return self.sip_port

    def target(self, transport: str | None = None) -> str:
        """``host:port`` for a transport (default: the first); IPv6 hosts in brackets."""
        host = f"[{self.sip_host}]" if ":" in self.sip_host else self.sip_host
        return f"{host}:{self.port_for(transport or self.transport)}"

    def peers(self, room_id: str) -> dict[str, Any]:
        """The roster API's answer for ``room_id``: ``{peer_id: {...}}``."""
        assert self.roster_url, "the roster API is off"
        with urllib.request.urlopen(f"{self.roster_url}/v2/active-rooms/{room_id}/peers",
                                    timeout=5.0) as resp:
            return dict(json.loads(resp.read())["peers"])

    def log_text(self) -> str:
        """Everything the bridge wrote to stderr so far (one line per call, no credentials)."""
        if self._dir is None:
            return self._final_log
        path = Path(self._dir.name) / "stderr.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def sipp_uac_args(self, scenario: str | Path, *, calls: int, rate: float,
                      transport: str | None = None, room_code: str | None = None,
                      timeout: float = 30.0) -> list[str]:
        """Arguments (after the sipp path) to drive this bridge with an authenticated UAC.

        ``transport`` is udp (one socket), udp-per-call (SIPp ``-t un``), tcp or tls."""
        transport = transport or self.transport
        room = room_code or self.room_code
        target = self.target("udp" if transport == "udp-per-call" else transport)
        return ["-sf", str(scenario), "-s", room, "-au", self.username, "-ap", self.password,
                "-auth_uri", f"{room}@{target}", "-m", str(calls), "-r", f"{rate:g}",
                "-t", {"udp": "u1", "udp-per-call": "un", "tcp": "t1", "tls": "l1"}[transport],
                "-timeout", f"{timeout:g}s", "-timeout_error", "-nostdin", "-i", self.sip_host,
                *(["-max_socket", "1024"] if transport == "udp-per-call" else []), target]

    # ----- lifecycle
    def _mapping(self, port: int) -> dict[str, Any]:
        listen: dict[str, Any] = {"host": self.sip_host,
                                  "udp": port if "udp" in self.transports else None,
                                  "tcp": port if "tcp" in self.transports else None,
                                  "tls": None}
        if "tls" in self.transports:
            if not (self.tls_cert and self.tls_key):
                raise ValueError("transport tls needs tls_cert and tls_key")
            self.tls_port = free_port(self.sip_host,
                                      socket.AF_INET6 if ":" in self.sip_host else socket.AF_INET)
            listen.update(tls=self.tls_port, tls_cert=self.tls_cert, tls_key=self.tls_key)
        over: dict[str, Any] = {"listen": listen, "roster": {"host": self.sip_host, "port": 0}}
        data = merge(merge(self._base, over), self._overrides)
        if self.webhook_url is not None:
            data = merge(data, {"webhook": {"url": self.webhook_url}})
        if self.faults:
            data["faults"] = list(dict.fromkeys([*(data.get("faults") or []), *self.faults]))
        return data

    def start(self) -> MockBridge:
        self._dir = tempfile.TemporaryDirectory(prefix="sipharness-bridge-")
        last_error = ""
        family = socket.AF_INET6 if ":" in self.sip_host else socket.AF_INET
        for _ in range(3):
            port = free_port(self.sip_host, family)
            data = self._mapping(port)
            path = Path(self._dir.name) / "bridge.yaml"
            path.write_text(yaml.safe_dump(data), encoding="utf-8")
            os.chmod(path, 0o600)
            self.config = load_config(path)
            try:
                self._launch(path)
            except BridgeStartError as exc:
                last_error = str(exc)
                if "cannot listen" in last_error:
                    continue
                raise
            self.sip_port = port
            return self
        raise BridgeStartError(last_error)

    def _launch(self, config_path: Path) -> None:
        assert self._dir is not None
        out_path = Path(self._dir.name) / "stdout.log"
        err_path = Path(self._dir.name) / "stderr.log"
        env = dict(os.environ, SIPLOG_BEND="none", PYTHONUNBUFFERED="1")
        cmd = [self.python, "-m", "sipharness", "bridge", "--config", str(config_path)]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                          env=env, cwd=str(REPO_CONFIG.parents[1]))
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            text = out_path.read_text(encoding="utf-8", errors="replace")
            for line in text.splitlines():
                if line.startswith("READY "):
                    self.ready = json.loads(line[6:])
                    self.roster_url = self.ready.get("roster_url")
                    return
            if self._proc.poll() is not None:
                self.returncode = self._proc.returncode
                self._proc = None
                raise BridgeStartError(f"the bridge exited with {self.returncode}:\n"
                                       f"{self.log_text()[-4000:]}")
            time.sleep(0.05)
        self.stop()
        raise BridgeStartError(f"the bridge was not ready within {self.startup_timeout:g}s:\n"
                               f"{self.log_text()[-4000:]}")

    def stop(self) -> int | None:
        """SIGTERM (calls get BYE, leave webhooks are delivered), then kill after stop_timeout.

        Returns the exit status (0 after a clean stop); stopping twice is harmless."""
        proc = self._proc
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5.0)
        self.returncode = proc.returncode
        self._proc = None
        return self.returncode

    def running(self) -> bool:
        """True while the bridge process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def cleanup(self) -> None:
        """Remove the temporary files; log_text() keeps answering with the last log."""
        if self._dir is not None:
            self._final_log = self.log_text()
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> MockBridge:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            code = self.stop()
            if exc is not None:
                exc.add_note(f"mock bridge stderr (exit {code}):\n{self.log_text()[-4000:]}")
        finally:
            self.cleanup()
