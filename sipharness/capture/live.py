"""Capture a test's SIP and RTP traffic to a pcap: tcpdump when installed, scapy's
AsyncSniffer otherwise; say how to enable capture when we lack the privilege."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

DEFAULT_BPF = "udp port 5060 or tcp port 5060 or udp portrange 20000-20100"
ENABLE_HINT = (
    "capturing packets needs root, or CAP_NET_RAW and CAP_NET_ADMIN on tcpdump: "
    "sudo setcap cap_net_raw,cap_net_admin=eip $(which tcpdump)"
)
Backend = Literal["auto", "tcpdump", "scapy"]


class CaptureError(RuntimeError):
    """The capture could not start or did not stop cleanly."""


@dataclass
class CaptureStats:
    """What the capturer reported when it stopped; None where it does not say."""

    captured: int | None = None
    received_by_filter: int | None = None
    dropped_by_kernel: int | None = None
    backend: str = ""

    def __str__(self) -> str:
        return (
            f"{self.backend}: {self.captured} captured, {self.received_by_filter} received "
            f"by filter, {self.dropped_by_kernel} dropped by kernel"
        )


def _has_file_caps(path: str) -> bool:
    try:
        return bool(os.getxattr(path, "security.capability"))
    except OSError:
        return False


def _can_open_packet_socket() -> bool:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    except (PermissionError, AttributeError, OSError):
        return False
    return True


def capture_available(backend: Backend = "auto") -> tuple[bool, str]:
    """(True, backend name) when we can capture; else (False, a reason saying how to enable)."""
    tcpdump = shutil.which("tcpdump")
    if backend in ("auto", "tcpdump") and tcpdump:
        if os.geteuid() == 0 or _has_file_caps(tcpdump):
            return True, "tcpdump"
        if backend == "tcpdump":
            return False, f"tcpdump cannot capture as uid {os.geteuid()}: {ENABLE_HINT}"
    if backend == "tcpdump" and not tcpdump:
        return False, "tcpdump is not installed (Debian: apt-get install tcpdump)"
    if _can_open_packet_socket():
        return True, "scapy"
    missing = "" if tcpdump else " (and tcpdump is not installed: apt-get install tcpdump)"
    return False, f"no privilege to capture as uid {os.geteuid()}{missing}: {ENABLE_HINT}"


def require_capture(backend: Backend = "auto") -> str:
    """For pytest: the backend to use, or skip with how to enable capture (fail in CI)."""
    import pytest

    from sipharness.hostenv import tools_required

    ok, reason = capture_available(backend)
    if ok:
        return reason
    if tools_required():
        pytest.fail(f"SIPHARNESS_REQUIRE_TOOLS=1 and packet capture is unavailable: {reason}")
    pytest.skip(f"packet checks skipped: {reason}")


_STAT_LINES = {
    "captured": re.compile(r"(\d+) packets? captured"),
    "received_by_filter": re.compile(r"(\d+) packets? received by filter"),
    "dropped_by_kernel": re.compile(r"(\d+) packets? dropped by kernel"),
}


def _inbound_loopback_socket() -> type:
    """A scapy socket class for ``lo`` that keeps only inbound frames: loopback shows every
    packet twice (outgoing, then incoming), scapy's L2Socket drops the outgoing copy."""
    from scapy.arch.linux import L2Socket
    from scapy.layers.l2 import Ether

    class InboundLoopbackSocket(L2Socket):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.LL = Ether  # Linux loopback frames carry an Ethernet header

    return InboundLoopbackSocket


