"""``sipharness validate``: check scenario files without running them."""

from __future__ import annotations

import argparse
from pathlib import Path

from sipharness.scenario.checklist import CHECKS
from sipharness.scenario.loader import find_scenario_files, load_scenario
from sipharness.scenario.plan import expand
from sipharness.scenario.source import ScenarioError

HELP = "check scenario files (schema, variables, check ids) without running them"
DESCRIPTION = """\
Check scenario files without running them: YAML syntax, the JSON Schema, CHECKLIST ids,
${...} variables, matrix axes, step ids and digest variants.

Prints "OK  FILE (N cases)" per good file and "FILE:LINE:COL: FIELD: PROBLEM" per problem.
Exit status 0 when every file is valid, 1 otherwise.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[Path("scenarios")],
        metavar="PATH",
        help="scenario files or directories (default: scenarios)",
    )
    parser.add_argument(
        "--list-checks",
        action="store_true",
        help="also show which CHECKLIST ids the valid scenarios cover",
    )


def run(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not p.exists()]
    for p in missing:
        print(f"{p}: no such file or directory")
    files = find_scenario_files([p for p in args.paths if p.exists()])
    if not files and not missing:
        print("no scenario files (*.yaml, *.yml) found")
        return 1
    covered: dict[str, list[str]] = {}
    failed = bool(missing)
    for path in files:
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            failed = True
            for problem in exc.problems:
                print(problem)
            continue
        cases = len(expand(scenario))
        print(f"OK  {path} ({cases} case{'s' if cases != 1 else ''})")
        for cid in scenario.checks:
            covered.setdefault(cid, []).append(str(path))
    if args.list_checks:
        print()
        print_coverage(covered)
    return 1 if failed else 0


def print_coverage(covered: dict[str, list[str]]) -> None:
    """One line per CHECKLIST id: how many scenarios check it, its title."""
    for cid, item in CHECKS.items():
        count = len(covered.get(cid, []))
        mark = f"{count:3d}" if count else "  -"
        print(f"{mark}  {cid:<8} {item.title}")
    print(f"\n{len(covered)} of {len(CHECKS)} CHECKLIST ids covered")
