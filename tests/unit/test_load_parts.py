"""Load generator pieces without Locust running: options, rows, totals, shapes, saturation."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pytest

from sipharness.agent import CallRecord
from sipharness.load.calls import CallCounters, CallTotals
from sipharness.load.dialin import LoadPlanError, as_load_plan, load_plans
from sipharness.load.options import HoldTime, parse_weights, target_from
from sipharness.load.phases import (
    CHALLENGE,
    HOLD,
    POST_DIAL,
    TEARDOWN,
    CallResult,
    call_log_line,
    failure_name,
    phase_rows,
)
from sipharness.load.report import add_to_html_report, html_section
from sipharness.load.saturation import Saturation, percentile, udp_counters
from sipharness.load.shapes import judge_step, percentile_between
from sipharness.scenario import expand, load_scenario
from sipharness.target import parse_target_address

REPO = Path(__file__).resolve().parents[2]


def test_hold_time_distributions_sample_within_their_bounds() -> None:
    rng = random.Random(7)
    assert HoldTime.parse("3").sample(rng) == 3.0
    uniform = [HoldTime.parse("uniform:2,4").sample(rng) for _ in range(200)]
    assert min(uniform) >= 2 and max(uniform) <= 4
    exp = [HoldTime.parse("exp:10").sample(rng) for _ in range(2000)]
    assert 8 < sum(exp) / len(exp) < 12
    assert all(HoldTime.parse("normal:1,5").sample(rng) >= 0 for _ in range(200))


@pytest.mark.parametrize("text", ["-1", "uniform:5,2", "exp", "exp:1,2", "poisson:3", "x"])
def test_bad_hold_times_are_refused_with_the_option_name(text: str) -> None:
    with pytest.raises(ValueError, match="--hold"):
        HoldTime.parse(text)


def test_target_options() -> None:
    assert parse_target_address("[::1]:5070") == ("::1", 5070)
    assert parse_target_address("bridge.example") == ("bridge.example", 5060)
    options = argparse.Namespace(sip_target="127.0.0.1:5080", sip_transport="TCP",
                                 sip_username="u", sip_password="p", room_code="abc")
    target = target_from(options)
    assert target is not None and target.transport == "tcp" and target.address == "127.0.0.1:5080"
    assert target_from(argparse.Namespace(sip_target="")) is None
    assert parse_weights("a=5, b=0.5") == {"a": 5.0, "b": 0.5}
    with pytest.raises(ValueError):
        parse_weights("a")


def _result(timings: dict[str, float], **kw: object) -> CallResult:
    record = CallRecord("cid", "sip:x@y", "UDP")
    record.timings.update(timings)
    return CallResult("dial_in", record, answered=bool(kw.pop("answered", True)), ok=True,
                      **kw)  # type: ignore[arg-type]


def test_a_clean_call_gives_one_row_per_phase() -> None:
    rows = phase_rows(_result({"invite_to_401": 0.004, "auth_invite_to_200": 0.02,
                               "invite_to_200": 0.03, "bye_to_200": 0.005}, hold_s=2.0))
    assert [(r.name, r.failure) for r in rows] == [
        (CHALLENGE, None), (POST_DIAL, None), (TEARDOWN, None), (HOLD, None)]
    assert rows[1].ms == pytest.approx(20.0)


def test_a_failed_phase_replaces_its_row_and_names_what_happened() -> None:
    row, name = failure_name("no_challenge", 401, False, False)
    rows = phase_rows(_result({"invite_to_401": 0.004}, answered=False, failure=name,
                              failed_phase=row))
    assert [(r.name, r.failure) for r in rows] == [(CHALLENGE, "401 without a usable challenge")]
    assert failure_name("rejected", 503, True, False) == (POST_DIAL, "INVITE 503")
    assert failure_name("timeout", None, True, False) == (POST_DIAL, "timeout waiting for 200")
    assert failure_name("timeout", None, True, True)[0] == TEARDOWN
    held = phase_rows(_result({}, hold_s=0.5, far_end_hung_up=True))
    assert held[-1].failure == "far end sent BYE while held"


def test_the_call_log_line_is_json_without_message_bytes() -> None:
    line = call_log_line(_result({"invite_to_401": 0.001}), "worker-1")
    assert '"node":"worker-1"' in line and '"invite_to_401":1.0' in line
    assert "INVITE sip" not in line


def test_totals_add_up_nodes_and_measure_rates() -> None:
    totals = CallTotals()
    for node in ("w0", "w1"):
        counters = CallCounters()
        for _ in range(3):
            counters.call_started()
            counters.call_answered()
        counters.call_released()
        counters.call_ended(answered=True, ok=True)
        counters.call_ended(answered=False, ok=False)
        counters.rtp(100, 1, 2.0)
        totals.add(node, counters.take())
        assert counters.take()["delta"]["started"] == 0
    assert totals.total.started == 6 and totals.held == 4 and totals.held_peak == 4
    assert totals.answer_seizure_ratio == 0.5
    assert totals.rtp_loss_ratio == pytest.approx(0.01)
    totals.history.clear()
    totals.history.extend([{"time": 0.0, "started": 0, "answered": 0, "held": 0},
                           {"time": 10.0, "started": 50, "answered": 40, "held": 3}])
    assert totals.rate("started") == 5.0 and totals.rate("answered") == 4.0


def test_totals_report_the_mean_and_worst_mos_of_calls_with_one() -> None:
    totals = CallTotals()
    for node, scores in (("w0", (4.4, None)), ("w1", (3.1, 4.2))):
        counters = CallCounters()
        for mos in scores:
            counters.rtp(100, 0, 1.0, mos)
        totals.add(node, counters.take())
    rows = dict(totals.summary())
    assert rows["calls with RTP"] == "4"
    assert rows["RTP MOS (mean of calls)"] == "3.90" and rows["RTP MOS (worst call)"] == "3.10"
    assert dict(CallTotals().summary())["RTP MOS (worst call)"] == "n/a"


def test_capacity_step_percentile_counts_only_the_step() -> None:
    before = {10: 100}
    after = {10: 100, 20: 90, 900: 10}
    assert percentile_between(before, after, 0.95) == 900.0
    assert percentile_between(before, after, 0.5) == 20.0
    assert percentile_between(after, after, 0.5) is None
    assert judge_step(10, 100, 0, 50.0, 1000, 0.01).met
    assert not judge_step(20, 100, 5, 50.0, 1000, 0.01).met
    broke = judge_step(30, 100, 0, 1500.0, 1000, 0.01)
    assert not broke.met and "post-dial delay" in broke.reason


def test_saturation_reads_kernel_udp_counters_and_names_the_bottleneck(tmp_path: Path) -> None:
    snmp = tmp_path / "snmp"
    snmp.write_text("Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\n"
                    "Udp: 10 0 7 10 5\n")
    snmp6 = tmp_path / "snmp6"
    snmp6.write_text("Udp6InErrors                    \t2\nUdp6RcvbufErrors 1\n")
    assert udp_counters(str(snmp), str(snmp6)) == {"InErrors": 9, "RcvbufErrors": 6}
    assert udp_counters(str(tmp_path / "none"), str(tmp_path / "none")) == {
        "InErrors": 0, "RcvbufErrors": 0}
    assert percentile([1.0, 2.0, 3.0, 100.0], 0.95) == 100.0
    calm = Saturation("worker-0", cpu_percent=40, loop_lag_ms_p95=2)
    assert calm.problems() == []
    busy = Saturation("worker-0", cpu_percent=99, loop_lag_ms_p95=80, udp_rcvbuf_errors=3,
                      udp_in_errors=3)
    assert len(busy.problems()) == 3
    starved = Saturation("worker-1", cpu_percent=20, loop_lag_ms_p95=300, host_cpu_percent=100,
                         load_average=6.0, cores=2)
    assert "waits for a CPU" in starved.problems()[0]


def test_html_section_goes_into_locusts_report(tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    report.write_text("<html><body><div id=root></div></body></html>")
    section = html_section({"sip-calls": [("calls answered", "<5>")]}, ["worker-0: CPU"])
    assert add_to_html_report(str(report), section)
    text = report.read_text()
    assert text.index('id="sipharness"') < text.index("</body>") and "&lt;5&gt;" in text
    assert not add_to_html_report(str(tmp_path / "missing.html"), section)


def test_load_plans_read_weights_and_script_flows_that_are_not_dial_ins(tmp_path: Path) -> None:
    plans = load_plans(["loadtests/scenarios"], root=REPO)
    assert [p.name for p in plans] == ["dial_in"] and plans[0].hangs_up
    assert not plans[0].scripted
    weighted = load_plans([str(REPO / "loadtests/scenarios")], {"dial_in": 3})
    assert weighted[0].weight == 3
    with pytest.raises(LoadPlanError, match="no scenario named"):
        load_plans([str(REPO / "loadtests/scenarios")], {"nothing": 1})
    cancel = REPO / "scenarios" / "dialog" / "cancel_and_timers.yaml"
    if cancel.exists():
        assert as_load_plan(expand(load_scenario(cancel))[0]).scripted


def test_a_load_process_freezes_its_start_heap_and_collects_rarely() -> None:
    import gc

    from sipharness.load.run import GC_THRESHOLDS, calm_garbage_collector

    before = gc.get_threshold()
    try:
        calm_garbage_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS and GC_THRESHOLDS[0] > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
