"""The official Python SDK (conductor-python) against the gateway, in-process.

The SDK is synchronous: its calls run in a thread while this event loop serves the stack.
Separate-process end-to-end runs (TaskHandler workers) are another suite; this one checks the
wire contract of the clients the SDK offers: metadata, start, poll, update, update-v2, logs,
queue sizes, poll data, execute, search, lifecycle calls, and authentication by key and secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from api_gateway.settings import AuthSettings

from .conftest import Names, RunningGateway

conductor = pytest.importorskip("conductor.client.configuration.configuration")

from conductor.client.configuration.configuration import Configuration  # noqa: E402
from conductor.client.configuration.settings.authentication_settings import (  # noqa: E402
    AuthenticationSettings,
)
from conductor.client.http.api.task_resource_api import TaskResourceApi  # noqa: E402
from conductor.client.http.api_client import ApiClient  # noqa: E402
from conductor.client.http.models.start_workflow_request import (  # noqa: E402
    StartWorkflowRequest,
)
from conductor.client.http.models.task_def import TaskDef  # noqa: E402
from conductor.client.http.models.task_result import TaskResult  # noqa: E402
from conductor.client.http.models.workflow_def import WorkflowDef  # noqa: E402
from conductor.client.http.models.workflow_task import WorkflowTask  # noqa: E402
from conductor.client.orkes_clients import OrkesClients  # noqa: E402


def _flow(cfg: Configuration, wf: str, t: str) -> dict[str, Any]:
    clients = OrkesClients(cfg)
    metadata = clients.get_metadata_client()
    workflows = clients.get_workflow_client()
    tasks = clients.get_task_client()
    metadata.register_task_def(TaskDef(name=t, retry_count=0))
    assert metadata.get_task_def(t).name == t
    definition = WorkflowDef(
        name=wf,
        version=1,
        tasks=[
            WorkflowTask(
                name=t, task_reference_name="t0", input_parameters={"n": "${workflow.input.n}"}
            )
        ],
        output_parameters={"r": "${t0.output.r}"},
    )
    definition.timeout_seconds = 60
    metadata.register_workflow_def(definition, overwrite=True)
    assert metadata.get_workflow_def(wf).name == wf
    workflow_id = workflows.start_workflow(StartWorkflowRequest(name=wf, version=1, input={"n": 3}))
    assert isinstance(workflow_id, str) and '"' not in workflow_id
    assert tasks.get_queue_size_for_task(t) == 1
    [task] = tasks.batch_poll_tasks(t, worker_id="sdk", count=5, timeout_in_millisecond=500)
    assert task.status == "IN_PROGRESS" and task.input_data == {"n": 3} and task.poll_count == 1
    tasks.add_task_log(task.task_id, "a log line from the sdk")
    assert [log.log for log in tasks.get_task_logs(task.task_id)] == ["a log line from the sdk"]
    assert [pd.worker_id for pd in tasks.get_task_poll_data(t)] == ["sdk"]
    result = TaskResult(
        workflow_instance_id=workflow_id,
        task_id=task.task_id,
        status="COMPLETED",
        output_data={"r": 42},
        worker_id="sdk",
    )
    nxt = TaskResourceApi(ApiClient(cfg)).update_task_v2(result)
    assert nxt is None
    wf_run = workflows.get_workflow(workflow_id, include_tasks=True)
    assert wf_run.status == "COMPLETED" and wf_run.output == {"r": 42}
    assert wf_run.tasks[0].workflow_task.task_reference_name == "t0"

    second = workflows.start_workflow_by_name(wf, {"n": 1}, version=1, correlationId="c9")
    workflows.pause_workflow(second)
    workflows.resume_workflow(second)
    [task] = tasks.batch_poll_tasks(t, worker_id="sdk", count=1, timeout_in_millisecond=500)
    assert tasks.update_task(
        TaskResult(workflow_instance_id=second, task_id=task.task_id, status="FAILED",
                   reason_for_incompletion="nope")
    ) == task.task_id  # fmt: skip
    assert workflows.get_workflow_status(second).status == "FAILED"
    workflows.retry_workflow(second)
    workflows.terminate_workflow(second, reason="done")
    workflows.restart_workflow(second)
    workflows.terminate_workflow(second)
    assert workflows.rerun_workflow(second, _rerun()) == second
    workflows.terminate_workflow(second)
    workflows.delete_workflow(second, archive_workflow=True)
    found = workflows.search(query=f"workflowType IN ({wf})")
    return {"workflow_id": workflow_id, "hits": len(found.results or [])}


def _rerun() -> Any:
    from conductor.client.http.models.rerun_workflow_request import RerunWorkflowRequest

    return RerunWorkflowRequest(workflow_input={"n": 5})


async def test_sdk_clients(running_gateway: RunningGateway, names: Names) -> None:
    cfg = Configuration(server_api_url=f"{running_gateway.url}/api")
    out = await asyncio.to_thread(_flow, cfg, names("sdkwf"), names("sdkt"))
    assert out["hits"] >= 1


def _execute(cfg: Configuration, wf: str) -> Any:
    clients = OrkesClients(cfg)
    definition = WorkflowDef(
        name=wf,
        version=1,
        tasks=[WorkflowTask(name="w", task_reference_name="w", type="WAIT")],
    )
    clients.get_metadata_client().update_workflow_def(definition, overwrite=True)
    return clients.get_workflow_executor().execute(wf, 1, {"a": 1}, wait_for_seconds=5)


async def test_sdk_execute_and_auth(make_gateway: Callable[..., Any], names: Names) -> None:
    keys = {"sdk-key": "sdk-secret-123"}
    async with make_gateway(auth=AuthSettings(enabled=True, keys=keys)) as g:
        cfg = Configuration(
            server_api_url=f"{g.url}/api",
            authentication_settings=AuthenticationSettings(
                key_id="sdk-key", key_secret="sdk-secret-123"
            ),
        )
        run = await asyncio.to_thread(_execute, cfg, names("exec"))
        assert run.status == "RUNNING" and run.tasks[0].task_type == "WAIT"
