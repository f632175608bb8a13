"""Smoke test of benchmarks/throughput.py: it runs, and its report is complete and consistent.

The benchmark runs as a subprocess with ``--quick`` (tiny job counts, one
repetition) against servers it starts itself. Nothing here asserts on speed:
only on the report's structure, and on the ratios being computed against the
ceiling and greenstalk rows of the same run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import beanstalkt

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"
SIZES = [100, 2048]
MEMORY_JOBS = 500
# Bound against hangs only.
HANG = 180

try:
    import greenstalk  # noqa: F401
except ImportError:  # pragma: no cover - the benchmark then leaves its rows out
    HAVE_GREENSTALK = False
else:
    HAVE_GREENSTALK = True

CEILING = "raw-pipelined"
PEER = "greenstalk"


def expected_rows() -> dict[str, list[str]]:
    """Every row the benchmark must report, per group, in display order."""
    rows = {
        "put": [
            "raw-pipelined",
            "raw-lockstep",
            "tornado-lockstep",
            "greenstalk",
            "beanstalkt-sequential",
            "beanstalkt-pipelined",
        ],
        "reserve+delete": [
            "raw-pipelined",
            "raw-lockstep",
            "greenstalk",
            "beanstalkt-sequential",
            "beanstalkt-pipelined",
        ],
        "mixed": ["raw-pipelined", "greenstalk", "beanstalkt-sequential", "beanstalkt-pipelined"],
    }
    if hasattr(beanstalkt.Client, "put_many"):
        rows["put"].append("beanstalkt-put_many")
    if not HAVE_GREENSTALK:
        rows = {group: [name for name in names if name != PEER] for group, names in rows.items()}
    return rows


def run_benchmark(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
    )


def run_json(*args: str) -> dict[str, Any]:
    done = run_benchmark("--json", *args)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return run_json(
        "--body-sizes",
        ",".join(map(str, SIZES)),
        "--memory-jobs",
        str(MEMORY_JOBS),
    )


def test_report_has_its_sections_and_options(report: dict[str, Any]) -> None:
    assert set(report) == {"machine", "options", "results", "memory", "workers"}
    assert report["workers"] is None  # only with --workers
    assert report["options"]["body_sizes"] == SIZES
    assert report["options"]["repeat"] == 1  # --quick
    assert report["options"]["pin"] == "none"
    for key in ("jobs", "lockstep_jobs", "max_bytes"):
        assert isinstance(report["options"][key], int) and report["options"][key] > 0


def test_machine_line_names_every_version(report: dict[str, Any]) -> None:
    machine = report["machine"]
    for key in ("python", "tornado", "beanstalkd", "greenstalk", "beanstalkt", "nproc", "cpu"):
        assert isinstance(machine[key], str) and machine[key], key
    assert machine["python"] == platform.python_version()
    assert machine["beanstalkt"] == beanstalkt.__version__
    assert machine["beanstalkd"].startswith("beanstalkd")
    assert (machine["greenstalk"] != "not installed") == HAVE_GREENSTALK


def test_every_group_row_and_body_size_is_reported_once_in_order(report: dict[str, Any]) -> None:
    expected = [
        (size, group, name)
        for size in SIZES
        for group, names in expected_rows().items()
        for name in names
    ]
    got = [(entry["body_size"], entry["group"], entry["name"]) for entry in report["results"]]
    assert got == expected


def test_rates_are_positive_medians_of_the_runs(report: dict[str, Any]) -> None:
    for entry in report["results"]:
        runs = entry["runs"]
        assert len(runs) == report["options"]["repeat"]
        assert all(isinstance(run, float) and run > 0 and math.isfinite(run) for run in runs)
        assert entry["jobs_per_s"] == statistics.median(runs)


def test_ratios_are_against_the_same_runs_ceiling_and_greenstalk(report: dict[str, Any]) -> None:
    rates = {
        (entry["body_size"], entry["group"], entry["name"]): entry["jobs_per_s"]
        for entry in report["results"]
    }
    for entry in report["results"]:
        size, group = entry["body_size"], entry["group"]
        ceiling = rates[(size, group, CEILING)]
        assert entry["vs_ceiling"] == pytest.approx(entry["jobs_per_s"] / ceiling)
        assert entry["vs_ceiling"] > 0
        if HAVE_GREENSTALK:
            peer = rates[(size, group, PEER)]
            assert entry["vs_greenstalk"] == pytest.approx(entry["jobs_per_s"] / peer)
            assert entry["vs_greenstalk"] > 0
        else:
            assert entry["vs_greenstalk"] is None
        if entry["name"] == CEILING:
            assert entry["vs_ceiling"] == 1.0
        if entry["name"] == PEER:
            assert entry["vs_greenstalk"] == 1.0


def test_memory_figure_is_for_the_puts_asked_for_all_in_flight(report: dict[str, Any]) -> None:
    memory = report["memory"]
    assert memory["jobs"] == MEMORY_JOBS
    # Submitting never yields to the loop, so every put is still owed at once.
    assert memory["in_flight"] == MEMORY_JOBS
    assert memory["baseline_rss_mb"] > 0
    # The peak is read after the baseline (never below it), and the figure is in
    # megabytes: 500 puts of 100 bytes come nowhere near 100 MB (bytes would).
    assert 0 <= memory["rss_delta_mb"] < 100
    assert memory["tracemalloc_peak_mb"] > 0
    assert isinstance(memory["peak_reset_at_baseline"], bool)


def test_only_keeps_each_groups_references_and_pinning_runs() -> None:
    pin = "same" if hasattr(os, "sched_setaffinity") else "none"
    report = run_json(
        "--only", "sequential,tornado", "--body-sizes", "100", "--no-memory", "--pin", pin
    )
    assert report["memory"] is None
    assert report["options"]["pin"] == pin
    names = {(entry["group"], entry["name"]) for entry in report["results"]}
    references = [CEILING, PEER] if HAVE_GREENSTALK else [CEILING]
    assert names == {
        (group, name)
        for group in expected_rows()
        for name in [*references, "beanstalkt-sequential"]
    } | {("put", "tornado-lockstep")}


def test_table_output_is_a_markdown_table_with_the_machine_line() -> None:
    done = run_benchmark("--only", "put", "--body-sizes", "100", "--no-memory")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "Python" in lines[0] and "Tornado" in lines[0] and "beanstalkd" in lines[0]
    assert lines[1].startswith("jobs=") and "repeat=1" in lines[1]
    header = lines.index(
        "| body | group | client | jobs/s | vs ceiling | vs greenstalk | server CPU |"
    )
    rows = [line for line in lines[header + 2 :] if line.startswith("|")]
    assert [row.split("|")[3].strip() for row in rows] == expected_rows()["put"]
    # The server's CPU share in each timed window: a percentage for every row.
    assert all(re.fullmatch(r"\d+%", row.split("|")[7].strip()) for row in rows), rows
