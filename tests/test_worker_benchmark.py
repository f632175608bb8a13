"""Smoke test of benchmarks/workers.py: it runs, and reports every row consistently.

Tiny job counts, one repetition, servers it starts itself. Nothing here
asserts on speed: only on the report's structure and arithmetic.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "workers.py"
HANG = 180

ROWS = [
    "greenstalk",
    "worker-noop-c1",
    "worker-noop-c8",
    "worker-noop-c50",
    "worker-noop-c200",
    "worker-sleep10ms-c50",
    "asyncio-sleep10ms-c50",
    "worker-sleep10ms-c200",
    "asyncio-sleep10ms-c200",
]


def run(*arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", *arguments],
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quick_run_reports_every_row_as_json() -> None:
    results = json.loads(run("--json"))
    assert [row["name"] for row in results] == ROWS
    peer = results[0]["jobs_per_s"]
    for row in results:
        assert row["jobs_per_s"] > 0 and len(row["runs"]) == 1
        assert math.isclose(row["vs_greenstalk"], row["jobs_per_s"] / peer)
        if "sleep10ms" in row["name"]:
            assert row["ideal"] == row["concurrency"] / 0.01
            assert math.isclose(row["vs_ideal"], row["jobs_per_s"] / row["ideal"])
        else:
            assert row["ideal"] is None and row["vs_ideal"] is None
    assert [row["concurrency"] for row in results] == [1, 1, 8, 50, 200, 50, 50, 200, 200]


def test_quick_run_prints_a_table_of_the_chosen_rows() -> None:
    output = run("--rows", "greenstalk,worker-noop-c8")
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| row | jobs | jobs/s | vs greenstalk |")
    assert [line.split(" | ")[0] for line in lines[1:]] == ["| greenstalk", "| worker-noop-c8"]
    assert "1.00x" in lines[1]
