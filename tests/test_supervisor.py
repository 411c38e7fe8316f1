"""`podium up` keeps its processes running: a killed one is reported and started again.

The cluster runs as real processes (Redis servers and the four services); the tests kill -9
a decider and a queue shard while it runs, wait for the supervisor to bring them back, read
`podium status`, and check that stopping the cluster ends every process, restarted ones too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from podium.cluster import ClusterSpec, LocalCluster
from podium.supervisor import Backoff, describe_exit
from tests.polling import eventually

ROOT = Path(__file__).resolve().parent.parent


def test_backoff_doubles_from_half_a_second_and_is_capped() -> None:
    b = Backoff()
    assert [b.delay_s(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_exit_statuses_are_described_as_a_person_reads_them() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exit status 3"
    assert describe_exit(None) == "running"


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LocalCluster]:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    spec = ClusterSpec(shards=1, sweepers=1, gateway_port=0, supervise=True)
    lines: list[str] = []
    c = LocalCluster(spec, progress=lambda _: None, events=lines.append)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); its state letter says it is gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(120)
async def test_killed_processes_are_restarted_reported_and_stopped_at_shutdown(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    decider = cluster.of("decider.server")[0]
    shard = cluster.redis[0]
    old_decider, old_shard = decider.pid(), shard.pid
    assert old_decider is not None and old_shard is not None

    decider.kill()
    shard.kill()
    assert cluster.supervisor is not None
    supervisor = cluster.supervisor

    async def back() -> bool:
        return (
            decider.alive() and decider.pid() != old_decider
            and shard.is_running() and shard.pid != old_shard
            and not supervisor.record("decider-0").restarting
        )  # fmt: skip

    await eventually(back, timeout_s=30, what="the decider and the shard restarted")
    # The restarted decider serves: a start through the gateway goes through it.
    api = cluster.gateway_urls[0]
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"http://127.0.0.1:{decider.health_port}/ready")
        assert r.status_code == 200
        r = await http.put(f"{api}/metadata/workflow", json=[{
            "name": "sup_wf", "version": 1, "schemaVersion": 2,
            "tasks": [{"name": "noop", "taskReferenceName": "n", "type": "NOOP"}],
        }])  # fmt: skip
        assert r.status_code in (200, 204), r.text
        r = await http.post(f"{api}/workflow/sup_wf", json={})
        assert r.status_code == 200, r.text

    record = supervisor.record("decider-0")
    assert record.restarts == 1 and record.last_exit == "killed by SIGKILL"
    assert supervisor.record("redis-shard-0").restarts == 1

    status = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "podium.cli", "status", "--url", api],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    rows = {line.split()[0]: line for line in status.stdout.splitlines() if line.startswith("  ")}
    assert "killed by SIGKILL" in rows["decider-0"] and " 1 " in rows["decider-0"]
    assert "killed by SIGKILL" in rows["redis-shard-0"]
    assert "gateway-0" in rows and " 0 " in rows["gateway-0"]

    pids = [p for p in (decider.pid(), shard.pid) if p is not None]
    pids += [s.pid() or 0 for s in cluster.services]
    await cluster.stop()  # waits for each process to end
    assert not [p for p in pids if _alive(p)], "a process outlived the cluster's stop"
