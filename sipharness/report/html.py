"""Turn allure-results into the HTML report with the Allure generator pinned in package.json."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path


class ReportError(RuntimeError):
    """The HTML report could not be generated; the message says why and what to do."""


def allure_generator(project_root: Path) -> Path:
    """Path of the pinned ``allure`` CLI, installed with ``npm ci`` on first use and again
    whenever package-lock.json changed since."""
    binary = project_root / "node_modules" / ".bin" / "allure"
    lock = project_root / "package-lock.json"
    stamp = project_root / "node_modules" / ".sipharness-lock"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else ""
    if binary.exists() and stamp.exists() and stamp.read_text() == wanted:
        return binary
    if not (project_root / "package-lock.json").exists():
        raise ReportError(f"{project_root}/package-lock.json is missing: cannot install Allure")
    npm = shutil.which("npm")
    if npm is None:
        raise ReportError(
            "npm is not installed, so the HTML report cannot be generated "
            "(Debian: apt-get install nodejs npm); allure-results were written"
        )
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=project_root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not binary.exists():
        raise ReportError(f"npm ci failed: {done.stderr.strip() or done.stdout.strip()}")
    stamp.write_text(wanted)  # a later pin bump in package-lock.json reinstalls
    return binary


def generate_html(results: Path, output: Path, project_root: Path, name: str) -> Path:
    """Generate the HTML report of ``results`` into ``output``; return its index.html."""
    binary = allure_generator(project_root)
    done = subprocess.run(
        [str(binary), "generate", str(results), "-o", str(output), "--name", name],
        cwd=project_root,
        capture_output=True,
        text=True,
        check=False,
    )
    index = output / "index.html"
    if done.returncode != 0 or not index.exists():
        raise ReportError(f"allure generate failed: {done.stderr.strip() or done.stdout.strip()}")
    return index
