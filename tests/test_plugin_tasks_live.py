"""The example plugin (examples/podium-plugin-example, installed by the dev extra) in a cluster.

Every service runs as its own process, so the sweeper finds ``TEXT_STATS`` through its entry
point as a deployed sweeper does. Workflows run the task through the gateway's API only: a
failing attempt is retried as its TaskDef says and then succeeds, a terminal failure fails the
workflow at once, and retries that run out fail it too. The gateway, which has the plugin too,
refuses a definition whose inputs the plugin finds wrong.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from podium.cluster import ClusterSpec, LocalCluster
from tests.polling import eventually

TERMINAL = {"COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"}
TASK_NAME = "text_stats"


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[str]:
    """A cluster with the example plugin's TaskDef and a workflow using its task type."""
    spec = ClusterSpec(shards=1, gateway_port=0)
    cluster = await LocalCluster(spec, progress=lambda _: None).start()
    try:
        url = cluster.gateway_urls[0]
        task_def = {
            "name": TASK_NAME,
            "retryCount": 2,
            "retryLogic": "FIXED",
            "retryDelaySeconds": 0,
            "responseTimeoutSeconds": 10,
            "timeoutSeconds": 0,
        }
        workflow = {
            "name": "text_stats_flow",
            "version": 1,
            "schemaVersion": 2,
            "tasks": [
                {
                    "name": TASK_NAME,
                    "taskReferenceName": "stats",
                    "type": "TEXT_STATS",
                    "inputParameters": {
                        "text": "${workflow.input.text}",
                        "failUntilAttempt": "${workflow.input.failUntil}",
                        "failTerminally": "${workflow.input.terminal}",
                    },
                }
            ],
            "outputParameters": {"words": "${stats.output.words}"},
        }
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(f"{url}/metadata/taskdefs", json=[task_def])
            assert r.status_code == 200, r.text
            r = await http.put(f"{url}/metadata/workflow", json=[workflow])
            assert r.status_code == 200, r.text
        yield url
    finally:
        await cluster.stop()


async def _run(api: str, workflow_input: dict[str, Any]) -> dict[str, Any]:
    """Start text_stats_flow and return it once it has finished."""
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{api}/workflow/text_stats_flow", json=workflow_input)
        assert r.status_code == 200, r.text
        workflow_id = r.text

        async def read() -> dict[str, Any]:
            got = await http.get(f"{api}/workflow/{workflow_id}", params={"includeTasks": "true"})
            assert got.status_code == 200, got.text
            body: dict[str, Any] = got.json()
            return body

        return await eventually(
            read, until=lambda wf: wf["status"] in TERMINAL, timeout_s=30, what="workflow ends"
        )


def _attempts(workflow: dict[str, Any]) -> list[tuple[str, int]]:
    return [(t["status"], t["retryCount"]) for t in workflow["tasks"]]


@pytest.mark.timeout(90)
async def test_the_plugin_task_runs_in_the_sweeper_and_completes(api: str) -> None:
    text = "to be or not to be\nthat is the question"
    wf = await _run(api, {"text": text})
    assert wf["status"] == "COMPLETED", wf.get("reasonForIncompletion")
    [task] = wf["tasks"]
    assert task["taskType"] == "TEXT_STATS"
    assert task["workerId"].startswith("sweeper-")
    assert task["outputData"] == {
        "characters": len(text),
        "words": 10,
        "lines": 2,
        "distinctWords": 8,
        "longestWord": "question",
        "attempt": 0,
    }
    assert wf["output"] == {"words": 10}


@pytest.mark.timeout(90)
async def test_a_failed_attempt_is_retried_by_the_task_def_and_then_succeeds(api: str) -> None:
    wf = await _run(api, {"text": "a b c", "failUntil": 2})
    assert wf["status"] == "COMPLETED", wf.get("reasonForIncompletion")
    assert _attempts(wf) == [("FAILED", 0), ("FAILED", 1), ("COMPLETED", 2)]
    assert wf["tasks"][0]["reasonForIncompletion"] == (
        "asked to fail until attempt 2; this is attempt 0"
    )
    assert wf["tasks"][-1]["outputData"]["attempt"] == 2


@pytest.mark.timeout(90)
async def test_retries_that_run_out_fail_the_workflow(api: str) -> None:
    wf = await _run(api, {"text": "a b c", "failUntil": 5})
    assert wf["status"] == "FAILED"
    assert _attempts(wf) == [("FAILED", 0), ("FAILED", 1), ("FAILED", 2)]


@pytest.mark.timeout(90)
async def test_a_terminal_failure_fails_the_workflow_without_retries(api: str) -> None:
    wf = await _run(api, {"text": "a b c", "terminal": True})
    assert wf["status"] == "FAILED"
    assert _attempts(wf) == [("FAILED_WITH_TERMINAL_ERROR", 0)]
    assert wf["tasks"][0]["reasonForIncompletion"] == "asked to fail terminally"


@pytest.mark.timeout(30)
async def test_the_gateway_refuses_inputs_the_plugin_finds_wrong(api: str) -> None:
    definition = {
        "name": "text_stats_without_text",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": TASK_NAME,
                "taskReferenceName": "stats",
                "type": "TEXT_STATS",
                "inputParameters": {"failUntilAttempt": -1},
            }
        ],
    }
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{api}/metadata/workflow", json=definition)
    assert r.status_code == 400, r.text
    assert {(e["path"], e["message"]) for e in r.json()["validationErrors"]} == {
        ("tasks[0].inputParameters", "TEXT_STATS needs the input parameter 'text'"),
        ("tasks[0].inputParameters", "failUntilAttempt must be >= 0"),
    }
