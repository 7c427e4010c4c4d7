"""Allure plumbing for scenario tests: labels from the scenario, steps, redacted attachments.

Every function is a no-op when Allure is not recording (no ``--alluredir``). Everything
attached goes through sipharness.report.redact first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import allure

from sipharness.report.ladder import LadderEntry, mark_retransmissions, render_svg, render_text
from sipharness.report.redact import redact_message, redact_text
from sipharness.scenario.checklist import CHECKS

if TYPE_CHECKING:
    from sipharness.agent.record import CallRecord, MessageEntry
    from sipharness.scenario.plan import Plan


def feature_of(scenario_path: str) -> str:
    """The scenario's folder under scenarios/ (``scenarios/auth/x.yaml`` -> ``auth``)."""
    parts = PurePosixPath(scenario_path.replace("\\", "/")).parts
    if "scenarios" in parts:
        rest = parts[parts.index("scenarios") + 1 : -1]
        if rest:
            return "/".join(rest)
    return parts[-2] if len(parts) > 1 else "scenarios"


def epics_of(checks: Sequence[str]) -> list[str]:
    """The checklist areas (``Digest authentication``) of ``checks``, in order, once each."""
    out: list[str] = []
    for check in checks:
        item = CHECKS.get(check)
        area = item.area if item else check.split("-", 1)[0]
        if area not in out:
            out.append(area)
    return out


def label_plan(plan: Plan, *, target: str, profile: str, transport: str | None = None) -> None:
    """Title, description and labels of the running test from its scenario and case."""
    scenario = plan.scenario
    transport = transport or plan.transport
    title = scenario.title + (f" [{plan.case_id}]" if plan.case_id else "")
    allure.dynamic.title(title)
    checks = "\n".join(f"- {c}: {CHECKS[c].title if c in CHECKS else ''}" for c in scenario.checks)
    allure.dynamic.description(
        f"{scenario.description.strip()}\n\nChecks:\n{checks}\n\n"
        f"Scenario: {scenario.path}\nTarget: {target} (profile {profile}), "
        f"transport {transport}")
    for epic in epics_of(scenario.checks):
        allure.dynamic.epic(epic)
    allure.dynamic.feature(feature_of(scenario.path))
    for check in scenario.checks:
        allure.dynamic.story(check)
    allure.dynamic.severity(_severity(scenario.severity))
    allure.dynamic.tag(f"transport:{transport}")  # scenario tags arrive as markers
    for axis, value in plan.matrix.items():
        allure.dynamic.parameter(axis, value)


def _severity(name: str) -> allure.severity_level:
    for level in allure.severity_level:
        if level.value == name:
            return level
    return allure.severity_level.NORMAL


@contextmanager
def step(title: str) -> Iterator[None]:
    """One Allure step (the title is redacted)."""
    with allure.step(redact_text(title)):
        yield


def attach_text(name: str, text: str) -> None:
    """Attach plain text, redacted."""
    allure.attach(redact_text(text), name=name, attachment_type=allure.attachment_type.TEXT)


def attach_json(name: str, data: Any) -> None:
    """Attach JSON, redacted as text after serialising."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    allure.attach(redact_text(text), name=name, attachment_type=allure.attachment_type.JSON)


def message_exchange(record: CallRecord) -> str:
    """Every message of ``record`` in order: a header line with time and path, then the
    message exactly as on the wire except for redacted credentials."""
    start = record.entries[0].time if record.entries else 0.0
    blocks = []
    for entry in record.entries:
        arrow = "->" if entry.direction == "sent" else "<-"
        local = f"{entry.local[0]}:{entry.local[1]}"
        remote = f"{entry.remote[0]}:{entry.remote[1]}"
        note = f" [{entry.note or 'repeated'}]" if entry.note or entry.repeated else ""
        head = (f"=== +{(entry.time - start) * 1000:.1f} ms  {entry.direction} over "
                f"{entry.transport.upper()}  {local} {arrow} {remote}{note}")
        body = redact_message(entry.data).decode("utf-8", "replace").replace("\r\n", "\n")
        blocks.append(f"{head}\n{body.rstrip()}\n")
    return redact_text("\n".join(blocks))


def record_as_json(record: CallRecord) -> dict[str, Any]:
    """The call record as plain JSON data, with every message redacted."""
    start = record.entries[0].time if record.entries else 0.0
    return {
        "call_id": record.call_id,
        "target": record.target,
        "transport": record.transport,
        "outcome": {
            "ending": record.outcome.ending,
            "answered": record.outcome.answered,
            "status": record.outcome.status,
            "reason": record.outcome.reason,
            "failure": record.outcome.failure,
            "challenged": record.outcome.challenged,
            "torn_down_by": record.outcome.torn_down_by,
        },
        "timings": dict(record.timings),
        "notes": [{"at_ms": round((t - start) * 1000, 1), "note": n} for t, n in record.notes],
        "messages": [
            {
                "at_ms": round((e.time - start) * 1000, 1),
                "wall": e.wall,
                "direction": e.direction,
                "transport": e.transport,
                "local": f"{e.local[0]}:{e.local[1]}",
                "remote": f"{e.remote[0]}:{e.remote[1]}",
                "label": entry_label(e),
                "repeated": e.repeated,
                "note": e.note,
                "data": redact_message(e.data).decode("utf-8", "replace"),
            }
            for e in record.entries
        ],
    }


def entry_label(entry: MessageEntry) -> str:
    """The arrow label of a message; its first line when a header is too garbled to read."""
    try:
        return entry.label
    except ValueError:
        return entry.data.split(b"\r\n", 1)[0].decode("utf-8", "replace")


def ladder_entries(record: CallRecord) -> list[LadderEntry]:
    """One ladder entry per message of ``record`` (the target named by its URI)."""
    out = []
    for e in record.entries:
        far = record.target
        src, dst = ("sipharness", far) if e.direction == "sent" else (far, "sipharness")
        note = e.note or ("repeated" if e.repeated else "")
        out.append(LadderEntry(e.time, src, dst, entry_label(e), e.data, note))
    return out


def attach_call(record: CallRecord, name: str = "call") -> None:
    """Attach a call: ladder (SVG and text), the message exchange, the call record (JSON)."""
    entries = mark_retransmissions(ladder_entries(record))
    allure.attach(render_svg(entries), name=f"{name} ladder",
                  attachment_type=allure.attachment_type.SVG)
    attach_text(f"{name} ladder (text)", render_text(entries))
    attach_text(f"{name} messages", message_exchange(record))
    attach_json(f"{name} record", record_as_json(record))
