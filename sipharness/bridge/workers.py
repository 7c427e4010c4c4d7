"""Several bridge processes sharing one SIP port (SO_REUSEPORT), to use more than one core.

The parent never imports sippy: it starts the workers, serves the roster API for all of
them from their ROSTER lines, prints one READY line, and forwards SIGTERM/SIGINT. The kernel
spreads traffic by source address, so one caller socket always reaches the same worker."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import yaml

from sipharness.bridge.config import BridgeConfig, config_to_mapping
from sipharness.bridge.digest import NONCE_SECRET_ENV
from sipharness.bridge.room_events import Peer, Roster, RosterServer
from sipharness.hostenv import free_port


def _follow(stream: IO[str], roster: Roster, ready: list[dict[str, Any]],
            changed: threading.Condition) -> None:
    for line in stream:
        if line.startswith("READY "):
            with changed:
                ready.append(json.loads(line[6:]))
                changed.notify_all()
        elif line.startswith("ROSTER "):
            _, op, data = line.split(" ", 2)
            peer = Peer(**json.loads(data))
            if op == "join":
                roster.join(peer)
            else:
                roster.leave(peer)


def serve_workers(config: BridgeConfig, startup_timeout: float = 20.0) -> int:
    """Run ``config.workers`` bridge processes on the same ports until SIGTERM/SIGINT."""
    mapping = config_to_mapping(config)
    port = config.udp_port or config.tcp_port or 0
    if port == 0:
        port = free_port(config.host, socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    listen = mapping["listen"]
    listen.update(workers=1, reuse_port=True)
    if config.udp_port is not None:
        listen["udp"] = port
    if config.tcp_port is not None:
        listen["tcp"] = port
    mapping["roster"] = {"host": config.roster_host, "port": None}
    roster = Roster()
    api = RosterServer(roster, config.roster_host, config.roster_port) \
        if config.roster_port is not None else None
    env = dict(os.environ, SIPLOG_BEND="none")
    env.setdefault(NONCE_SECRET_ENV, secrets.token_hex(16))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ready: list[dict[str, Any]] = []
    changed = threading.Condition()
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="sipharness-workers-") as tmp:
        path = Path(tmp) / "worker.yaml"
        path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
        os.chmod(path, 0o600)
        try:
            for _ in range(config.workers):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "sipharness", "bridge", "--config", str(path),
                     "--roster-events"], stdout=subprocess.PIPE, text=True, env=env,
                    stdin=subprocess.DEVNULL)
                procs.append(proc)
                assert proc.stdout is not None
                threading.Thread(target=_follow, args=(proc.stdout, roster, ready, changed),
                                 daemon=True).start()
            deadline = time.monotonic() + startup_timeout
            with changed:
                while len(ready) < len(procs) and time.monotonic() < deadline \
                        and all(p.poll() is None for p in procs):
                    changed.wait(0.1)
            if len(ready) < len(procs):
                print("sipharness bridge: a worker did not start", file=sys.stderr)
                return 1
            info = dict(ready[0], workers=len(procs))
            info.pop("roster_url", None)
            if api is not None:
                info["roster_url"] = api.url
            print("READY " + json.dumps(info), flush=True)
            while not stop.is_set() and all(p.poll() is None for p in procs):
                stop.wait(0.2)
            if not stop.is_set():
                print("sipharness bridge: a worker exited; stopping the others", file=sys.stderr)
                return 1
            return 0
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=25.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5.0)
            if api is not None:
                api.close()
