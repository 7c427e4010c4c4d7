"""Wires sipharness into Locust's events: options, the embedded bridge, statistics, reports.

``install()``, called by ``loadtests/locustfile.py``, adds the listeners once. Each Locust
process gets one :class:`LoadRun`: the master (or a local runner) starts the mock bridge
when no target is given, adds up every node's calls and writes the reports; workers count
their own calls and send them with Locust's reports.
"""

from __future__ import annotations

import gc
import logging
import socket
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

from sipharness.agent import Agent
from sipharness.load.calls import CallCounters, CallTotals
from sipharness.load.dialin import LoadPlan, LoadPlanError, load_plans
from sipharness.load.options import (
    HoldTime,
    Target,
    add_options,
    parse_timers,
    parse_weights,
    target_from,
)
from sipharness.load.phases import CallLog
from sipharness.load.report import (
    Rows,
    add_to_html_report,
    html_section,
    install_web_ui,
    write_csv_files,
)
from sipharness.load.saturation import Saturation, SaturationMonitor
from sipharness.load.target import EmbeddedBridge
from sipharness.scenario import ScenarioError
from sipharness.sip.timers import TimerConfig

log = logging.getLogger(__name__)


def local_address_for(host: str, port: int) -> str:
    """The local address the kernel would use to reach ``host:port`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])


REPO_ROOT = Path(__file__).resolve().parents[2]
REPORT_KEY = "sipharness"
GC_THRESHOLDS = (50_000, 20, 100)
"""Young-generation allocations between collections, then how many of each generation
before the next one is collected (Python's defaults: 700, 10, 10)."""
DRAIN, DRAINED = "sipharness-drain", "sipharness-drained"
DRAIN_MARGIN = 5.0
"""Seconds beyond --stop-timeout the master waits for workers to finish their calls."""
_RUNS: dict[int, LoadRun] = {}
_installed = False


def run_of(environment: Environment) -> LoadRun:
    """The LoadRun of this Locust process (made on ``init``)."""
    return _RUNS[id(environment)]


class LoadRun:
    """One Locust process's share of a load run."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        runner = environment.runner
        self.role = ("master" if isinstance(runner, MasterRunner)
                     else "worker" if isinstance(runner, WorkerRunner) else "local")  # fmt: skip
        options: Any = environment.parsed_options
        self.options: Any = options
        self.counters = CallCounters()
        self.totals = CallTotals()
        self.saturation_by_node: dict[str, Saturation] = {}
        self.monitor = SaturationMonitor(self.role)
        self.bridge: EmbeddedBridge | None = None
        self.target: Target | None = None
        self.hold = HoldTime.parse(getattr(options, "hold", "2") or "2")
        self.timers = TimerConfig(**parse_timers(getattr(options, "sip_timers", "") or ""))
        self.call_log = CallLog("", self.role)
        self.capacity: Rows = []
        self._sampler: gevent.Greenlet | None = None
        self._agents: list[Agent] = []
        self._next_agent = 0
        self.in_progress = 0
        """Calls this process has started and not yet reported."""
        self.draining = False
        """The run is ending: users start no new call (see drain_workers)."""
        self._drained: set[str] = set()
        if isinstance(runner, MasterRunner):
            runner.register_message(DRAINED, self._on_drained)
        elif isinstance(runner, WorkerRunner):
            runner.register_message(DRAIN, self._on_drain)
        self.plans: list[LoadPlan] = self._load_plans()

    @property
    def node(self) -> str:
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            return f"worker-{runner.worker_index}"
        return self.role

    def _load_plans(self) -> list[LoadPlan]:
        options = self.options
        paths = [p for p in (getattr(options, "scenarios", "") or "").split(",") if p.strip()]
        return load_plans([p.strip() for p in paths],
                          parse_weights(getattr(options, "scenario_weights", "") or ""),
                          root=REPO_ROOT,
                          transport=getattr(options, "sip_transport", "") or "udp")  # fmt: skip

    def new_agent(self) -> Agent:
        """An agent for a new user: its own (one source port per user), or with
        ``--source-ports N`` one of N shared ones, round robin."""
        target = self.target
        assert target is not None, "test_start sets the target before users start"
        shared = int(getattr(self.options, "source_ports", 0) or 0)
        if shared and len(self._agents) >= shared:
            self._next_agent = (self._next_agent + 1) % len(self._agents)
            return self._agents[self._next_agent]
        agent = Agent(target.transport,  # type: ignore[arg-type]
                      local_host=local_address_for(target.host, target.port),
                      timers=self.timers)  # fmt: skip
        if shared:
            self._agents.append(agent)
        return agent

    def owns(self, agent: Agent) -> bool:
        """True for a shared agent (closed by the run, not by a user)."""
        return agent in self._agents

    def close_agents(self) -> None:
        for agent in self._agents:
            agent.close()
        self._agents.clear()

    # ------------------------------------------------------------------ lifecycle

    def coordinate(self) -> None:
        """Master or local runner: start the embedded bridge when no target is given."""
        if self.role == "worker" or target_from(self.options) is not None:
            return
        self.bridge = EmbeddedBridge(self.options.sip_transport or "udp",
                                     self.options.bridge_fault)  # fmt: skip
        target = self.bridge.start()
        o = self.options
        o.sip_target, o.sip_transport = target.address, target.transport
        o.sip_username, o.sip_password, o.room_code = (target.username, target.password,
                                                       target.room_code)  # fmt: skip

    def test_start(self) -> None:
        self.draining = False
        if self.role != "master":
            calm_garbage_collector()
        self.target = target_from(self.options)
        if self.role == "worker":  # the master's options arrived with the spawn message
            self.hold = HoldTime.parse(self.options.hold or "2")
            self.timers = TimerConfig(**parse_timers(self.options.sip_timers or ""))
            self.plans = self._load_plans()
            self.monitor.node = self.node
        if self.role != "master":
            if self.target is None:
                raise RuntimeError("no SIP target: give --sip-target (workers get the "
                                   "master's; did the master start its mock bridge?)")  # fmt: skip
            path = getattr(self.options, "call_log", "") or ""
            if path and self.role == "worker":
                stem, dot, ext = path.rpartition(".")
                path = f"{stem}.{self.node}.{ext}" if dot else f"{path}.{self.node}"
            self.call_log.close()
            self.call_log = CallLog(path, self.node)
        self.monitor.start()
        if self.role != "worker" and self._sampler is None:
            self._sampler = gevent.spawn(self._sample_every_second)

    def _sample_every_second(self) -> None:
        while True:
            gevent.sleep(1.0)
            self.collect()

    def collect(self) -> None:
        """Master/local: fold in this process's own calls and take a per-second sample."""
        if self.role == "local":
            self.totals.add(self.role, self.counters.take())
            self.saturation_by_node[self.role] = self.monitor.current
        elif self.role == "master":
            self.saturation_by_node["master"] = self.monitor.current
        self.totals.sample()

    def report_to_master(self, data: dict[str, Any]) -> None:
        data[REPORT_KEY] = {"calls": self.counters.take(), "node": self.node,
                            "saturation": self.monitor.sample().to_dict()}  # fmt: skip

    def worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        report = data.get(REPORT_KEY)
        if not report:
            return
        self.totals.add(client_id, report["calls"])
        self.saturation_by_node[report["node"]] = Saturation.from_dict(report["saturation"])

    def reset(self) -> None:
        self.totals.reset()
        self.counters.reset()

    # ------------------------------------------------------------------ ending a distributed run

    def drain_workers(self) -> None:
        """Master, as the run stops: have every worker finish its calls in progress (starting
        no new one) and report them, before Locust's quit, which gives worker reports only
        half a second. Bounded by ``--stop-timeout`` + DRAIN_MARGIN."""
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner) or not runner.clients:
            return
        workers = {c.id for c in runner.clients.all}
        self._drained.clear()
        runner.send_message(DRAIN, {"timeout": self.environment.stop_timeout or 0.0})
        deadline = time.monotonic() + (self.environment.stop_timeout or 0.0) + DRAIN_MARGIN
        while not workers <= self._drained and time.monotonic() < deadline:
            gevent.sleep(0.1)
        if not workers <= self._drained:
            log.warning("%d worker(s) did not finish their calls in time: their last calls "
                        "may be missing from the report", len(workers - self._drained))

    def _on_drained(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._drained.add(msg.node_id)

    def _on_drain(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.draining = True
        gevent.spawn(self._report_when_idle, float((msg.data or {}).get("timeout", 0.0)))

    def _report_when_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.in_progress and time.monotonic() < deadline:
            gevent.sleep(0.05)
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            runner._send_stats()  # the finished calls' rows and counts, now
            runner.send_message(DRAINED, {"in_progress": self.in_progress})

    def quitting(self) -> None:
        self.close_agents()
        self.monitor.stop()
        self.call_log.close()
        if self._sampler is not None:
            self._sampler.kill(block=False)
            self._sampler = None
        try:
            if self.role != "worker":
                self.monitor.sample()
                self.collect()
                self._write_reports()
        finally:
            if self.bridge is not None:
                self.bridge.stop()
                self.bridge = None

    # ------------------------------------------------------------------ reports

    def warnings(self) -> list[str]:
        return [w for s in self.saturation_by_node.values() for w in s.problems()]

    def tables(self) -> dict[str, Rows]:
        """The SIP call table (with webhooks and capacity rows) and the saturation table."""
        calls = self.totals.summary()
        if self.bridge is not None:
            counts = self.bridge.webhook_counts()
            calls += [("join webhooks (embedded bridge)", str(counts["joins"])),
                      ("leave webhooks (embedded bridge)", str(counts["leaves"])),
                      ("repeated join webhooks", str(counts["repeated_joins"]))]  # fmt: skip
        calls += self.capacity
        generator: Rows = []
        for node, s in sorted(self.saturation_by_node.items()):
            generator += [
                (f"{node}: CPU % of a core (now / max)",
                 f"{s.cpu_percent:.0f} / {s.cpu_percent_max:.0f}"),
                (f"{node}: gevent loop lag ms (p95 / max)",
                 f"{s.loop_lag_ms_p95:.1f} / {s.loop_lag_ms_max:.1f}"),
                (f"{node}: kernel UDP drops (InErrors / RcvbufErrors)",
                 f"{s.udp_in_errors} / {s.udp_rcvbuf_errors}"),
                (f"{node}: host CPU % (all cores) / load average",
                 f"{s.host_cpu_percent:.0f} / {s.load_average:.1f} on {s.cores} cores"),
            ]  # fmt: skip
        warnings = self.warnings()
        generator.append(("generator bottleneck", "; ".join(warnings) if warnings else "no"))
        return {"sip-calls": calls, "sip-generator": generator}

    def _write_reports(self) -> None:
        tables = self.tables()
        for key, rows in tables.items():
            for name, value in rows:
                log.info("%s: %s: %s", key, name, value)
        for warning in self.warnings():
            log.warning("the generator may have been the bottleneck, not the target: %s",
                        warning)  # fmt: skip
        prefix = getattr(self.options, "csv_prefix", None)
        if prefix:
            write_csv_files(prefix, tables, self.totals.history)
            # Locust rewrites its own CSV once a second until exit: let it catch up with the
            # calls that ended while users stopped, so both CSVs count the same calls.
            gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)
        html_file = getattr(self.options, "html_file", None)
        if html_file:
            add_to_html_report(html_file, html_section(tables, self.warnings()))


def calm_garbage_collector() -> None:
    """Keep Python's cyclic garbage collector from eating the call rate.

    A call allocates thousands of objects that live for its few seconds and are freed by
    reference counting (no cycles). With the default thresholds those objects, alive at each
    young collection, are promoted until a full collection runs, and a full collection
    walks every object of Locust, gevent and the modules as well: at 1,000 calls/s it took a
    third of the process's CPU. Objects alive now (imports, the runner, the plans) are
    frozen out of collections, and collections run less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _on_init(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is None or not hasattr(environment.parsed_options, "hold"):
        return
    options = environment.parsed_options
    if (options.headless and not options.run_time and environment.shape_class is None
            and not isinstance(environment.runner, WorkerRunner)):
        sys.stderr.write("sipharness: a headless load run must be bounded: give -t/--run-time "
                         "or a shape from loadtests/shapes/\n")
        sys.exit(2)
    try:
        run = LoadRun(environment)
        _RUNS[id(environment)] = run
        run.coordinate()
    except (LoadPlanError, ScenarioError, ValueError) as exc:
        sys.stderr.write(f"sipharness: {exc}\n")
        sys.exit(2)
    web_ui = environment.web_ui
    if web_ui is not None:
        install_web_ui(web_ui, run.tables)


def install() -> None:
    """Add sipharness's listeners to Locust's events (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    events.init_command_line_parser.add_listener(add_options)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(lambda environment, **_: _RUNS[id(environment)].test_start()
                                   if id(environment) in _RUNS else None)  # fmt: skip
    events.quitting.add_listener(lambda environment, **_: _RUNS[id(environment)].quitting()
                                 if id(environment) in _RUNS else None)  # fmt: skip

    def reset_stats(**_: Any) -> None:
        for run in _RUNS.values():
            run.reset()

    events.reset_stats.add_listener(reset_stats)

    def test_stopping(environment: Environment, **_: Any) -> None:
        run = _RUNS.get(id(environment))
        if run is not None:
            run.drain_workers()

    events.test_stopping.add_listener(test_stopping)

    def report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
        for run in _RUNS.values():
            run.report_to_master(data)

    def worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        for run in _RUNS.values():
            run.worker_report(client_id, data)

    events.report_to_master.add_listener(report_to_master)
    events.worker_report.add_listener(worker_report)
