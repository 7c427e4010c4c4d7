"""``sipharness conformance``: run the scenario suite with pytest and build the HTML report."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from sipharness.report.html import ReportError, generate_html

HELP = "run the conformance suite (default target: the embedded mock bridge) and build the report"
DESCRIPTION = """\
Run every scenario in scenarios/ as a pytest test against a SIP target, write Allure results,
and generate the HTML report (Allure's generator, pinned in package.json, via npm).

With no --sip-target, the embedded mock bridge is started for the run and its webhooks and
roster are observed. Against any other target, name a target profile so checks that cannot
apply there are skipped with a reason instead of failing.

The target options also read environment variables (SIPHARNESS_TARGET, SIPHARNESS_TRANSPORT,
SIPHARNESS_USERNAME, SIPHARNESS_PASSWORD, SIPHARNESS_ROOM_CODE, SIPHARNESS_PROFILE,
SIPHARNESS_BRIDGE_FAULTS); options win over the environment. Give the password through
SIPHARNESS_PASSWORD in CI so it never shows in a process list or a log. Without
--target-profile the profile is 'mock' for the embedded bridge and 'generic-uas' for any
other target. Arguments after '--' go to pytest unchanged.

examples:
  sipharness conformance
  sipharness conformance -k auth
  sipharness conformance --sip-target staging.example.net:5060 --target-profile 100ms \\
      --sip-username trunk --sip-password "$PASS" --room-code abc-defg-hij
  sipharness conformance --bridge-fault no-2xx-retransmit -k retransmission
  sipharness conformance -- -m "check_AUTH_03" -x

exit status: pytest's (0 all passed, 1 some failed, 2 interrupted or collection errors,
5 no scenario selected); 3 when the tests passed but the HTML report could not be built.
"""

PASS_THROUGH = (
    ("--sip-target", "HOST:PORT of the bridge (default: start the mock bridge)"),
    (
        "--sip-transport",
        "udp, tcp or tls, for scenarios that name none (default udp; "
        "tls needs --sip-target: the mock bridge has no TLS listener)",
    ),
    ("--sip-username", "digest username"),
    ("--sip-password", "digest password (never printed or reported)"),
    ("--room-code", "room code to dial (the Request-URI user part)"),
    (
        "--target-profile",
        "mock, 100ms, generic-uas, or a path to a profile YAML "
        "(default: mock without --sip-target, else generic-uas)",
    ),
    (
        "--sip-capture",
        "always (default: capture every test, attach its redacted pcap and ladder), "
        "packets (only scenarios with a packets: section) or never",
    ),
)


def project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding scenarios/ and conformance/."""
    for folder in (start, *start.parents):
        if (folder / "scenarios").is_dir() and (folder / "conformance").is_dir():
            return folder
    raise SystemExit(
        f"sipharness conformance: no folder at or above {start} holds both scenarios/ and "
        "conformance/; run it inside a sipharness checkout"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, text in PASS_THROUGH:
        parser.add_argument(flag, metavar=flag.removeprefix("--").split("-")[-1].upper(), help=text)
    parser.add_argument(
        "--bridge-fault",
        action="append",
        metavar="NAME",
        help="embedded mock bridge only: switch on a fault (repeatable; "
        "'sipharness bridge --list-faults' lists them)",
    )
    parser.add_argument("-k", metavar="EXPR", help="select scenarios by name (pytest -k)")
    parser.add_argument("-m", metavar="MARKEXPR", help="select by marker, e.g. 'auth and not slow'")
    parser.add_argument(
        "-n",
        "--workers",
        default=os.environ.get("SIPHARNESS_WORKERS", "8"),
        help="scenarios run concurrently in this many worker processes (default 8, or "
        "SIPHARNESS_WORKERS; 0 = one process). Scenarios mostly wait on SIP timers, so more "
        "workers than cores is right",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path("allure-results"),
        help="where Allure results go, relative to the checkout root (default allure-results)",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("allure-report"),
        help="where the HTML report goes, relative to the checkout root (default allure-report)",
    )
    parser.add_argument("--no-html", action="store_true", help="write allure-results only")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after '--': for pytest")


def run(args: argparse.Namespace) -> int:
    target = args.sip_target or os.environ.get("SIPHARNESS_TARGET")
    transport = args.sip_transport or os.environ.get("SIPHARNESS_TRANSPORT")
    if transport == "tls" and not target:
        print(
            "sipharness conformance: --sip-transport tls needs --sip-target: the embedded "
            "mock bridge listens on UDP and TCP only",
            file=sys.stderr,
        )
        return 2
    root = project_root(Path.cwd().resolve())
    results = (root / args.results_dir).resolve()
    report = (root / args.report_dir).resolve()
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(root / "conformance"),
        f"--alluredir={results}",
        "--clean-alluredir",
    ]
    env = dict(os.environ)
    for flag, _ in PASS_THROUGH:
        value = getattr(args, flag.removeprefix("--").replace("-", "_"))
        if value is None:
            continue
        if flag == "--sip-password":
            env["SIPHARNESS_PASSWORD"] = value  # kept off the command line (ps, CI logs)
        else:
            command.append(f"{flag}={value}")
    for fault in args.bridge_fault or ():
        command.append(f"--bridge-fault={fault}")
    if args.k:
        command += ["-k", args.k]
    if args.m:
        command += ["-m", args.m]
    if str(args.workers) not in ("0", "1"):
        command += ["-n", str(args.workers)]
    extra = list(args.pytest_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    command += extra
    started = time.monotonic()
    status = subprocess.run(command, cwd=root, env=env, check=False).returncode
    elapsed = time.monotonic() - started
    print(f"sipharness: suite took {elapsed:.1f} s; allure-results: {results}")
    if args.no_html:
        return status
    try:
        index = generate_html(results, report, root, name="sipharness conformance")
    except ReportError as exc:
        print(f"sipharness: no HTML report: {exc}", file=sys.stderr)
        return status or 3
    print(f"sipharness: HTML report: {index}")
    return status
