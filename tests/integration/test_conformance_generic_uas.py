"""The conformance suite against SIPp as a plain authenticating UAS, with the generic-uas
profile: the scenarios that apply pass, every other one is skipped with a reason."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from sipharness.hostenv import free_port

ROOT = Path(__file__).resolve().parents[2]
# SIPp as a plain RFC 3261 authenticating UAS; the comment atop the scenario says what it does.
SCENARIO = ROOT / "fixtures" / "sipp" / "uas_generic_auth.xml"
USERNAME, PASSWORD = "trunk", "uas-secret-7d1"
pytestmark = [pytest.mark.integration, pytest.mark.sipp]


def wait_until_bound(port: int, process: subprocess.Popen[bytes]) -> None:
    """Return once something listens on UDP ``port`` (SIPp started); fail after 10 s."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        assert process.poll() is None, "SIPp exited at start"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    pytest.fail(f"SIPp did not bind UDP port {port} within 10 s")


def test_applicable_scenarios_pass_and_the_rest_are_skipped_with_reasons(
        require_tool: Callable[[str], str], tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    port = free_port()
    uas = subprocess.Popen(
        [sipp, "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(port), "-t", "u1", "-m", "50",
         "-set", "user", USERNAME, "-set", "pass", PASSWORD, "-timeout", "120", "-nostdin",
         "-trace_err", "-error_file", str(tmp_path / "sipp-errors.log")],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    junit = tmp_path / "generic.xml"
    try:
        wait_until_bound(port, uas)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIPHARNESS_")}
        env["SIPHARNESS_PASSWORD"] = PASSWORD
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "conformance", "-p", "no:cacheprovider", "-q",
             f"--sip-target=127.0.0.1:{port}", "--target-profile=generic-uas",
             f"--sip-username={USERNAME}", "--room-code=abc-defg-hij",
             f"--junitxml={junit}", "-rs"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    finally:
        uas.kill()
        uas.wait(timeout=10)
    output = done.stdout + done.stderr
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    failed = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    passed = [c for c in cases if c not in failed and c not in skipped]
    assert not failed, "\n\n".join(
        f"{c.get('name')}: {(c.find('failure') or c.find('error')).text}"  # type: ignore[union-attr]
        for c in failed)
    assert passed, "no scenario applied to a plain authenticating UAS\n" + output[-2000:]
    assert skipped, "every scenario ran against SIPp: the profile skipped nothing"
    for case in skipped:
        reason = case.find("skipped").get("message", "")  # type: ignore[union-attr]
        assert "generic-uas" in reason, f"{case.get('name')} skipped without a reason: {reason}"
    assert PASSWORD not in output
