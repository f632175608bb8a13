"""Shared fixtures: every test that needs a server gets a real beanstalkd.

``report`` lets a test (a soak) print its counts at the end of the run, in a
section of their own: pytest would otherwise keep a passing test's output to
itself, and under pytest-xdist the line must travel from the worker process
(as a user property of the test's report).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest_plugins = ["beanstalkt.testing"]

_REPORT = "report"


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report(line)``: show ``line`` in the run's "reports" section, passed or failed."""

    def add(line: str) -> None:
        request.node.user_properties.append((_REPORT, line))

    return add


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
