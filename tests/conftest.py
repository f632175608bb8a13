"""Shared fixtures: every test that needs a server gets a real beanstalkd.

``report`` lets a test (a soak) print its counts at the end of the run, in a
section of their own: pytest would otherwise keep a passing test's output to
itself, and under pytest-xdist the line must travel from the worker process
(as a user property of the test's report).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported for real by the plugin line below, which must come first
    from beanstalkt.testing import BeanstalkdServer

pytest_plugins = ["beanstalkt.testing"]

_REPORT = "report"


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report(line)``: show ``line`` in the run's "reports" section, passed or failed."""

    def add(line: str) -> None:
        request.node.user_properties.append((_REPORT, line))

    return add


@pytest.fixture
def servers() -> Iterator[list[BeanstalkdServer]]:
    """Three beanstalkd servers with a binlog each (a pool's), stopped after the test."""
    from beanstalkt.testing import BeanstalkdServer

    started: list[BeanstalkdServer] = []
    try:
        for _ in range(3):
            started.append(BeanstalkdServer(binlog=True).start())
        yield started
    finally:
        for server in started:
            server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = [
        f"{report.nodeid}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == _REPORT
    ]
    if lines:
        terminalreporter.section("reports")
        for line in lines:
            terminalreporter.line(line)
