"""The conformance suite catches every fault of the mock bridge, and passes without one.

For each fault, the scenarios that check the rules the fault breaks are run against a mock
bridge with that fault on; at least one must fail, and its failure must name a broken rule.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sipharness.bridge.faults import FAULTS
from sipharness.scenario.pytest_plugin import check_marker

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def broken_checks(fault: str) -> list[str]:
    """The CHECKLIST ids a fault's description says it breaks ("... (breaks TXN-05)")."""
    found = re.search(r"\(breaks ([^)]*)\)", FAULTS[fault])
    assert found, f"fault {fault} does not say which rule it breaks"
    return [c.strip() for c in found.group(1).split(",")]


def names_rule(failure: str, checks: list[str]) -> bool:
    """The failure names a broken check: on its ``rule:`` line (the failed step's note)
    when it has one, else among the scenario's ``checks:``."""
    lines = failure.splitlines()
    rule = next((line for line in lines if line.startswith("rule: ")), None)
    named = rule if rule is not None else next(
        (line for line in lines if line.startswith("checks: ")), "")
    return any(check in named for check in checks)


def run_suite(tmp: Path, name: str, *args: str, workers: int = 3
              ) -> tuple[int, list[tuple[str, str]], str]:
    """Run the scenarios with pytest; (exit code, [(test id, failure text)], output)."""
    junit = tmp / f"{name}.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPHARNESS_")}
    command = [sys.executable, "-m", "pytest", "scenarios", "-p", "no:cacheprovider",
               "-q", "-n", str(workers), f"--junitxml={junit}", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240, check=False)
    failures = []
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            for failure in case.findall("failure"):
                failures.append((f"{case.get('classname')}::{case.get('name')}",
                                 failure.text or failure.get("message") or ""))
    return done.returncode, failures, done.stdout + done.stderr


def test_every_fault_makes_a_scenario_fail_naming_the_broken_rule(tmp_path: Path) -> None:
    def one(fault: str) -> tuple[str, list[str], int, list[tuple[str, str]], str]:
        checks = broken_checks(fault)
        selection = " or ".join(check_marker(c) for c in checks)
        # Scenarios tagged slow (a 64·T1 wait) only when no other one catches the fault.
        for marks in (f"({selection}) and not slow", selection):
            code, failures, output = run_suite(tmp_path, fault, "--bridge-fault", fault,
                                               "-m", marks, "--maxfail=2")
            if any(names_rule(text, checks) for _, text in failures):
                break
        return fault, checks, code, failures, output

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(one, FAULTS))
    missed = []
    for fault, checks, code, failures, output in results:
        named = [(test, text) for test, text in failures if names_rule(text, checks)]
        if code == 5:
            missed.append(f"{fault}: no scenario checks {', '.join(checks)}")
        elif not named:
            tail = "\n".join(output.splitlines()[-15:])
            missed.append(f"{fault}: no failure naming {', '.join(checks)} "
                          f"(exit {code}, {len(failures)} failure(s))\n{tail}")
    assert not missed, "faults the suite does not catch:\n" + "\n\n".join(missed)


def test_the_suite_passes_against_the_mock_bridge_without_faults(tmp_path: Path) -> None:
    code, failures, output = run_suite(tmp_path, "clean", workers=8)
    assert not failures, "\n\n".join(f"{test}\n{text}" for test, text in failures)
    assert code == 0, output[-3000:]