class Capture:
    """Context manager capturing ``bpf`` on ``interface`` to the pcap at ``path``.

    Entering returns once the capturer listens, so traffic sent afterwards is captured.
    Leaving stops it (flushing the file) and fills ``stats``. Without ``path`` the pcap goes
    to a temporary file the caller owns afterwards.
    """

    def __init__(
        self,
        interface: str = "lo",
        bpf: str = DEFAULT_BPF,
        path: str | Path | None = None,
        *,
        backend: Backend = "auto",
        buffer_kib: int = 8192,
        start_timeout: float = 5.0,
        stop_timeout: float = 5.0,
        settle: float = 0.1,
    ) -> None:
        self.interface = interface
        self.bpf = bpf
        if path is None:
            fd, name = tempfile.mkstemp(prefix="sipharness-", suffix=".pcap")
            os.close(fd)
            path = name
        self.path = Path(path)
        self.backend = backend
        self.buffer_kib = buffer_kib
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.settle = settle
        self.stats = CaptureStats()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: list[str] = []
        self._reader: threading.Thread | None = None
        self._sniffer: Any = None

    def __enter__(self) -> Capture:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        ok, which = capture_available(self.backend)
        if not ok:
            raise CaptureError(which)
        self.stats.backend = which
        if which == "tcpdump":
            self._start_tcpdump()
        else:
            self._start_scapy()

    def _start_tcpdump(self) -> None:
        tcpdump = shutil.which("tcpdump")
        assert tcpdump is not None
        cmd = [
            tcpdump,
            "-U",
            "--immediate-mode",
            "-n",
            "-i",
            self.interface,
            "-s",
            "0",
            "-B",
            str(self.buffer_kib),
            "-w",
            str(self.path),
        ]
        if os.geteuid() == 0:
            cmd += ["-Z", "root"]  # keep write access to a root-owned path
        cmd.append(self.bpf)
        listening = threading.Event()
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        stderr = self._proc.stderr
        assert stderr is not None

        def read() -> None:
            for raw in stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                self._stderr.append(line)
                if "listening on" in line:
                    listening.set()
            listening.set()

        self._reader = threading.Thread(target=read, name="tcpdump-stderr", daemon=True)
        self._reader.start()
        listening.wait(self.start_timeout)
        if self._proc.poll() is not None or not any("listening on" in x for x in self._stderr):
            self._kill()
            self._proc = None
            raise CaptureError("tcpdump did not start listening: " + " | ".join(self._stderr))

    def _start_scapy(self) -> None:
        from scapy.sendrecv import AsyncSniffer

        started = threading.Event()
        options: dict[str, Any] = {}
        if self.interface == "lo":
            options["L2socket"] = _inbound_loopback_socket()
        self._sniffer = AsyncSniffer(
            iface=self.interface,
            filter=self.bpf,
            store=True,
            started_callback=started.set,
            **options,
        )
        self._sniffer.start()
        if not started.wait(self.start_timeout):
            self._sniffer.stop(join=False)
            raise CaptureError("scapy sniffer did not start")

    def stop(self) -> CaptureStats:
        """Stop capturing, flush the pcap and return what the capturer reported.

        Waits ``settle`` seconds first: packets already delivered may still sit in the
        capture buffer, and both tcpdump (on SIGINT) and scapy drop what they have not read.
        """
        if self._proc is not None or self._sniffer is not None:
            time.sleep(self.settle)
        if self._proc is not None:
            self._stop_tcpdump()
        elif self._sniffer is not None:
            from scapy.utils import wrpcap

            sniffer, self._sniffer = self._sniffer, None
            packets = sniffer.stop() if sniffer.running else sniffer.results
            wrpcap(str(self.path), packets or [])
            self.stats.captured = len(packets or [])
        return self.stats

    def _stop_tcpdump(self) -> None:
        proc = self._proc
        assert proc is not None
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            self._kill()
        finally:
            if self._reader is not None:
                self._reader.join(self.stop_timeout)
            self._proc = None
        text = "\n".join(self._stderr)
        for name, pattern in _STAT_LINES.items():
            m = pattern.search(text)
            if m:
                setattr(self.stats, name, int(m.group(1)))

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(self.stop_timeout)

    @property
    def stderr(self) -> str:
        """What tcpdump wrote on stderr (its banner and statistics)."""
        return "\n".join(self._stderr)
