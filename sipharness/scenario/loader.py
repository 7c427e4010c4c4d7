"""Load a scenario file: YAML with positions, JSON Schema, semantic checks, then the model."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
from jsonschema.exceptions import ValidationError

from sipharness.scenario import model as m
from sipharness.scenario.checklist import CHECKS
from sipharness.scenario.source import (
    FieldPath,
    ScenarioError,
    ScenarioProblem,
    SourceMap,
    read_yaml,
)
from sipharness.scenario.variables import (
    BUILTIN_NAMES,
    BUILTINS,
    Template,
    TemplateError,
    check_ref,
)
from sipharness.sip.digest import WRONG_VARIANTS

PSEUDO_HEADERS = (":status", ":reason", ":to-tag", ":from-tag", ":body")


@cache
def schema() -> dict[str, Any]:
    """The scenario JSON Schema (Draft 2020-12), also at scenarios/schema.json."""
    text = resources.files("sipharness.scenario").joinpath("schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def requirement_names() -> tuple[str, ...]:
    """The target features a scenario may list in ``requires:``."""
    return tuple(schema()["$defs"]["requirement"]["enum"])


def load_scenario(path: str | Path, display: str | None = None) -> m.Scenario:
    """Load and validate one file; raise ScenarioError listing every problem found."""
    path = Path(path)
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([ScenarioProblem(name, 1, 1, "", f"cannot read: {exc}")]) from None
    data, smap = read_yaml(text, name)
    problems = schema_problems(data, smap)
    if problems:
        raise ScenarioError(problems)
    builder = _ScenarioBuilder(data, smap)
    scenario = builder.build(tuple(text.splitlines()))
    if builder.problems:
        raise ScenarioError(sorted(builder.problems, key=lambda p: (p.line, p.column)))
    return scenario


def find_scenario_files(paths: list[Path]) -> list[Path]:
    """The ``*.yaml``/``*.yml`` files named, or found under the directories named, sorted."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml")))
        else:
            found.append(p)
    return found


# -- schema errors -> file:line:col: field: problem ------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return json.dumps(value, ensure_ascii=False, default=str)


def _branch_errors(error: ValidationError) -> list[ValidationError] | None:
    """For anyOf/oneOf: the errors of the one branch whose type fits the value, if only one."""
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    fitting = [
        errs
        for errs in branches.values()
        if not any(e.validator in ("type", "const", "enum") and not e.relative_path for e in errs)
    ]
    if len(fitting) == 1:
        return fitting[0]
    return None


_VALUE_CHECKS = frozenset(
    {
        "type",
        "pattern",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
    }
)


def _leaves(error: ValidationError) -> list[ValidationError]:
    """The most telling errors: inside the one fitting anyOf/oneOf branch when it says more."""
    if error.validator in ("anyOf", "oneOf"):
        inner = _branch_errors(error)
        if inner and (
            any(
                len(e.absolute_path) > len(error.absolute_path) or e.validator not in _VALUE_CHECKS
                for e in inner
            )
            or not (isinstance(error.schema, dict) and "x-expected" in error.schema)
        ):
            return [leaf for e in inner for leaf in _leaves(e)]
    return [error]


def _message(error: ValidationError) -> tuple[FieldPath, str, bool]:
    """(field path, message, point at the key) for one jsonschema error."""
    fpath: FieldPath = tuple(error.absolute_path)
    schema_node = error.schema if isinstance(error.schema, dict) else {}
    expected = schema_node.get("x-expected")
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = sorted(schema_node.get("properties", {}))
        extra = [k for k in instance if k not in known]
        listed = f" (expected one of: {', '.join(known)})" if known else ""
        return (*fpath, extra[0]), f"unknown field{listed}", True
    if (
        error.validator == "oneOf"
        and error.validator_value
        and all(set(b) == {"required"} for b in error.validator_value)
    ):
        kinds = [b["required"][0] for b in error.validator_value]
        present = [k for k in kinds if k in instance]
        got = f"got {' and '.join(present)}" if present else "got none"
        return fpath, f"expected exactly one step kind ({', '.join(kinds)}), {got}", False
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in instance]
        return fpath, f"missing required field {', '.join(missing)}", False
    if error.validator == "propertyNames":
        bad = [k for k in instance if not _fits_names(k, error.validator_value)]
        what = schema_node.get("x-expected") or _describe_names(error.validator_value)
        return (*fpath, bad[0] if bad else ""), f"bad name: expected {what}", True
    if error.validator == "uniqueItems":
        return fpath, "values must be distinct", False
    if error.validator in ("minItems", "minProperties"):
        return fpath, "must not be empty", False
    if expected:
        return fpath, f"expected {expected}, got {_show(instance)}", False
    return fpath, f"{error.message}", False


