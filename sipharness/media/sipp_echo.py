"""SIPp's RTP echo (``sipp -sn uas -rtp_echo``) as a far end for media tests and benchmarks."""

from __future__ import annotations

import shutil
import socket
import subprocess
from types import TracebackType

from sipharness.hostenv import free_port

_START_ATTEMPTS = 5
_READY_PROBES = 50
_PROBE = bytes.fromhex("80000000000000000000ec40")  # a bare RTP header: PT 0, SSRC 0xec40


class SippRtpEcho:
    """A SIPp UAS whose ``-rtp_echo`` returns RTP sent to ``address`` (and port + 2) unchanged.

    Used as a context manager: the process starts on entry (on free loopback ports, retried
    when a port was taken meanwhile), is known to echo before entry returns, and is killed on
    exit. ``timeout`` bounds SIPp's own life in case the harness dies first.
    """

    def __init__(self, sipp: str | None = None, host: str = "127.0.0.1", timeout: int = 120):
        path = sipp or shutil.which("sipp")
        if path is None:
            raise FileNotFoundError("sipp is not installed (Debian: apt-get install sip-tester)")
        self.sipp = path
        self.host = host
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.address: tuple[str, int] = (host, 0)

    def __enter__(self) -> SippRtpEcho:
        for _ in range(_START_ATTEMPTS):
            media_port = free_port(self.host)
            command = [
                self.sipp,
                "-sn", "uas",
                "-rtp_echo",
                "-mi", self.host,
                "-mp", str(media_port),
                "-i", self.host,
                "-p", str(free_port(self.host)),
                "-cp", str(free_port(self.host)),
                "-nostdin",
                "-timeout", f"{self.timeout}s",
            ]  # fmt: skip
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.address = (self.host, media_port)
            if self._wait_ready():
                return self
            self._kill()
        raise RuntimeError(f"SIPp's RTP echo did not start after {_START_ATTEMPTS} attempts")

    def _wait_ready(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((self.host, 0))
            probe.settimeout(0.1)
            for _ in range(_READY_PROBES):
                if self.process is None or self.process.poll() is not None:
                    return False
                probe.sendto(_PROBE, self.address)
                try:
                    if probe.recv(64) == _PROBE:
                        return True
                except TimeoutError:
                    continue
        return False

    def _kill(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        self.process = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._kill()
