"""conformance/: the scenario files of ../scenarios run as tests (by the sipharness pytest
plugin), plus Python tests here for what a scenario file cannot say."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sipharness.agent import Agent, Credentials
from sipharness.scenario.checklist import CHECKS
from sipharness.scenario.executor import Target
from sipharness.scenario.pytest_plugin import option, register_check_markers, target_profile


def pytest_configure(config: pytest.Config) -> None:
    register_check_markers(config, CHECKS)


def pytest_report_header(config: pytest.Config) -> list[str]:
    profile = target_profile(config)
    where = option(config, "--sip-target") or "the mock bridge (started per worker)"
    transport = option(config, "--sip-transport") or "udp"
    return [f"sipharness target: {where}, profile {profile.name}, default transport {transport}"]


@pytest.fixture
def sip_agent(sip_target: Target) -> Iterator[Agent]:
    """An agent on the run's default transport, closed after the test."""
    with Agent(sip_target.transport,  # type: ignore[arg-type]
               local_host="::1" if ":" in sip_target.host else "127.0.0.1") as agent:
        yield agent


@pytest.fixture
def sip_credentials(sip_target: Target) -> Credentials:
    return Credentials(sip_target.username, sip_target.password)