def _fits_names(name: str, rule: dict[str, Any]) -> bool:
    if "pattern" in rule:
        return re.search(rule["pattern"], name) is not None
    if "enum" in rule:
        return name in rule["enum"]
    return True


def _describe_names(rule: dict[str, Any]) -> str:
    if "enum" in rule:
        return "one of " + ", ".join(rule["enum"])
    return f"a name matching {rule.get('pattern')}"


def schema_problems(data: Any, smap: SourceMap) -> list[ScenarioProblem]:
    """Every schema violation of ``data``, located through ``smap``, in file order."""
    problems: dict[tuple[int, int, str], ScenarioProblem] = {}
    for error in _validator().iter_errors(data):
        for leaf in _leaves(error):
            fpath, message, key = _message(leaf)
            problem = smap.problem(fpath, message, key=key)
            problems.setdefault((problem.line, problem.column, problem.field), problem)
    return sorted(problems.values(), key=lambda p: (p.line, p.column))


# -- semantic checks and the model ------------------------------------------------------------


class _ScenarioBuilder:
    def __init__(self, data: dict[str, Any], smap: SourceMap) -> None:
        self.data = data
        self.smap = smap
        self.problems: list[ScenarioProblem] = []
        self.variables: dict[str, Any] = data.get("variables", {})
        self.matrix: dict[str, list[Any]] = data.get("matrix", {})
        self.saved: set[str] = set()
        self.used_axes: set[str] = set()
        self.step_kinds: dict[str, str] = {}

    def problem(self, fpath: FieldPath, message: str, *, key: bool = False) -> None:
        self.problems.append(self.smap.problem(fpath, message, key=key))

    def build(self, source_lines: tuple[str, ...]) -> m.Scenario:
        d = self.data
        for i, cid in enumerate(d["checks"]):
            if cid not in CHECKS:
                self.problem(("checks", i), f"unknown CHECKLIST id {cid!r}")
        for name in self.variables:
            if name in BUILTIN_NAMES or name in BUILTINS:
                self.problem(("variables", name), f"{name!r} is a built-in variable name", key=True)
        transport = d.get("transport", "udp")
        for i, value in enumerate(self.matrix.get("transport", [])):
            if value not in ("udp", "tcp", "tls"):
                self.problem(
                    ("matrix", "transport", i), f"expected udp, tcp or tls, got {json.dumps(value)}"
                )
        variables = {
            name: self.template(str(_scalar(v)), ("variables", name), saved=set())
            for name, v in self.variables.items()
        }
        steps = tuple(self.step(i, raw) for i, raw in enumerate(d["steps"]))
        self.check_acks(steps)
        for axis in self.matrix:
            if axis != "transport" and axis not in self.used_axes:
                self.problem(
                    ("matrix", axis),
                    f"matrix axis {axis!r} is never used as "
                    f"${{matrix.{axis}}}, so its cases would all be the same",
                    key=True,
                )
        load = d.get("load", {})
        return m.Scenario(
            path=self.smap.path,
            title=d["title"],
            description=d.get("description", "").strip(),
            checks=tuple(d["checks"]),
            tags=tuple(d.get("tags", ())),
            severity=d.get("severity", "normal"),
            requires=tuple(d.get("requires", ())),
            transport=transport,
            variables=variables,
            matrix={
                axis: tuple(str(_scalar(v)) for v in values) for axis, values in self.matrix.items()
            },
            steps=steps,
            packets=tuple(self.packet(i, p) for i, p in enumerate(d.get("packets", ()))),
            load=m.LoadSettings(
                weight=float(load.get("weight", 1.0)), think_time=self.duration(load, "think_time")
            ),
            source_lines=source_lines,
        )

    # helpers ------------------------------------------------------------------------------

    def template(self, text: str, fpath: FieldPath, saved: set[str] | None = None) -> Template:
        try:
            tpl = Template.parse(text)
        except TemplateError as exc:
            self.problem(fpath, str(exc))
            return Template(text, (text,))
        for ref in tpl.refs():
            why = check_ref(
                ref, self.variables, self.matrix, self.saved if saved is None else saved
            )
            if why:
                self.problem(fpath, why)
            elif ref[0] == "matrix":
                self.used_axes.add(ref[1])
        return tpl

    def opt_template(self, obj: dict[str, Any], key: str, fpath: FieldPath) -> Template | None:
        return self.template(obj[key], (*fpath, key)) if key in obj else None

    def duration(self, obj: dict[str, Any], key: str) -> float | None:
        return m.parse_duration(obj[key]) if key in obj else None

    def regex(self, tpl: Template, fpath: FieldPath) -> None:
        if tpl.is_literal:
            try:
                re.compile(tpl.text.replace("$${", "${"))
            except re.error as exc:
                self.problem(fpath, f"not a valid regular expression: {exc}")

    def headers(self, items: list[Any], fpath: FieldPath) -> tuple[m.HeaderLine, ...]:
        out = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                out.append(m.HeaderLine(None, self.template(item, (*fpath, i))))
            else:
                out.append(
                    m.HeaderLine(
                        self.template(item[0], (*fpath, i, 0)),
                        self.template(item[1], (*fpath, i, 1)),
                    )
                )
        return tuple(out)

    def header_rules(self, rules: dict[str, Any], fpath: FieldPath) -> tuple[m.HeaderRule, ...]:
        out = []
        for name, rule in rules.items():
            rpath = (*fpath, name)
            if isinstance(rule, str):
                out.append(m.HeaderRule(name, present=rule == "present"))
                continue
            matches = self.opt_template(rule, "matches", rpath)
            if matches is not None:
                self.regex(matches, (*rpath, "matches"))
            out.append(
                m.HeaderRule(
                    name,
                    present=rule.get("present"),
                    equals=self.opt_template(rule, "equals", rpath),
                    matches=matches,
                    contains=self.opt_template(rule, "contains", rpath),
                    count=rule.get("count"),
                )
            )
        return tuple(out)

    def save_rules(self, rules: dict[str, Any], fpath: FieldPath) -> tuple[m.SaveRule, ...]:
        out = []
        for name, rule in rules.items():
            header, regex = (
                (rule, None) if isinstance(rule, str) else (rule["header"], rule.get("regex"))
            )
            if header.startswith(":") and header not in PSEUDO_HEADERS:
                self.problem(
                    (*fpath, name),
                    f"unknown pseudo-header {header!r} (known: {', '.join(PSEUDO_HEADERS)})",
                )
            if regex is not None:
                try:
                    re.compile(regex)
                except re.error as exc:
                    self.problem((*fpath, name, "regex"), f"not a valid regular expression: {exc}")
            out.append(m.SaveRule(name, header, regex))
        return tuple(out)

    def field_rules(self, fields: dict[str, Any], fpath: FieldPath) -> tuple[m.FieldRule, ...]:
        out = []
        for name, value in fields.items():
            vpath = (*fpath, name)
            if isinstance(value, dict):
                matches = self.opt_template(value, "matches", vpath)
                if matches is not None:
                    self.regex(matches, (*vpath, "matches"))
                equals = value.get("equals")
                out.append(
                    m.FieldRule(
                        name,
                        equals=self.template(equals, (*vpath, "equals"))
                        if isinstance(equals, str)
                        else equals,
                        matches=matches,
                        present=value.get("present"),
                    )
                )
            else:
                out.append(
                    m.FieldRule(
                        name,
                        equals=self.template(value, vpath) if isinstance(value, str) else value,
                    )
                )
        return tuple(out)

    def sdp(self, value: Any, fpath: FieldPath) -> m.SdpSpec | None:
        if value is None:
            return None
        if value is False:
            return "none"
        if value == "same":
            return "same"
        address = self.opt_template(value, "address", fpath)
        if "media" in value:
            for key in ("codecs", "direction", "crypto", "ptime"):
                if key in value:
                    self.problem(
                        (*fpath, key),
                        "give either media: or the one-line shorthand "
                        "(codecs, direction, crypto, ptime), not both",
                        key=True,
                    )
            media = tuple(_media(md) for md in value["media"])
        else:
            media = (_media(value),)
        return m.SdpOffer(media=media, address=address)

    def ref_step(self, step_id: str, fpath: FieldPath, kinds: frozenset[str], what: str) -> None:
        kind = self.step_kinds.get(step_id)
        if kind is None:
            self.problem(fpath, f"no earlier step has id {step_id!r}")
        elif kind not in kinds:
            self.problem(fpath, f"step {step_id!r} ({kind}) is not {what}")

    # steps --------------------------------------------------------------------------------

    def step(self, index: int, raw: Any) -> m.Step:
        spath: FieldPath = ("steps", index)
        if isinstance(raw, str):
            raw = {raw: {}}
        kind = next(k for k in raw if k in m.STEP_KINDS)
        body = raw[kind]
        fpath = (*spath, kind)
        common: dict[str, Any] = {
            "index": index,
            "line": self.smap.line(spath),
            "id": raw.get("id"),
            "note": raw.get("note"),
        }
        step = getattr(self, f"step_{kind}")(body if body is not None else {}, fpath, common)
        if step.id is not None:
            if step.id in self.step_kinds:
                self.problem((*spath, "id"), f"duplicate step id {step.id!r}")
            self.step_kinds[step.id] = kind
        return step

    def step_send(self, b: dict[str, Any], f: FieldPath, c: dict[str, Any]) -> m.Send:
        if "raw" in b:
            for key in ("method", "uri", "headers", "only_headers", "sdp", "body", "content_type"):
                if key in b:
                    self.problem(
                        (*f, key),
                        "raw: sends the whole message as written; "
                        f"{key} cannot be combined with it",
                        key=True,
                    )
        elif "method" not in b:
            self.problem(f, "missing required field method (or raw)")
        self.body_checks(b, f)
        retransmit = None
        if "retransmit" in b:
            r = b["retransmit"]
            retransmit = m.Retransmit(
                count=r.get("count"), at=tuple(m.parse_duration(x) for x in r.get("at", ()))
            )
        return m.Send(
            method=b.get("method"),
            uri=self.opt_template(b, "uri", f),
            headers=self.headers(b.get("headers", []), (*f, "headers")),
            only_headers=b.get("only_headers", False),
            sdp=self.sdp(b.get("sdp"), (*f, "sdp")),
            body=self.opt_template(b, "body", f),
            content_type=b.get("content_type"),
            raw=self.opt_template(b, "raw", f),
            transport=b.get("transport"),
            retransmit=retransmit,
            **c,
        )

    def body_checks(self, b: dict[str, Any], f: FieldPath) -> None:
        if "sdp" in b and "body" in b:
            self.problem((*f, "body"), "give either sdp: or body:, not both", key=True)
        if "content_type" in b and "body" not in b:
            self.problem((*f, "content_type"), "content_type: needs a body:", key=True)

    def step_answer_challenge(self, b: Any, f: FieldPath, c: dict[str, Any]) -> m.AnswerChallenge:
        if isinstance(b, str):
            b, cpath = {"credentials": b}, f
        else:
            cpath = (*f, "credentials")
        credentials = self.template(b["credentials"], cpath)
        variants = WRONG_VARIANTS
        if credentials.is_literal:
            names = [credentials.text]
        elif len(credentials.parts) == 1 and credentials.refs()[0][0] == "matrix":
            names = [str(v) for v in self.matrix.get(credentials.refs()[0][1], [])]
        else:
            names = []
            self.problem(cpath, "credentials: must be a variant name or one ${matrix.AXIS}")
        for name in names:
            if name != "correct" and name not in variants:
                self.problem(
                    cpath,
                    f"unknown credentials variant {name!r} (expected "
                    f"correct or one of: {', '.join(variants)})",
                )
        return m.AnswerChallenge(
            credentials=credentials,
            username=self.opt_template(b, "username", f),
            password=self.opt_template(b, "password", f),
            algorithm=b.get("algorithm"),
            **c,
        )

    def step_ack(self, b: dict[str, Any], f: FieldPath, c: dict[str, Any]) -> m.Ack:
        return m.Ack(
            withhold=b.get("withhold", False),
            headers=self.headers(b.get("headers", []), (*f, "headers")),
            **c,
        )

    def step_cancel(self, b: dict[str, Any], f: FieldPath, c: dict[str, Any]) -> m.Cancel:
        return m.Cancel(
            headers=self.headers(b.get("headers", []), (*f, "headers")),
            only_headers=b.get("only_headers", False),
            reason=self.opt_template(b, "reason", f),
            **c,
        )

    def step_bye(self, b: dict[str, Any], f: FieldPath, c: dict[str, Any]) -> m.Bye:
        return m.Bye(
            headers=self.headers(b.get("headers", []), (*f, "headers")),
            only_headers=b.get("only_headers", False),
            dialog=b.get("dialog", "current"),
            reason=self.opt_template(b, "reason", f),
            **c,
        )

    def step_reinvite(self, b: dict[str, Any], f: FieldPath, c: dict[str, Any]) -> m.Reinvite:
        self.body_checks(b, f)
        return m.Reinvite(
            headers=self.headers(b.get("headers", []), (*f, "headers")),
            only_headers=b.get("only_headers", False),
            sdp=self.sdp(b.get("sdp"), (*f, "sdp")),
            body=self.opt_template(b, "body", f),
            content_type=b.get("content_type"),
            **c,
        )

    def step_options(self, b: dict[str, Any], f: FieldPath, c: dict[str, Any]) -> m.Options:
        return m.Options(
            headers=self.headers(b.get("headers", []), (*f, "headers")),
            only_headers=b.get("only_headers", False),
            in_dialog=b.get("in_dialog", False),
            uri=self.opt_template(b, "uri", f),
            **c,
        )

    def step_pause(self, b: Any, f: FieldPath, c: dict[str, Any]) -> m.Pause:
        return m.Pause(duration=m.parse_duration(b), **c)

    def step_expect_silence(self, b: Any, f: FieldPath, c: dict[str, Any]) -> m.ExpectSilence:
        return m.ExpectSilence(duration=m.parse_duration(b), **c)

    def step_expect(self, b: dict[str, Any], f: FieldPath, c: dict[str, Any]) -> m.Expect:
        status = b["status"]
        statuses = tuple(status) if isinstance(status, list) else (status,)
        if "of" in b:
            self.ref_step(b["of"], (*f, "of"), m.REQUEST_KINDS, "a request")
        to_tag = None
        if "to_tag" in b:
            t = b["to_tag"]
            if isinstance(t, str):
                to_tag = m.ToTagRule("present" if t == "present" else "absent")
            else:
                rule: Literal["same_as", "differs_from"] = (
                    "same_as" if "same_as" in t else "differs_from"
                )
                self.ref_step(
                    t[rule], (*f, "to_tag", rule), frozenset({"expect"}), "an expect step"
                )
                to_tag = m.ToTagRule(rule, t[rule])
        sdp = None
        if "sdp" in b:
            sdp = m.SdpRules(**b["sdp"])
        retrans = None
        if "retransmissions" in b:
            r = b["retransmissions"]
            retrans = m.CountRule(
                count=r.get("count"),
                at_least=r.get("at_least"),
                at_most=r.get("at_most"),
                during=self.duration(r, "during"),
            )
        step = m.Expect(
            statuses=statuses,
            of=b.get("of"),
            within=self.duration(b, "within"),
            provisional=b.get("provisional", False),
            reason=self.opt_template(b, "reason", f),
            headers=self.header_rules(b.get("headers", {}), (*f, "headers")),
            to_tag=to_tag,
            sdp=sdp,
            retransmissions=retrans,
            save=self.save_rules(b.get("save", {}), (*f, "save")),
            **c,
        )
        self.saved.update(s.name for s in step.save)
        return step

    def step_expect_request(
        self, b: dict[str, Any], f: FieldPath, c: dict[str, Any]
    ) -> m.ExpectRequest:
        step = m.ExpectRequest(
            method=b["method"],
            within=self.duration(b, "within"),
            headers=self.header_rules(b.get("headers", {}), (*f, "headers")),
            answer=b.get("answer", 200),
            answer_headers=self.headers(b.get("answer_headers", []), (*f, "answer_headers")),
            save=self.save_rules(b.get("save", {}), (*f, "save")),
            **c,
        )
        self.saved.update(s.name for s in step.save)
        return step

    def step_expect_webhook(
        self, b: dict[str, Any], f: FieldPath, c: dict[str, Any]
    ) -> m.ExpectWebhook:
        if "none_within" in b:
            for key in ("within", "count", "save"):
                if key in b:
                    self.problem(
                        (*f, key),
                        "none_within: says no such webhook arrives; "
                        f"{key} cannot be combined with it",
                        key=True,
                    )
        # A webhook save reads a dotted path of the JSON body (data.peer_id) as its "header".
        saves = self.save_rules(b.get("save", {}), (*f, "save"))
        self.saved.update(s.name for s in saves)
        return m.ExpectWebhook(
            type=b["type"],
            fields=self.field_rules(b.get("fields", {}), (*f, "fields")),
            within=self.duration(b, "within"),
            none_within=self.duration(b, "none_within"),
            count=b.get("count"),
            save=saves,
            **c,
        )

    def step_expect_roster(
        self, b: dict[str, Any], f: FieldPath, c: dict[str, Any]
    ) -> m.ExpectRoster:
        return m.ExpectRoster(
            present=b["present"],
            peer=self.field_rules(b.get("peer", {}), (*f, "peer")),
            within=self.duration(b, "within"),
            **c,
        )

    def step_media(self, b: dict[str, Any], f: FieldPath, c: dict[str, Any]) -> m.Media:
        return m.Media(actions=b, **c)

    def check_acks(self, steps: tuple[m.Step, ...]) -> None:
        """An ACK needs an INVITE before it; a withheld ACK cannot follow a sent one."""
        invite_seen = False
        acked_at: int | None = None
        for step in steps:
            sends_invite = isinstance(step, m.Send) and (step.method or "").upper() == "INVITE"
            if sends_invite or isinstance(step, m.Reinvite | m.AnswerChallenge):
                invite_seen, acked_at = True, None
            elif isinstance(step, m.Ack):
                spath = ("steps", step.index, "ack")
                if not invite_seen:
                    self.problem(spath, "there is no INVITE before this step to ACK")
                elif step.withhold and acked_at is not None:
                    self.problem(
                        (*spath, "withhold"),
                        f"the ACK of this INVITE was already sent at steps[{acked_at}]",
                    )
                elif not step.withhold:
                    acked_at = step.index

    def packet(self, index: int, raw: dict[str, Any]) -> m.PacketCheck:
        kind, params = next(iter(raw.items()))
        fpath: FieldPath = ("packets", index, kind)
        if kind == "retransmission_schedule":
            self.ref_step(params["of"], (*fpath, "of"), m.REQUEST_KINDS | {"expect"},
                          "a request or an expect step")
        if isinstance(params, dict) and params.get("at_least", 0) > params.get("at_most", 1e9):
            self.problem((*fpath, "at_most"), "must not be less than at_least")
        return m.PacketCheck(kind, params, index, self.smap.line(("packets", index)))


def _scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _media(spec: dict[str, Any]) -> m.SdpMedia:
    default = m.SdpMedia()
    return m.SdpMedia(
        type=spec.get("type", "audio"),
        codecs=tuple(spec.get("codecs", default.codecs)),
        direction=spec.get("direction", "sendrecv"),
        port=spec.get("port"),
        crypto=spec.get("crypto", False),
        ptime=spec.get("ptime"),
    )
