"""One finished call as Locust rows: a row per call phase, failures named by what happened.

Rows (request type ``SIP``): ``INVITE → 100``, ``INVITE → 401`` (challenge round trip),
``INVITE(auth) → 180``, ``INVITE(auth) → 200`` (post-dial delay), ``INVITE → 200`` (when the
target does not challenge), ``call held``, ``BYE → 200`` (teardown), and ``scenario NAME``
for a scripted scenario as a whole.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import IO, Any

from sipharness.agent import CallRecord

REQUEST_TYPE = "SIP"
CHALLENGE = "INVITE → 401"
TRYING = "INVITE → 100"
RINGING = "INVITE(auth) → 180"
POST_DIAL = "INVITE(auth) → 200"
ANSWER = "INVITE → 200"
HOLD = "call held"
TEARDOWN = "BYE → 200"

PHASE_ROWS: tuple[tuple[str, str], ...] = (
    ("invite_to_100", TRYING),
    ("invite_to_401", CHALLENGE),
    ("auth_invite_to_180", RINGING),
    ("auth_invite_to_200", POST_DIAL),
    ("bye_to_200", TEARDOWN),
)
"""CallRecord timing keys and the Locust row each becomes."""


class CallFailure(Exception):
    """What went wrong on a call, in words that group well: ``INVITE 503``,
    ``timeout waiting for 200``. Never carries Call-IDs, tags or times."""


@dataclass(frozen=True)
class PhaseRow:
    """One Locust request event: a phase's name, its time in ms, and a failure or None."""

    name: str
    ms: float
    failure: str | None = None


@dataclass
class CallResult:
    """What the load user learnt from one call, ready to report."""

    scenario: str
    record: CallRecord
    answered: bool
    ok: bool
    failure: str | None = None
    failed_phase: str | None = None
    hold_s: float | None = None
    far_end_hung_up: bool = False
    rtp: dict[str, Any] | None = None
    scenario_s: float | None = None
    """How long a scripted scenario took (it gets a row of its own)."""
    started_wall: float = field(default_factory=time.time)


def scenario_row(name: str) -> str:
    """The Locust row of a whole scripted scenario (see sipharness.load.scripted)."""
    return f"scenario {name}"


def failure_name(ending: str, status: int | None, challenged: bool, answered: bool,
                 detail: str = "") -> tuple[str, str]:  # fmt: skip
    """(row, failure name) for a call that ended as ``ending`` (see agent Outcome.ending)."""
    invite_row = POST_DIAL if challenged else CHALLENGE
    match ending:
        case "rejected":
            return invite_row, f"INVITE {status}"
        case "auth_failed":
            return POST_DIAL, f"INVITE {status} after credentials" if status else "auth failed"
        case "no_challenge":
            return CHALLENGE, f"{status or 401} without a usable challenge"
        case "timeout":
            if answered:
                return TEARDOWN, "timeout waiting for 200 to BYE"
            return invite_row, ("timeout waiting for 200" if challenged
                                else "timeout waiting for a response to INVITE")  # fmt: skip
        case "transport_error":
            first = detail.split(":", 1)[0] if detail else "send failed"
            return (TEARDOWN if answered else invite_row), f"transport error: {first}"
        case "bye_failed":
            return TEARDOWN, f"BYE {status}" if status else "BYE failed"
        case "cancelled":
            return invite_row, "INVITE cancelled"
    return invite_row, f"call ended {ending or 'unfinished'}"


def phase_rows(result: CallResult) -> list[PhaseRow]:
    """The Locust rows of one call: every phase it completed, then its failure if any.

    A failure in a phase whose answer did arrive (a 401 without a challenge) replaces
    that phase's row, so each phase counts once per call.
    """
    timings = result.record.timings
    rows = [PhaseRow(name, timings[key] * 1000) for key, name in PHASE_ROWS if key in timings]
    if "auth_invite_to_200" not in timings and "invite_to_200" in timings:
        rows.append(PhaseRow(ANSWER, timings["invite_to_200"] * 1000))
    if result.hold_s is not None:
        failure = "far end sent BYE while held" if result.far_end_hung_up else None
        rows.append(PhaseRow(HOLD, result.hold_s * 1000, failure))
    if result.scenario_s is not None and result.failure is None:
        rows.append(PhaseRow(scenario_row(result.scenario), result.scenario_s * 1000))
    if result.failure is not None and result.failed_phase is not None:
        done = next((row for row in rows if row.name == result.failed_phase), None)
        if done is not None:
            rows.remove(done)
            spent = done.ms
        elif result.scenario_s is not None:
            spent = result.scenario_s * 1000
        else:
            entries = result.record.entries
            spent = (entries[-1].time - entries[0].time) * 1000 if len(entries) > 1 else 0.0
        rows.append(PhaseRow(result.failed_phase, spent, result.failure))
    return rows


def call_log_line(result: CallResult, node: str) -> str:
    """One JSON line about a call: no message bytes, so no credentials."""
    record = result.record
    outcome = record.outcome
    data = {
        "time": result.started_wall,
        "node": node,
        "scenario": result.scenario,
        "call_id": record.call_id,
        "transport": record.transport,
        "ending": outcome.ending,
        "ok": result.ok,
        "answered": result.answered,
        "status": outcome.status,
        "failure": result.failure,
        "failed_phase": result.failed_phase,
        "timings_ms": {k: round(v * 1000, 3) for k, v in record.timings.items()},
        "hold_s": None if result.hold_s is None else round(result.hold_s, 3),
        "far_end_hung_up": result.far_end_hung_up,
        "messages": len(record.entries),
        "rtp": result.rtp,
    }
    return json.dumps(data, separators=(",", ":"))


class CallLog:
    """Appends one JSON line per call to a file (or does nothing without one)."""

    def __init__(self, path: str, node: str) -> None:
        self.node = node
        self._file: IO[str] | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def write(self, result: CallResult) -> None:
        if self._file is not None:
            self._file.write(call_log_line(result, self.node) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
