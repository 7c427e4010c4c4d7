"""scenarios/README.md shows what the loader accepts: every ```yaml example loads (or, when the
README marks it as a fragment, validates as that part of the schema), and the validate output
and error texts it shows are what `sipharness validate` prints."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

from sipharness.scenario import ScenarioError, ScenarioProblem, expand, load_scenario
from sipharness.scenario.checklist import CHECKS
from sipharness.scenario.loader import schema_problems
from sipharness.scenario.source import FieldPath, SourceMap, read_yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "scenarios" / "README.md"
SHOWN = "scenarios/README.md"
CASES = Path(__file__).parent / "scenario_cases"
STUB_CHECK = next(iter(CHECKS))  # any CHECKLIST id, for blocks that come without checks

# The line right before a ```yaml fence that makes the block a fragment of a scenario.
MARKER = re.compile(r"<!-- fragment: (\S+) -->")
MODELINE = re.compile(r"#\s*yaml-language-server:\s*\$schema=(\S+)")
# `FILE:LINE:COL: FIELD: MESSAGE`, as `sipharness validate` prints a problem.
SHOWN_PROBLEM = re.compile(r"\S+\.ya?ml:\d+:\d+: (?P<field>\S+): (?P<message>.+)")
SHOWN_OK = re.compile(r"OK  (?P<file>\S+) \((?P<cases>\d+) cases?\)")


@dataclass(frozen=True)
class Fence:
    """One fenced block of the README: its language, opening line, marker and text."""

    language: str
    line: int  # README line of the opening fence; text line k is README line `line + k`
    marker: str | None  # the KIND of a `<!-- fragment: KIND -->` line just before it
    marker_line: int | None
    text: str

    @property
    def kind(self) -> str:
        return self.marker or "scenario"

    @property
    def label(self) -> str:
        return f"line{self.line}-{self.kind}"

    def at_readme(self, problem: ScenarioProblem) -> str:
        """A problem found in this block's text, located in the README."""
        if problem.line > self.text.count("\n"):
            where = f"{SHOWN}:{self.line} (in what the test added to the block)"
        else:
            where = f"{SHOWN}:{self.line + problem.line}:{problem.column}"
        return f"{where}: {problem.field}: {problem.message}" if problem.field else (
            f"{where}: {problem.message}")


def read_fences(markdown: str) -> list[Fence]:
    """Every fenced code block, in order, with the fragment marker before it, if any."""
    lines = markdown.splitlines()
    fences: list[Fence] = []
    index = 0
    while index < len(lines):
        opening = re.match(r"(`{3,})\s*(\S*)", lines[index])
        if opening is None:
            index += 1
            continue
        ticks, language = opening.groups()
        end = next((j for j in range(index + 1, len(lines))
                    if re.fullmatch(rf"{ticks}`*\s*", lines[j])), None)
        if end is None:
            raise ValueError(f"{SHOWN}:{index + 1}: this fence is never closed")
        before = index - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marked = MARKER.fullmatch(lines[before].strip()) if before >= 0 else None
        fences.append(Fence(
            language=language,
            line=index + 1,
            marker=marked.group(1) if marked else None,
            marker_line=before + 1 if marked else None,
            text="\n".join(lines[index + 1:end]) + "\n",
        ))
        index = end + 1
    return fences


@cache
def readme_fences() -> tuple[Fence, ...]:
    return tuple(read_fences(README.read_text(encoding="utf-8")))


def yaml_blocks() -> list[Fence]:
    return [f for f in readme_fences() if f.language in ("yaml", "yml")]


def shown_lines(pattern: re.Pattern[str]) -> list[tuple[int, re.Match[str]]]:
    """(README line, match) for every line of a non-YAML block that ``pattern`` matches."""
    found = []
    for fence in readme_fences():
        if fence.language in ("yaml", "yml"):
            continue
        for offset, line in enumerate(fence.text.splitlines(), start=1):
            shown = pattern.fullmatch(line.strip())
            if shown:
                found.append((fence.line + offset, shown))
    return found


def load_problems(block: Fence, text: str, tmp_path: Path) -> list[str]:
    """Load ``text`` (the block, maybe completed at its end) as a file named after the
    README line, and expand it; the problems found, located in the README."""
    path = tmp_path / f"readme_line_{block.line}.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        scenario = load_scenario(path, display=path.name)
    except ScenarioError as exc:
        return [block.at_readme(p) for p in exc.problems]
    if not expand(scenario):
        return [f"{SHOWN}:{block.line}: expands into no case"]
    return []


def parsed(block: Fence) -> tuple[object, SourceMap]:
    """The block's data and positions, or a failure naming the README line."""
    try:
        return read_yaml(block.text, SHOWN)
    except ScenarioError as exc:
        problems = [block.at_readme(p) for p in exc.problems]
    pytest.fail("\n".join(problems))


def check_scenario(block: Fence, tmp_path: Path) -> list[str]:
    return load_problems(block, block.text, tmp_path)


def check_untitled(block: Fence, tmp_path: Path) -> list[str]:
    data, _ = parsed(block)
    if not isinstance(data, dict):
        return [f"{SHOWN}:{block.line}: an untitled scenario must be a mapping of fields"]
    missing = [key for key in ("title", "checks") if key not in data]
    if not missing:
        return [f"{SHOWN}:{block.line}: has a title and checks: drop its fragment marker"]
    stubs = {"title": f"README example at line {block.line}", "checks": f"[{STUB_CHECK}]"}
    completion = "".join(f"{key}: {stubs[key]}\n" for key in missing)
    return load_problems(block, block.text + completion, tmp_path)


