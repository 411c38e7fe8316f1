"""Roles through the official Python SDK (conductor-python): what each key's clients may do.

A refusal reaches the SDK as its ``AuthorizationException`` with status 403 and error code
``FORBIDDEN`` (not a token error, so the SDK does not fetch a new token and retry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from api_gateway.grants import Grant
from api_gateway.settings import AuthSettings

from .conftest import Names

conductor = pytest.importorskip("conductor.client.configuration.configuration")

from conductor.client.configuration.configuration import Configuration  # noqa: E402
from conductor.client.configuration.settings.authentication_settings import (  # noqa: E402
    AuthenticationSettings,
)
from conductor.client.http.models.start_workflow_request import (  # noqa: E402
    StartWorkflowRequest,
)
from conductor.client.http.models.task_def import TaskDef  # noqa: E402
from conductor.client.http.models.task_result import TaskResult  # noqa: E402
from conductor.client.http.models.workflow_def import WorkflowDef  # noqa: E402
from conductor.client.http.models.workflow_task import WorkflowTask  # noqa: E402
from conductor.client.http.rest import AuthorizationException  # noqa: E402
from conductor.client.orkes_clients import OrkesClients  # noqa: E402

SECRETS = {"sdk-ops": "sdk-operator-1", "sdk-view": "sdk-viewer-1", "sdk-work": "sdk-worker-1"}


def _clients(url: str, key_id: str) -> OrkesClients:
    return OrkesClients(
        Configuration(
            server_api_url=f"{url}/api",
            authentication_settings=AuthenticationSettings(
                key_id=key_id, key_secret=SECRETS[key_id]
            ),
        )
    )


def _refused(call: Callable[[], Any]) -> str:
    with pytest.raises(AuthorizationException) as exc:
        call()
    assert exc.value.status == 403 and exc.value.error_code == "FORBIDDEN"
    return str(exc.value.body)


def _roles(url: str, wf: str, mine: str, theirs: str) -> None:
    ops, view, work = (_clients(url, k) for k in ("sdk-ops", "sdk-view", "sdk-work"))
    # The operator defines and starts workflows.
    metadata = ops.get_metadata_client()
    for t in (mine, theirs):
        metadata.register_task_def(TaskDef(name=t, retry_count=0))
    definition = WorkflowDef(
        name=wf,
        version=1,
        tasks=[
            WorkflowTask(name=mine, task_reference_name="a"),
            WorkflowTask(name=theirs, task_reference_name="b"),
        ],
    )
    metadata.register_workflow_def(definition, overwrite=True)
    workflow_id = ops.get_workflow_client().start_workflow(StartWorkflowRequest(name=wf, version=1))

    # The viewer reads, and changes nothing.
    assert view.get_workflow_client().get_workflow(workflow_id, include_tasks=True).status == (
        "RUNNING"
    )
    assert view.get_metadata_client().get_task_def(theirs).name == theirs
    _refused(lambda: view.get_workflow_client().terminate_workflow(workflow_id, "no"))
    _refused(lambda: view.get_metadata_client().register_task_def(TaskDef(name=mine)))
    _refused(lambda: view.get_task_client().poll_task(mine))

    # The worker polls and updates its own type, and nothing else.
    tasks = work.get_task_client()
    _refused(lambda: work.get_workflow_client().start_workflow(StartWorkflowRequest(name=wf)))
    _refused(lambda: work.get_workflow_client().get_workflow(workflow_id))
    assert theirs in _refused(lambda: tasks.batch_poll_tasks(theirs, count=1))
    assert tasks.get_queue_size_for_task(mine) == 1
    _refused(lambda: tasks.get_queue_size_for_task(theirs))
    [task] = tasks.batch_poll_tasks(mine, worker_id="w", count=1, timeout_in_millisecond=500)
    assert task.task_def_name == mine
    tasks.update_task(
        TaskResult(workflow_instance_id=workflow_id, task_id=task.task_id, status="COMPLETED")
    )
    [other] = ops.get_task_client().batch_poll_tasks(theirs, count=1, timeout_in_millisecond=2000)
    result = TaskResult(workflow_instance_id=workflow_id, task_id=other.task_id, status="COMPLETED")
    assert theirs in _refused(lambda: tasks.update_task(result))
    run = ops.get_workflow_client().get_workflow(workflow_id, include_tasks=True)
    assert [t.status for t in run.tasks] == ["COMPLETED", "IN_PROGRESS"]
    # An operator does a worker's work for any type, and ends the workflow.
    ops.get_task_client().update_task(result)
    assert ops.get_workflow_client().get_workflow(workflow_id).status == "COMPLETED"


@pytest.mark.timeout(60)
async def test_sdk_clients_per_role(make_gateway: Callable[..., Any], names: Names) -> None:
    mine, theirs = f"sdk_bill_{names.tag}", names("sdk_other")
    grants = {
        "sdk-ops": Grant(("operator",)),
        "sdk-view": Grant(("viewer",)),
        "sdk-work": Grant(("worker",), (f"sdk_bill_{names.tag[:4]}*",)),
    }
    auth = AuthSettings(enabled=True, keys=SECRETS, grants=grants)
    async with make_gateway(auth=auth) as g:
        await asyncio.to_thread(_roles, g.url, names("sdk_roles"), mine, theirs)
