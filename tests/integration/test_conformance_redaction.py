"""No password or digest response of a conformance run reaches allure-results or the output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Pa55-redact-me-9f3"
pytestmark = pytest.mark.integration
DIGEST_SECRET = re.compile(r'(?i)\b(response|cnonce)\s*=\s*"?(?!\[REDACTED\])[0-9a-zA-Z+/=]{8,}')


def test_allure_results_and_output_hold_no_password_and_no_digest_response(
        tmp_path: Path) -> None:
    results = tmp_path / "allure-results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPHARNESS_")}
    env["SIPHARNESS_PASSWORD"] = PASSWORD
    # The mock bridge accepts this password (it is configured from the runner's options);
    # one passing call and one failing wrong-password case put Authorization headers on the
    # wire, in the attachments and in a failure message.
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "conformance", "-p", "no:cacheprovider", "-q", "-n", "2",
         "-k", "authenticated_call or wrong_credentials", f"--alluredir={results}",
         "--sip-username=sipharness", "-o", "log_cli=true", "--log-level=DEBUG"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    output = done.stdout + done.stderr
    files = [p for p in results.rglob("*") if p.is_file()]
    texts = {p.name: p.read_bytes().decode("utf-8", "replace") for p in files}
    assert any("Authorization: Digest" in t for t in texts.values()), \
        "no attachment shows the Authorization header: the search below would prove nothing"
    assert any("[REDACTED]" in t for t in texts.values())
    for name, text in [*texts.items(), ("pytest output", output)]:
        assert PASSWORD not in text, f"the password is in {name}"
        leak = DIGEST_SECRET.search(text)
        assert leak is None, f"a digest {leak.group(1)} value is in {name}: {leak.group(0)}"
