"""pytest plugin: scenario YAML files become tests (one per matrix case) run against a SIP target.

Loaded in every pytest run of the project, it acts only on YAML files in a ``scenarios/``
folder that holds ``schema.json``, and on a ``conformance/`` folder beside one (which then
also collects that ``scenarios/``). Options (each with an environment variable) name the
target; with none, each pytest process (each xdist worker) starts its own mock bridge and
webhook receiver, so scenarios never share a bridge's state across processes.
"""

from __future__ import annotations

import copy
import os
import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sipharness.scenario.executor import Target
    from sipharness.scenario.plan import Plan
    from sipharness.scenario.profiles import TargetProfile

OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--sip-target", "SIPHARNESS_TARGET",
     "HOST:PORT of the SIP target (default: start the mock bridge for the session)"),
    ("--sip-transport", "SIPHARNESS_TRANSPORT",
     "udp, tcp or tls for scenarios that do not set one (default udp)"),
    ("--sip-username", "SIPHARNESS_USERNAME", "digest username"),
    ("--sip-password", "SIPHARNESS_PASSWORD",
     "digest password (prefer the environment variable; never printed or reported)"),
    ("--room-code", "SIPHARNESS_ROOM_CODE", "room code to dial (the Request-URI user part)"),
    ("--target-profile", "SIPHARNESS_PROFILE",
     "mock, 100ms, generic-uas or a profile YAML path: what the target offers "
     "(default: mock without --sip-target, generic-uas with one)"),
    ("--sip-capture", "SIPHARNESS_CAPTURE",
     "always (default): capture every test and attach its redacted pcap and ladder; "
     "packets: only tests with a packets: section; never"),
)
FAULTS_ENV = "SIPHARNESS_BRIDGE_FAULTS"
TARGET_KEY = pytest.StashKey["TargetSession"]()
MARKERS_KEY = pytest.StashKey[set[str]]()
SCHEMA_FILE = "schema.json"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sipharness", "sipharness conformance (scenario YAML files)")
    for flag, env, text in OPTIONS:
        group.addoption(flag, dest=flag[2:].replace("-", "_"), default=None,
                        help=f"{text} [env {env}]")
    group.addoption("--bridge-fault", dest="bridge_fault", action="append", default=None,
                    help="start the mock bridge with this fault (repeatable) "
                         f"[env {FAULTS_ENV}, comma-separated]")


def option(config: pytest.Config, flag: str) -> str | None:
    """An option's value: the command line first, then its environment variable."""
    for name, env, _ in OPTIONS:
        if name == flag:
            value = config.getoption(flag[2:].replace("-", "_"))
            return value if value is not None else (os.environ.get(env) or None)
    raise KeyError(flag)


def marker_name(text: str) -> str:
    """A marker name usable in ``-m``: ``AUTH-03`` -> ``check_AUTH_03``, tags as identifiers."""
    return re.sub(r"\W", "_", text)


def check_marker(check: str) -> str:
    return "check_" + marker_name(check)


def register_marker(config: pytest.Config, name: str, text: str) -> None:
    """Declare a marker once (so ``--strict-markers`` accepts it)."""
    known = config.stash.setdefault(MARKERS_KEY, set())
    if name not in known:
        known.add(name)
        config.addinivalue_line("markers", f"{name}: {text}")


def register_check_markers(config: pytest.Config, checks: Iterable[str]) -> None:
    """``check_AUTH_03``-style markers for CHECKLIST ids."""
    from sipharness.scenario.checklist import CHECKS

    for check in checks:
        title = CHECKS[check].title if check in CHECKS else ""
        register_marker(config, check_marker(check), f"checks {check} {title}".rstrip())


def pytest_configure(config: pytest.Config) -> None:
    password = option(config, "--sip-password")
    if password:
        from sipharness.report.redact import register_secret

        register_secret(password)
    capture = option(config, "--sip-capture")
    if capture is not None:
        from sipharness.scenario.packets import capture_mode

        try:
            capture_mode(capture)
        except ValueError as exc:
            raise pytest.UsageError(f"--sip-capture: {exc}") from None


# -- collection ------------------------------------------------------------------------------


def is_scenario_folder(path: Path) -> bool:
    return path.name == "scenarios" and (path / SCHEMA_FILE).is_file()


def is_scenario_file(path: Path) -> bool:
    """A ``*.yaml``/``*.yml`` file somewhere under a ``scenarios/`` folder with schema.json."""
    if path.suffix not in (".yaml", ".yml"):
        return False
    return any(is_scenario_folder(parent) for parent in path.parents)


