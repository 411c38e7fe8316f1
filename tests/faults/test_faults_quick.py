"""The fault suite's quick mode (``python -m benchmarks.faults --quick``) as a test.

A supervised cluster with two replicas of each service, a queue shard and the store each a
Redis primary with a replica under three Sentinels, runs a steady load of sequential,
fork/join, sub-workflow, WAIT and HTTP workflows with external workers; each kind of process
(queue service, decider, gateway, sweeper, the shard's primary, the store's primary) is killed
with SIGKILL once. Then every workflow is read back: none lost, none stuck, none failed, no
task completion accepted twice, every acknowledged start present. Recovery times are reported
(benchmarks/faults.py), not asserted: on a shared machine they move with the neighbours' load.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.faults import KINDS, FaultConfig, run_suite


@pytest.mark.timeout(300)
async def test_every_process_kind_killed_once_under_load_loses_nothing(tmp_path: Path) -> None:
    summary = await run_suite(FaultConfig.quick_mode(out=tmp_path))
    totals = summary["totals"]
    assert [k["kind"] for k in summary["kills"]] == list(KINDS)
    assert totals["acknowledged"] > 0 and totals["task_completions"] > 0
    assert totals["lost"] == 0, f"acknowledged starts without a workflow: {totals}"
    assert totals["stuck"] == 0, f"workflows still RUNNING after the grace period: {totals}"
    assert totals["failed"] == 0, totals["status"]
    assert totals["duplicate_accepted"] == 0, totals["duplicate_accepted_examples"]
    assert totals["foreign_results"] == 0
    assert totals["unacknowledged"] == 0, "a start was never acknowledged despite its retries"
    assert all(summary["invariants"].values()), summary["invariants"]
    assert (tmp_path / "faults.png").stat().st_size > 0
    assert (tmp_path / "faults.md").read_text().count("| holds |") == len(summary["invariants"])