def check_fields(block: Fence, tmp_path: Path) -> list[str]:
    data, smap = parsed(block)
    if not isinstance(data, dict):
        return [f"{SHOWN}:{block.line}: a fields fragment must be a mapping of top-level fields"]
    whole = {"title": "README example", "checks": [STUB_CHECK], "steps": ["ack"], **data}
    return [block.at_readme(p) for p in schema_problems(whole, smap)]


def check_steps(block: Fence, tmp_path: Path) -> list[str]:
    data, smap = parsed(block)
    if not isinstance(data, list) or not data:
        return [f"{SHOWN}:{block.line}: a steps fragment must be a non-empty list of steps"]

    def under_steps(table: dict[FieldPath, tuple[int, int]]) -> dict[FieldPath, tuple[int, int]]:
        return {("steps", *fpath): position for fpath, position in table.items()}

    placed = SourceMap(smap.path, under_steps(smap.values), under_steps(smap.keys))
    whole = {"title": "README example", "checks": [STUB_CHECK], "steps": data}
    return [block.at_readme(p) for p in schema_problems(whole, placed)]


def check_comments(block: Fence, tmp_path: Path) -> list[str]:
    if yaml.safe_load(block.text) is not None:
        return [f"{SHOWN}:{block.line}: marked as comments only, but holds YAML data"]
    return []


CHECKERS = {
    "scenario": check_scenario,
    "untitled": check_untitled,
    "fields": check_fields,
    "steps": check_steps,
    "comments": check_comments,
}
FRAGMENT_KINDS = tuple(kind for kind in CHECKERS if kind != "scenario")


def test_the_readme_has_examples_to_check() -> None:
    opened = [n for n, line in enumerate(README.read_text(encoding="utf-8").splitlines(), start=1)
              if re.match(r"```\s*ya?ml\b", line)]
    assert [b.line for b in yaml_blocks()] == opened
    assert any(b.kind == "scenario" for b in yaml_blocks()), "no whole scenario example left"
    assert shown_lines(SHOWN_PROBLEM), "no error text shown any more"


@pytest.mark.parametrize("block", yaml_blocks(), ids=lambda b: b.label)
def test_yaml_example_loads_or_is_a_valid_marked_fragment(block: Fence, tmp_path: Path) -> None:
    if block.kind not in CHECKERS:
        pytest.fail(f"{SHOWN}:{block.marker_line}: unknown fragment kind {block.kind!r} "
                    f"(expected one of: {', '.join(FRAGMENT_KINDS)})")
    problems = CHECKERS[block.kind](block, tmp_path)
    hint = "" if block.marker or re.search(r"^title:", block.text, re.MULTILINE) else (
        f"\n(an unmarked block must be a whole scenario; a part of one needs a "
        f"'<!-- fragment: KIND -->' line before it, KIND one of: {', '.join(FRAGMENT_KINDS)})")
    assert not problems, (
        f"the {block.kind} example at {SHOWN}:{block.line} does not hold:\n"
        + "\n".join(problems) + hint)


def test_every_fragment_marker_sits_right_before_a_yaml_block() -> None:
    markers = [n for n, line in enumerate(README.read_text(encoding="utf-8").splitlines(), start=1)
               if MARKER.fullmatch(line.strip())]
    placed = [b.marker_line for b in yaml_blocks() if b.marker_line is not None]
    stray = sorted(set(markers) - set(placed))
    assert not stray, f"fragment markers followed by no ```yaml block: {SHOWN} lines {stray}"


def test_editor_schema_lines_point_at_the_schema() -> None:
    scenario_folder = README.parent / "invite"
    shown = [(b.line, target) for b in yaml_blocks() for target in MODELINE.findall(b.text)]
    assert shown
    for line, target in shown:
        reached = Path(os.path.normpath(scenario_folder / target))
        assert reached == README.parent / "schema.json" and reached.is_file(), (
            f"{SHOWN}:{line}: $schema={target} does not reach scenarios/schema.json from a "
            f"file in a scenarios/ folder")


@cache
def loader_problems() -> tuple[str, ...]:
    """What the loader reports for the broken files of tests/unit/scenario_cases."""
    reported: list[str] = []
    for case in sorted(CASES.glob("*.yaml")):
        try:
            load_scenario(case)
        except ScenarioError as exc:
            reported.extend(f"{p.field}: {p.message}" for p in exc.problems)
    return tuple(reported)


def without_indexes(field: str) -> str:
    return re.sub(r"\[\d+\]", "[]", field)


@pytest.mark.parametrize(("line", "shown"), shown_lines(SHOWN_PROBLEM),
                         ids=[f"line{n}" for n, _ in shown_lines(SHOWN_PROBLEM)])
def test_shown_error_text_is_what_the_loader_says(line: int, shown: re.Match[str]) -> None:
    field = without_indexes(shown["field"])
    message = re.compile(re.escape(shown["message"]).replace(re.escape("..."), ".*"))
    said = [p for p in loader_problems() if without_indexes(p.split(": ", 1)[0]) == field]
    assert any(message.fullmatch(p.split(": ", 1)[1]) for p in said), (
        f"{SHOWN}:{line} shows '{shown['field']}: {shown['message']}', which the loader does "
        f"not say for any file in {CASES.relative_to(ROOT)} (add one that gets it, or fix the "
        f"README); for {field} it says:\n" + "\n".join(said or ["nothing"]))


@pytest.mark.parametrize(("line", "shown"), shown_lines(SHOWN_OK),
                         ids=[f"line{n}" for n, _ in shown_lines(SHOWN_OK)])
def test_shown_ok_line_matches_the_scenario_file(line: int, shown: re.Match[str]) -> None:
    cases = len(expand(load_scenario(ROOT / shown["file"], display=shown["file"])))
    assert cases == int(shown["cases"]), (
        f"{SHOWN}:{line} shows {shown['file']} with {shown['cases']} cases; it has {cases}")
