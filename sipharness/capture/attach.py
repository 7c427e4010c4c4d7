"""Attach a capture to the current Allure test: the redacted pcap and its ladder diagram."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sipharness.capture.analysis import read_pcap
from sipharness.report.ladder import entries_from_trace, render_svg, render_text
from sipharness.report.redact import redact_pcap


def attach_capture(path: str | Path, name: str = "capture") -> None:
    """Attach ``path`` (redacted copy) as PCAP and its ladder as SVG and text to Allure.

    Does nothing when Allure is not recording; the original pcap is never attached.
    """
    import allure

    with tempfile.TemporaryDirectory(prefix="sipharness-attach-") as tmp:
        redacted = Path(tmp) / f"{name}.pcap"
        redact_pcap(path, redacted)
        allure.attach.file(
            str(redacted), name=f"{name}.pcap", attachment_type=allure.attachment_type.PCAP
        )
        entries = entries_from_trace(read_pcap(redacted))
        allure.attach(
            render_svg(entries), name=f"{name} ladder", attachment_type=allure.attachment_type.SVG
        )
        allure.attach(
            render_text(entries),
            name=f"{name} ladder (text)",
            attachment_type=allure.attachment_type.TEXT,
        )
