"""The everyday `podium` commands against a running cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from podium.cluster import ClusterSpec, LocalCluster

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[str]:
    spec = ClusterSpec(shards=1, sweepers=0, gateway_port=0)
    cluster = await LocalCluster(spec, progress=lambda _: None).start()
    try:
        yield cluster.gateway_urls[0]
    finally:
        await cluster.stop()


def podium(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podium.cli", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(120)
async def test_register_start_get_search_terminate_and_status(api: str, tmp_path: Path) -> None:
    definition = {
        "name": "cli_wf",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": "cli_task", "taskReferenceName": "t", "type": "SIMPLE"}],
    }
    path = tmp_path / "defs.json"
    path.write_text(json.dumps([{"name": "cli_task", "retryCount": 0}, definition]))
    done = podium("def", "register", str(path), "--url", api)
    assert done.returncode == 0, done.stderr
    assert "registered task cli_task" in done.stdout
    assert "registered workflow cli_wf v1" in done.stdout

    done = podium("workflow", "start", "cli_wf", "--input", '{"x": 1}', "--url", api)
    assert done.returncode == 0, done.stderr
    wf_id = done.stdout.strip()
    assert len(wf_id) == 36

    done = podium("workflow", "get", wf_id, "--url", api)
    wf = json.loads(done.stdout)
    assert wf["status"] == "RUNNING" and wf["input"] == {"x": 1}
    assert [t["referenceTaskName"] for t in wf["tasks"]] == ["t"]

    done = podium("status", "--url", api)
    assert done.returncode == 0, done.stderr
    assert "running workflows:" in done.stdout
    assert "cli_task" in done.stdout  # its queue holds the scheduled task

    done = podium("workflow", "search", "workflowType IN (cli_wf)", "--url", api)
    assert json.loads(done.stdout)["totalHits"] >= 1

    assert podium("workflow", "terminate", wf_id, "--url", api).returncode == 0
    wf = json.loads(podium("workflow", "get", wf_id, "--url", api).stdout)
    assert wf["status"] == "TERMINATED"


@pytest.mark.timeout(60)
async def test_helpful_errors(api: str, tmp_path: Path) -> None:
    done = podium("workflow", "get", "no-such-id", "--url", api)
    assert done.returncode == 1
    assert "404: No such workflow found by id: no-such-id" in done.stderr
    done = podium("workflow", "start", "cli_wf", "--input", "{not json", "--url", api)
    assert done.returncode != 0 and "--input is not JSON" in done.stderr
    done = podium("def", "register", str(tmp_path / "missing.json"), "--url", api)
    assert done.returncode != 0 and "cannot read" in done.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "broken", "tasks": []}))
    done = podium("def", "register", str(bad), "--url", api)
    assert done.returncode == 1 and "400" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(120)
async def test_admin_purge_requeue_export_and_import(api: str, tmp_path: Path) -> None:
    definition = {
        "name": "cli_admin_wf",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": "cli_admin_task", "taskReferenceName": "t", "type": "SIMPLE"}],
    }
    path = tmp_path / "defs.json"
    path.write_text(json.dumps([{"name": "cli_admin_task", "retryCount": 0}, definition]))
    assert podium("def", "register", str(path), "--url", api).returncode == 0
    finished, running = (
        podium("workflow", "start", "cli_admin_wf", "--url", api).stdout.strip() for _ in range(2)
    )
    assert podium("workflow", "terminate", finished, "--url", api).returncode == 0
    end = json.loads(podium("workflow", "get", finished, "--url", api).stdout)["endTime"]

    done = podium("admin", "requeue", "cli_admin_task", "--url", api)
    assert done.returncode == 0, done.stderr
    assert "requeued: 1 SCHEDULED tasks of 1 task types, 1 workflows decided" in done.stdout

    done = podium(
        "admin", "purge", "--before", str(end + 1), "--after", str(end - 600_000),
        "--name", "cli_admin_wf", "--batch", "1", "--url", api,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "purged 1 workflows", done.stdout
    assert "404" in podium("workflow", "get", finished, "--url", api).stderr
    wf = json.loads(podium("workflow", "get", running, "--url", api).stdout)
    assert wf["status"] == "RUNNING"

    exported = tmp_path / "export.json"
    done = podium("admin", "export", "-o", str(exported), "--url", api)
    assert done.returncode == 0, done.stderr
    doc = json.loads(exported.read_text())
    assert any(d["name"] == "cli_admin_wf" for d in doc["workflowDefs"])
    done = podium("admin", "import", str(exported), "--url", api)
    assert done.returncode == 0, done.stderr
    assert f"workflowDefs: 0 created, {len(doc['workflowDefs'])} updated" in done.stdout

    doc["taskDefs"].append({"name": "bad task name with spaces/", "retryCount": -1})
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc))
    done = podium("admin", "import", str(broken), "--url", api)
    assert done.returncode == 1 and "400" in done.stderr
    assert f"taskDefs[{len(doc['taskDefs']) - 1}]" in done.stderr
    assert "Traceback" not in done.stderr
