"""The Locust load generator end to end: headless runs, a fault by name, master + two workers."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from sipharness.hostenv import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = str(REPO / "loadtests" / "locustfile.py")
BRIDGE_PASSWORD = "sipharness-test-only"  # the mock bridge's fixture credential


def locust(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "locust", "-f", LOCUSTFILE, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def stats_rows(prefix: Path) -> dict[str, dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="", encoding="utf-8") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def sip_table(prefix: Path) -> dict[str, str]:
    with open(f"{prefix}_sip.csv", newline="", encoding="utf-8") as f:
        return {row["statistic"]: row["value"] for row in csv.DictReader(f)}


def test_a_30_s_headless_run_has_a_row_per_phase_and_no_failures(tmp_path: Path) -> None:
    """The issue's acceptance run: 30 s headless against the embedded mock bridge."""
    out = tmp_path / "run"
    log = tmp_path / "calls.jsonl"
    result = locust("--headless", "-u", "10", "-r", "5", "-t", "30s", "--stop-timeout", "5",
                    "--hold", "uniform:0.5,1.5", "--csv", str(out), "--html",
                    f"{out}.html", "--call-log", str(log), cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = stats_rows(out)
    for phase in ("INVITE → 401", "INVITE(auth) → 200", "call held", "BYE → 200"):
        assert int(rows[phase]["Request Count"]) > 0, phase
    assert rows["Aggregated"]["Failure Count"] == "0"
    answered = int(rows["INVITE(auth) → 200"]["Request Count"])
    assert int(rows["BYE → 200"]["Request Count"]) == answered
    table = sip_table(out)
    assert int(table["calls answered"]) == answered
    assert table["answer-seizure ratio"] == "100.00 %"
    assert int(table["join webhooks (embedded bridge)"]) == answered
    assert table["RTP loss"] == "0.00 %"
    assert 1.0 <= float(table["RTP MOS (worst call)"]) <= 4.5  # reported, on the E-model scale
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == answered and all(c["ok"] and c["rtp"]["expected"] for c in lines)
    assert all(1.0 <= c["rtp"]["mos"] <= 4.5 and c["rtp"]["jitter_ms"] >= 0 for c in lines)
    assert 'id="sipharness"' in Path(f"{out}.html").read_text()
    everything = result.stdout + result.stderr + log.read_text() + Path(f"{out}.html").read_text()
    assert BRIDGE_PASSWORD not in everything


def test_a_bridge_fault_shows_as_failures_named_by_what_happened(tmp_path: Path) -> None:
    out = tmp_path / "fault"
    result = locust("--headless", "-u", "2", "-r", "2", "-t", "3s", "--rtp", "off",
                    "--bridge-fault", "401-without-challenge", "--csv", str(out), cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    with open(f"{out}_failures.csv", newline="", encoding="utf-8") as f:
        failures = {(r["Name"], r["Error"]) for r in csv.DictReader(f)}
    assert failures == {("INVITE → 401", "CallFailure('401 without a usable challenge')")}
    assert "INVITE(auth) → 200" not in stats_rows(out)


def test_master_and_two_workers_add_up(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "dist"
    log = tmp_path / "calls.jsonl"
    master = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--master", "--headless",
         "--expect-workers", "2", "--master-bind-host", "127.0.0.1", "--master-bind-port",
         str(port), "-u", "6", "-r", "6", "-t", "5s", "--stop-timeout", "3", "--hold", "0.1",
         "--csv", str(out), "--call-log", str(log)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = [subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--worker", "--master-host",
         "127.0.0.1", "--master-port", str(port)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)]
    try:
        _, err = master.communicate(timeout=60)
        for w in workers:
            w.wait(timeout=20)
    finally:
        for p in (master, *workers):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert master.returncode == 0, err[-3000:]
    rows = stats_rows(out)
    answered = int(rows["INVITE(auth) → 200"]["Request Count"])
    assert answered > 0 and rows["Aggregated"]["Failure Count"] == "0"
    table = sip_table(out)
    assert int(table["calls answered"]) == answered
    assert int(table["join webhooks (embedded bridge)"]) == answered
    assert int(table["leave webhooks (embedded bridge)"]) == answered
    logs = sorted(tmp_path.glob("calls.worker-*.jsonl"))
    per_worker = [len(p.read_text().splitlines()) for p in logs]
    assert len(per_worker) == 2 and all(per_worker), per_worker
    assert sum(per_worker) == answered
    assert "worker-0" in table_text(out) and "worker-1" in table_text(out)


def table_text(prefix: Path) -> str:
    return Path(f"{prefix}_sip.csv").read_text()


def test_capacity_search_stops_by_itself_and_reports_the_last_rate_that_met_the_slo(
        tmp_path: Path) -> None:
    out = tmp_path / "capacity"
    shape = str(REPO / "loadtests" / "shapes" / "capacity.py")
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", f"{LOCUSTFILE},{shape}", "--headless",
         "--csv", str(out), "--hold", "0.2", "--rtp", "off", "--call-interval", "1",
         "--capacity-start-rate", "5", "--capacity-step-rate", "5",
         "--capacity-step-time", "2", "--capacity-max-steps", "2", "--stop-timeout", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    table = sip_table(out)
    assert table["capacity: highest call rate meeting the SLO"] == "10 calls/s"
    assert table["capacity step 5 calls/s"].startswith("met")
    assert "--capacity-max-steps" in table["capacity: stopped because"]


def test_a_scenario_that_is_more_than_a_dial_in_runs_through_the_executor(tmp_path: Path) -> None:
    out = tmp_path / "scripted"
    options = REPO / "scenarios" / "dialog" / "options_out_of_dialog.yaml"
    if not options.exists():
        pytest.skip(f"{options} is not in this checkout")
    result = locust("--headless", "-u", "2", "-r", "2", "-t", "3s", "--rtp", "off",
                    "--hold", "0.2", "--stop-timeout", "3", "--csv", str(out),
                    "--scenarios", f"{options},loadtests/scenarios", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = stats_rows(out)
    assert int(rows["scenario options_out_of_dialog"]["Request Count"]) > 0
    assert int(rows["INVITE(auth) → 200"]["Request Count"]) > 0
    assert rows["Aggregated"]["Failure Count"] == "0"


def test_the_web_ui_shows_the_sip_tables_and_never_the_password(tmp_path: Path) -> None:
    web = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--web-host", "127.0.0.1",
         "--web-port", str(web), "--autostart", "--autoquit", "0", "-u", "2", "-r", "2",
         "-t", "5s", "--hold", "0.5", "--rtp", "off", "--sip-password", "not-shown-anywhere"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        stats: dict[str, Any] = {}
        tables: dict[str, Any] = {}
        calls: dict[str, str] = {}
        page = ""
        for _ in range(40):  # up to 4 s for the first call to be reported
            time.sleep(0.1)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/stats/requests") as r:
                    stats = json.load(r)
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/") as r:
                    page = r.read().decode()
            except OSError:
                continue
            tables = {t["key"]: t["data"] for t in stats.get("extended_stats", [])}
            calls = {row["statistic"]: row["value"] for row in tables.get("sip-calls", [])}
            if int(calls.get("calls answered", 0)):
                break
        assert int(calls["calls answered"]) > 0
        assert "sip-generator" in tables
        assert "SIP calls" in page and "not-shown-anywhere" not in page
    finally:
        proc.terminate()
        proc.wait(timeout=20)
