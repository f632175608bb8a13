"""Smoke test of benchmarks/floor.py: it runs, and its table is complete and consistent.

Nothing here asserts on speed: only that every pair is reported, that each
ratio is the median of the per-repetition ratios of the same run, and that the
minimal client it measures against really does the work (the benchmark checks
the server's counters after every run and fails otherwise).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "floor.py"
PAIRS = [
    "put-pipelined",
    "put-sequential",
    "worker-noop-c1",
    "worker-noop-c50",
    "worker-sleep10ms-c200",
]


def test_quick_run_reports_every_pair_with_consistent_ratios() -> None:
    finished = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    report = json.loads(finished.stdout)
    assert report["loop"] == "asyncio"
    rows = report["rows"]
    assert [row["pair"] for row in rows] == PAIRS
    for row in rows:
        assert len(row["ratios"]) == 1
        assert row["ratio"] == statistics.median(row["ratios"])
        # One repetition: the ratio is exactly ours over the floor's rate.
        expected = row["beanstalkt_jobs_per_s"] / row["floor_jobs_per_s"]
        assert abs(row["ratio"] - expected) < 1e-9 * expected
        assert 0.0 <= row["server_cpu"] <= 2.0
