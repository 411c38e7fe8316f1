"""The fan-out benchmark's Podium part (``python -m benchmarks.fanout``) with tiny fan-outs.

A real local cluster (Redis store, one replica of each service) runs the FORK_JOIN_DYNAMIC
workflow of ``benchmarks/fanout.py`` with 100 and then 400 SIMPLE children from its input,
completed by the benchmark's own worker process; the rows must show every child completed, a
decider CPU figure and the per-child ratios, and the report must say when a system was not
measured. The sizes are large enough for the decider's CPU to show in ``/proc``'s clock ticks
(about 0.3 ms per child): with 20 children it can read as zero.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.fanout import FanoutConfig, measure_podium, report


@pytest.mark.timeout(90)
async def test_podium_fanout_completes_every_child_and_reports_costs_per_child(
    tmp_path: Path,
) -> None:
    cfg = FanoutConfig(
        sizes=(100, 400), limit_s=30.0, warmup_runs=0, systems=("podium",), out=tmp_path
    )
    notes: list[str] = []
    rows = await measure_podium(cfg, notes)
    assert [r["n"] for r in rows] == [100, 400]
    for r in rows:
        assert r["result"] == "COMPLETED", r
        assert r["children"] == r["children_completed"] == r["n"]
        assert 0 < r["seconds"] <= r["wall_s"] + 1 and r["wall_s"] < cfg.limit_s
        assert r["server_key"] == "decider-0" and r["server_cpu_s"] > 0
        assert r["cpu"].keys() >= {"decider-0", "gateway-0", "redis-store", "worker", "driver"}
        assert r["total_cpu_s"] >= r["server_cpu_s"]
        assert r["server_cpu_ms_per_child"] == pytest.approx(1000 * r["server_cpu_s"] / r["n"])
        for ratio in ("time_ratio", "server_cpu_ratio", "total_cpu_ratio"):
            assert math.isfinite(r[ratio]) and r[ratio] > 0, (ratio, r)
    assert rows[0]["time_ratio"] == rows[0]["server_cpu_ratio"] == 1.0

    unavailable = {"system": "conductor", "error": "server unavailable: not in this test"}
    assert notes == []  # nothing went wrong
    text = report([*rows, unavailable], cfg, notes).read_text()
    assert "| podium | 400 | COMPLETED | 400/400 |" in text
    assert "conductor: not measured** (server unavailable: not in this test)" in text
    saved = json.loads((tmp_path / "fanout.json").read_text())
    assert [r.get("n") for r in saved] == [100, 400, None]