class ConformanceDir(pytest.Dir):  # type: ignore[misc]  # Dir is @final only by convention
    """``conformance/``: its own tests, then the scenario files of ``../scenarios``."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        yield from super().collect()
        scenarios = self.path.parent / "scenarios"
        if not self.session.isinitpath(scenarios, with_parents=True):
            yield pytest.Dir.from_parent(self, path=scenarios)


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if path.name == "conformance" and is_scenario_folder(path.parent / "scenarios"):
        return ConformanceDir.from_parent(parent, path=path)
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_scenario_file(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def display_path(config: pytest.Config, path: Path) -> str:
    """``scenarios/auth/x.yaml``: the path relative to the rootdir when inside it."""
    try:
        return path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return str(path)


class ScenarioFile(pytest.File):
    """One scenario file: one item per matrix case; a bad file is a collection error."""

    def collect(self) -> Iterable[pytest.Item]:
        from sipharness.scenario.checklist import CHECKS
        from sipharness.scenario.loader import load_scenario
        from sipharness.scenario.plan import expand
        from sipharness.scenario.source import ScenarioError

        try:
            scenario = load_scenario(self.path, display=display_path(self.config, self.path))
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        profile = target_profile(self.config)
        register_check_markers(self.config, CHECKS)  # every id, so any -m check_X is valid
        for tag in scenario.tags:
            register_marker(self.config, marker_name(tag), f"scenario tag {tag}")
        for plan in expand(scenario):
            name = f"{self.path.stem}[{plan.case_id}]" if plan.case_id else self.path.stem
            item = ScenarioItem.from_parent(self, name=name, plan=plan)
            for check in scenario.checks:
                item.add_marker(check_marker(check))
            for tag in scenario.tags:
                item.add_marker(marker_name(tag))
            reason = profile.skip_reason(scenario)
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
            yield item


def inherent_wait(plan: Plan) -> float:
    """Seconds a case must wait whatever the target does (pauses, silences, retransmission
    windows, waits for the target's own requests): the longest run first keeps a parallel
    run close to its longest case."""
    from sipharness.scenario import model as m

    total = 0.0
    for step in plan.steps:
        if isinstance(step, m.Pause | m.ExpectSilence):
            total += step.duration
        elif isinstance(step, m.ExpectWebhook):
            total += step.none_within or 0.0
        elif isinstance(step, m.ExpectRequest):
            total += step.within or 0.0
        elif isinstance(step, m.Expect) and step.retransmissions is not None:
            total += step.retransmissions.during or 0.0
    return total


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if any(isinstance(item, ScenarioItem) for item in items):
        items.sort(key=lambda item: -inherent_wait(item.plan)
                   if isinstance(item, ScenarioItem) else 0.0)


# -- the target --------------------------------------------------------------------------------


def target_profile(config: pytest.Config) -> TargetProfile:
    """The profile named by --target-profile (default mock, or generic-uas with a target)."""
    from sipharness.scenario.profiles import ProfileError, load_profile

    name = option(config, "--target-profile")
    if name is None:
        name = "generic-uas" if option(config, "--sip-target") else "mock"
    try:
        return load_profile(name)
    except ProfileError as exc:
        raise pytest.UsageError(f"--target-profile: {exc}") from None


def parse_hostport(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``host`` (port 5060); a usage error otherwise."""
    from sipharness.target import parse_target_address

    try:
        return parse_target_address(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--sip-target: {exc}") from None


def bridge_faults(config: pytest.Config) -> list[str]:
    faults = list(config.getoption("bridge_fault") or [])
    faults += [f.strip() for f in os.environ.get(FAULTS_ENV, "").split(",") if f.strip()]
    return faults


@dataclass
class TargetSession:
    """The target of this pytest process, started on first use and stopped at the end."""

    config: pytest.Config
    target: Target | None = None
    failure: str | None = None

    def get(self) -> Target:
        if self.failure is not None:
            raise RuntimeError(self.failure)
        if self.target is None:
            try:
                self.target = self._start()
            except Exception as exc:
                from sipharness.report.redact import redact_text

                self.failure = redact_text(f"could not start the SIP target: {exc}")
                raise RuntimeError(self.failure) from None
        return self.target

    def _start(self) -> Target:
        from sipharness.scenario.executor import Target

        config = self.config
        profile = target_profile(config)
        transport = option(config, "--sip-transport") or "udp"
        if transport not in ("udp", "tcp", "tls"):
            raise pytest.UsageError(f"--sip-transport: expected udp, tcp or tls, got {transport!r}")
        address = option(config, "--sip-target")
        if address is not None:
            host, port = parse_hostport(address)
            return Target(host=host, port=port, transport=transport,
                          username=option(config, "--sip-username") or "",
                          password=option(config, "--sip-password") or "",
                          room_code=option(config, "--room-code") or "", profile=profile)
        return self._start_mock(profile, transport)

    def _start_mock(self, profile: TargetProfile, transport: str) -> Target:
        from sipharness.bridge.process import MockBridge
        from sipharness.report.redact import register_secret
        from sipharness.scenario.executor import Target
        from sipharness.webhooks import WebhookReceiver

        if transport == "tls":
            raise pytest.UsageError("--sip-transport tls: the embedded mock bridge listens on "
                                    "UDP and TCP only; name a TLS target with --sip-target")
        receiver = WebhookReceiver().start()
        self.config.add_cleanup(receiver.close)
        overrides = copy.deepcopy(dict(profile.bridge))
        username = option(self.config, "--sip-username")
        password = option(self.config, "--sip-password")
        if username or password:
            # The mock accepts the credentials the run was given first, then the profile's.
            auth = overrides.setdefault("auth", {})
            auth["credentials"] = [
                {"username": username or "sipharness", "password": password or ""},
                *auth.get("credentials", [])]
        room = option(self.config, "--room-code")
        bridge = MockBridge(faults=bridge_faults(self.config), webhook_url=receiver.url,
                            overrides=overrides)
        bridge.__enter__()
        self.config.add_cleanup(lambda: bridge.__exit__(None, None, None))
        secret_header = None
        if bridge.config is not None:
            register_secret(bridge.config.webhook_secret)
            secret_header = bridge.config.webhook_secret_header
        return Target(host=bridge.sip_host, port=bridge.sip_port, transport=transport,
                      username=username or bridge.username,
                      password=password if password is not None else bridge.password,
                      room_code=room or bridge.room_code,
                      profile=profile, webhooks=receiver, roster_url=bridge.roster_url,
                      extra_ports={t: bridge.sip_port for t in bridge.transports},
                      webhook_secret_header=secret_header)


def target_session(config: pytest.Config) -> TargetSession:
    if TARGET_KEY not in config.stash:
        config.stash[TARGET_KEY] = TargetSession(config)
    return config.stash[TARGET_KEY]


@pytest.fixture(scope="session")
def sip_target(pytestconfig: pytest.Config) -> Target:
    """The SIP target of this run (for Python tests in conformance/), started on first use."""
    return target_session(pytestconfig).get()


# -- the items ---------------------------------------------------------------------------------


def explicit_transport(plan: Plan) -> str | None:
    """The transport a scenario case asks for itself (matrix axis or top-level field)."""
    if "transport" in plan.matrix:
        return plan.matrix["transport"]
    for line in plan.scenario.source_lines:
        if re.match(r"transport\s*:", line):
            return plan.transport
    return None


class ScenarioItem(pytest.Item):
    """One matrix case of one scenario, run on its own call."""

    def __init__(self, *, plan: Plan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        for check in plan.scenario.checks:
            self.extra_keyword_matches.add(check)

    def runtest(self) -> None:
        from sipharness.report import allure as report
        from sipharness.report.redact import redact_text
        from sipharness.scenario.executor import ExpectationFailed, execute
        from sipharness.scenario.packets import PacketCheckFailed, capture_for

        target = target_session(self.config).get()
        transport = explicit_transport(self.plan) or target.transport
        report.label_plan(self.plan, target=f"{target.host}:{target.port_for(transport)}",
                          profile=target.profile.name, transport=transport)
        try:
            with capture_for(self.plan, target, transport,
                             option(self.config, "--sip-capture") or "always") as wire:
                run = execute(self.plan, target, transport=transport)
            wire.check(run)
        except (ExpectationFailed, PacketCheckFailed, pytest.skip.Exception):
            raise
        except Exception as exc:
            raise ScenarioCrashed(redact_text(f"{type(exc).__name__}: {exc}")) from exc

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        from sipharness.report.redact import redact_text
        from sipharness.scenario.executor import ExpectationFailed
        from sipharness.scenario.packets import PacketCheckFailed

        if isinstance(excinfo.value, ExpectationFailed | PacketCheckFailed):
            return str(excinfo.value)
        cause = excinfo.value.__cause__
        if isinstance(excinfo.value, ScenarioCrashed) and cause is not None:
            return redact_text("".join(traceback.format_exception(cause)))
        return redact_text(str(super().repr_failure(excinfo, style)))

    def reportinfo(self) -> tuple[Path, int, str]:
        first = self.plan.steps[0].line if self.plan.steps else 1
        return self.path, first - 1, f"{self.plan.name}: {self.plan.scenario.title}"


class ScenarioCrashed(Exception):
    """The run broke for a reason other than a failed expectation (message redacted)."""


