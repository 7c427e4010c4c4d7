"""Read a YAML scenario file into plain data plus the line and column of every field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class ScenarioProblem:
    """One thing wrong with a scenario file, located at ``path:line:column``."""

    path: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class ScenarioError(ValueError):
    """A scenario file that cannot be used; ``problems`` lists every problem found."""

    def __init__(self, problems: list[ScenarioProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def field_name(path: FieldPath) -> str:
    """``("steps", 2, "expect", "status")`` -> ``steps[2].expect.status``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass
class SourceMap:
    """1-based positions of the values (and mapping keys) of one parsed file."""

    path: str
    values: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)

    def position(self, fpath: FieldPath, *, key: bool = False) -> tuple[int, int]:
        """Position of ``fpath``, or of its nearest located parent."""
        table = self.keys if key and fpath in self.keys else self.values
        while fpath not in table and fpath:
            fpath = fpath[:-1]
            table = self.values
        return table.get(fpath, (1, 1))

    def problem(self, fpath: FieldPath, message: str, *, key: bool = False) -> ScenarioProblem:
        line, column = self.position(fpath, key=key)
        return ScenarioProblem(self.path, line, column, field_name(fpath), message)

    def line(self, fpath: FieldPath) -> int:
        return self.position(fpath)[0]


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, smap: SourceMap) -> None:
        self.loader = loader
        self.smap = smap
        self.problems: list[ScenarioProblem] = []

    def build(self, node: yaml.Node, fpath: FieldPath) -> Any:
        self.smap.values[fpath] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            data: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    line, col = _mark(key_node)
                    self.problems.append(
                        ScenarioProblem(
                            self.smap.path,
                            line,
                            col,
                            field_name(fpath),
                            f"expected a text key, got {key!r}",
                        )
                    )
                    continue
                if key == "<<":
                    line, col = _mark(key_node)
                    self.problems.append(
                        ScenarioProblem(
                            self.smap.path,
                            line,
                            col,
                            field_name(fpath),
                            "YAML merge keys (<<) are not supported; write the fields out",
                        )
                    )
                    continue
                child = (*fpath, key)
                if key in data:
                    line, col = _mark(key_node)
                    self.problems.append(
                        ScenarioProblem(
                            self.smap.path,
                            line,
                            col,
                            field_name(child),
                            "duplicate key (the earlier one would be silently lost)",
                        )
                    )
                    continue
                self.smap.keys[child] = _mark(key_node)
                data[key] = self.build(value_node, child)
            return data
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*fpath, i)) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)


def read_yaml(text: str, path: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document; raise ScenarioError with positions for any syntax problem."""
    smap = SourceMap(path)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError([ScenarioProblem(path, 1, 1, "", "the file is empty")])
        builder = _Builder(loader, smap)
        data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ScenarioError([ScenarioProblem(path, line, col, "", f"YAML: {problem}")]) from None
    finally:
        loader.dispose()
    if builder.problems:
        raise ScenarioError(builder.problems)
    return data, smap
