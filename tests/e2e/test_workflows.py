"""Workflows of every kind the issue names, run by SDK worker processes, read with SDK clients.

SIMPLE, FORK_JOIN + JOIN, SWITCH, DO_WHILE, SUB_WORKFLOW (registered and inline), WAIT for a
duration and WAIT completed by an update and by a signal; definitions registered with the
MetadataClient (SDK models) or ``ConductorWorkflow.register``; started with the WorkflowClient,
the WorkflowExecutor or with an inline definition; searched.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from conductor.client.http.models.start_workflow_request import StartWorkflowRequest
from conductor.client.http.models.workflow_def import WorkflowDef
from conductor.client.http.models.workflow_task import WorkflowTask
from conductor.client.http.models.workflow_test_request import TaskMock, WorkflowTestRequest
from conductor.client.workflow.conductor_workflow import ConductorWorkflow
from conductor.client.workflow.task.do_while_task import LoopTask
from conductor.client.workflow.task.fork_task import ForkTask
from conductor.client.workflow.task.join_task import JoinTask
from conductor.client.workflow.task.simple_task import SimpleTask
from conductor.client.workflow.task.sub_workflow_task import (
    InlineSubWorkflowTask,
    SubWorkflowTask,
)
from conductor.client.workflow.task.switch_task import SwitchTask
from conductor.client.workflow.task.wait_task import WaitForDurationTask, WaitTask

from tests.polling import eventually_sync

from .conftest import E2E

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")


def simple(e2e: E2E, suffix: str, ref: str, **inputs: Any) -> SimpleTask:
    task = SimpleTask(task_def_name=e2e.tasks[suffix], task_reference_name=ref)
    task.input_parameters.update(inputs)
    return task


def refs(wf: Any) -> list[tuple[str, str]]:
    return [(t.reference_task_name, t.status) for t in wf.tasks]


@pytest.mark.timeout(90, func_only=True)
def test_simple_tasks_metadata_start_and_search(e2e: E2E) -> None:
    """SDK models registered with the MetadataClient; six workflows started, run, searched."""
    name = e2e.name("simple")
    definition = WorkflowDef(
        name=name,
        version=1,
        description="two SIMPLE tasks",
        tasks=[
            WorkflowTask(
                name=e2e.tasks["echo"],
                task_reference_name="echo",
                type="SIMPLE",
                input_parameters={"text": "${workflow.input.text}", "tag": "first"},
            ),
            WorkflowTask(
                name=e2e.tasks["add"],
                task_reference_name="add",
                type="SIMPLE",
                input_parameters={"a": "${workflow.input.a}", "b": "${workflow.input.b}"},
            ),
        ],
        output_parameters={"text": "${echo.output.text}", "sum": "${add.output.sum}"},
        timeout_seconds=120,
        schema_version=2,
    )
    e2e.metadata.register_workflow_def(definition, overwrite=True)
    stored = e2e.metadata.get_workflow_def(name)
    assert stored.name == name and stored.version == 1
    assert [t.task_reference_name for t in stored.tasks] == ["echo", "add"]
    flaky = e2e.metadata.get_task_def(e2e.tasks["flaky"])
    assert (flaky.retry_count, flaky.retry_logic, flaky.retry_delay_seconds) == (2, "FIXED", 0)

    ids = [
        e2e.workflows.start_workflow(
            StartWorkflowRequest(
                name=name,
                version=1,
                input={"text": f"hello {i}", "a": i, "b": 10},
                correlation_id=f"{name}-c{i}",
            )
        )
        for i in range(5)
    ]
    ids.append(
        e2e.workflows.start_workflow_by_name(
            name, {"text": "hello 5", "a": 5, "b": 10}, version=1, correlationId=f"{name}-c5"
        )
    )
    for i, workflow_id in enumerate(ids):
        wf = e2e.wait_status(workflow_id, "COMPLETED")
        status = e2e.workflows.get_workflow_status(workflow_id, include_output=True)
        assert (status.status, status.output) == ("COMPLETED", wf.output)
        assert wf.output == {"text": f"hello {i}", "sum": i + 10}
        assert wf.correlation_id == f"{name}-c{i}"
        assert refs(wf) == [("echo", "COMPLETED"), ("add", "COMPLETED")]
        for task in wf.tasks:
            assert task.worker_id and task.poll_count == 1 and task.retry_count == 0
        echo, add = wf.tasks
        assert echo.input_data == {"text": f"hello {i}", "tag": "first"}
        # Each task type runs in its own worker process, spawned by the SDK's TaskHandler.
        assert len({echo.output_data["pid"], add.output_data["pid"], os.getpid()}) == 3

    everything = eventually_sync(
        lambda: e2e.workflows.search(query=f"workflowType IN ({name}) AND status IN (COMPLETED)"),
        until=lambda found: len(found.results or []) == len(ids),
        timeout_s=30,
        what="search by type and status",
    )
    assert {s.workflow_id for s in everything.results} == set(ids)
    assert all(s.status == "COMPLETED" for s in everything.results)
    one = e2e.workflows.search(query=f"correlationId = {name}-c3")
    assert [s.workflow_id for s in one.results] == [ids[3]]
    none = e2e.workflows.search(query=f"workflowType IN ({name}) AND status IN (FAILED)")
    assert not none.results


@pytest.mark.timeout(60, func_only=True)
def test_executor_execute_and_inline_definition(e2e: E2E) -> None:
    """``WorkflowExecutor.execute`` waits for the run; an inline definition starts without one."""
    name = e2e.name("exec")
    workflow = ConductorWorkflow(executor=e2e.executor, name=name, version=1)
    workflow >> simple(e2e, "add", "add", a="${workflow.input.a}", b=2)
    workflow.output_parameters({"sum": "${add.output.sum}"})
    workflow.register(overwrite=True)

    run = e2e.executor.execute(name, 1, {"a": 40}, wait_for_seconds=30)
    assert run.status == "COMPLETED", run
    assert run.output == {"sum": 42}
    assert e2e.executor.get_workflow(run.workflow_id, include_tasks=True).status == "COMPLETED"

    inline = ConductorWorkflow(executor=e2e.executor, name=e2e.name("inline"), version=1)
    inline >> simple(e2e, "echo", "echo", text="${workflow.input.text}")
    inline.output_parameters({"text": "${echo.output.text}"})
    workflow_id = inline.start_workflow_with_input({"text": "not registered"})
    wf = e2e.wait_status(workflow_id, "COMPLETED")
    assert wf.output == {"text": "not registered"}
    assert wf.workflow_name == inline.name


def _control_flow(e2e: E2E) -> ConductorWorkflow:
    name = e2e.name("flow")
    wf = ConductorWorkflow(executor=e2e.executor, name=name, version=1)
    fork = ForkTask(
        "fork",
        [
            [simple(e2e, "echo", "fa", text="${workflow.input.text}")],
            [
                simple(e2e, "add", "fb", a="${workflow.input.n}", b=1),
                simple(e2e, "echo", "fb2", text="${fb.output.sum}"),
            ],
        ],
    )
    switch = (
        SwitchTask("sw", "${workflow.input.kind}")
        .switch_case("sum", [simple(e2e, "add", "sw_add", a="${workflow.input.n}", b=100)])
        .default_case([simple(e2e, "echo", "sw_echo", text="default branch")])
    )
    loop = LoopTask("loop", 3, [simple(e2e, "add", "body", a="${workflow.input.n}", b=1000)])
    wf >> fork >> JoinTask("join", join_on=["fa", "fb2"]) >> switch >> loop
    wf.output_parameters(
        {
            "fa": "${fa.output.text}",
            "fb2": "${fb2.output.text}",
            "switched": "${sw_add.output.sum}",
            "defaulted": "${sw_echo.output.text}",
            "iterations": "${loop.output.iteration}",
            "body": "${body.output.sum}",
        }
    )
    wf.register(overwrite=True)
    return wf


@pytest.mark.timeout(90, func_only=True)
def test_fork_join_switch_do_while(e2e: E2E) -> None:
    flow = _control_flow(e2e)
    by_case = {
        kind: e2e.workflows.start_workflow(
            StartWorkflowRequest(
                name=flow.name, version=1, input={"text": "t", "n": 5, "kind": kind}
            )
        )
        for kind in ("sum", "other")
    }
    for kind, workflow_id in by_case.items():
        wf = e2e.wait_status(workflow_id, "COMPLETED", timeout_s=60)
        tasks = {t.reference_task_name: t for t in wf.tasks}
        assert tasks["fork"].task_type == "FORK" and tasks["join"].task_type == "JOIN"
        assert tasks["join"].status == "COMPLETED"
        assert tasks["join"].output_data["fa"]["text"] == "t"
        assert tasks["join"].output_data["fb2"]["text"] == 6
        assert tasks["sw"].task_type == "SWITCH"
        loop_children = sorted(r for r in tasks if r.startswith("body__"))
        assert loop_children == ["body__1", "body__2", "body__3"]
        assert all(tasks[r].status == "COMPLETED" for r in loop_children)
        assert tasks["loop"].output_data["iteration"] == 3
        expected = {"fa": "t", "fb2": 6, "iterations": 3, "body": 1005}
        if kind == "sum":
            assert tasks["sw"].output_data["evaluationResult"] == ["sum"]
            assert "sw_echo" not in tasks
            expected["switched"] = 105
        else:
            assert tasks["sw"].output_data["evaluationResult"] == ["other"]
            assert "sw_add" not in tasks
            expected["defaulted"] = "default branch"
        assert {k: v for k, v in wf.output.items() if v is not None} == expected


@pytest.mark.timeout(90, func_only=True)
def test_sub_workflows(e2e: E2E) -> None:
    """A registered child by name and version, and an inline child definition."""
    child = ConductorWorkflow(executor=e2e.executor, name=e2e.name("child"), version=1)
    child >> simple(e2e, "echo", "c_echo", text="${workflow.input.text}")
    child >> simple(e2e, "add", "c_add", a="${workflow.input.a}", b=5)
    child.output_parameters({"text": "${c_echo.output.text}", "sum": "${c_add.output.sum}"})
    child.register(overwrite=True)

    inline_child = ConductorWorkflow(executor=e2e.executor, name=e2e.name("ichild"), version=1)
    inline_child >> simple(e2e, "add", "i_add", a="${workflow.input.a}", b=-1)
    inline_child.output_parameters({"sum": "${i_add.output.sum}"})

    sub = SubWorkflowTask("sub", child.name, 1)
    sub.input_parameters.update({"text": "${workflow.input.text}", "a": "${workflow.input.a}"})
    inline = InlineSubWorkflowTask("inline", inline_child)
    inline.input_parameters.update({"a": "${sub.output.sum}"})
    parent = ConductorWorkflow(executor=e2e.executor, name=e2e.name("parent"), version=1)
    parent >> sub >> inline >> simple(e2e, "echo", "after", text="${inline.output.sum}")
    parent.output_parameters(
        {
            "sub": "${sub.output.sum}",
            "inline": "${inline.output.sum}",
            "after": "${after.output.text}",
        }
    )
    parent.register(overwrite=True)

    parent_id = e2e.executor.start_workflow(
        StartWorkflowRequest(name=parent.name, version=1, input={"text": "hi", "a": 10})
    )
    wf = e2e.wait_status(parent_id, "COMPLETED", timeout_s=60)
    assert wf.output == {"sub": 15, "inline": 14, "after": 14}
    tasks = {t.reference_task_name: t for t in wf.tasks}
    assert tasks["sub"].task_type == "SUB_WORKFLOW" and tasks["inline"].task_type == "SUB_WORKFLOW"
    for ref in ("sub", "inline"):
        assert tasks[ref].sub_workflow_id == tasks[ref].output_data["subWorkflowId"]
    children = {ref: e2e.workflow(tasks[ref].sub_workflow_id) for ref in ("sub", "inline")}
    assert children["sub"].workflow_name == child.name
    assert children["inline"].workflow_name == inline_child.name
    for run in children.values():
        assert run.status == "COMPLETED" and run.parent_workflow_id == parent_id
    assert children["sub"].output == {"text": "hi", "sum": 15}
    assert children["inline"].output == {"sum": 14}


@pytest.mark.timeout(60, func_only=True)
def test_wait_for_duration(e2e: E2E) -> None:
    wf_def = ConductorWorkflow(executor=e2e.executor, name=e2e.name("waitdur"), version=1)
    wf_def >> WaitForDurationTask("pause", 1) >> simple(e2e, "echo", "after", text="woke")
    wf_def.output_parameters({"text": "${after.output.text}"})
    wf_def.register(overwrite=True)
    workflow_id = e2e.workflows.start_workflow(StartWorkflowRequest(name=wf_def.name, version=1))
    wf = e2e.wait_status(workflow_id, "COMPLETED")
    assert wf.output == {"text": "woke"}
    pause = wf.tasks[0]
    assert (pause.task_type, pause.status) == ("WAIT", "COMPLETED")
    assert pause.end_time - pause.scheduled_time >= 1000, (pause.scheduled_time, pause.end_time)
    assert wf.tasks[1].scheduled_time >= pause.scheduled_time + 1000


@pytest.mark.timeout(60, func_only=True)
def test_wait_completed_by_update_and_signal(e2e: E2E) -> None:
    """One WAIT completed by reference name (output given), the next one by a signal."""
    wf_def = ConductorWorkflow(executor=e2e.executor, name=e2e.name("waitsig"), version=1)
    wf_def >> WaitTask("approve") >> WaitTask("ship")
    wf_def >> simple(e2e, "echo", "done", text="${approve.output.by}", tag="${ship.output.carrier}")
    wf_def.output_parameters({"by": "${done.output.text}", "carrier": "${done.output.tag}"})
    wf_def.register(overwrite=True)
    workflow_id = e2e.workflows.start_workflow(StartWorkflowRequest(name=wf_def.name, version=1))

    e2e.wait_task(workflow_id, "approve", "IN_PROGRESS")
    e2e.executor.update_task_by_ref_name({"by": "alice"}, workflow_id, "approve", "COMPLETED")
    e2e.wait_task(workflow_id, "ship", "IN_PROGRESS")
    assert e2e.workflow(workflow_id).status == "RUNNING"
    e2e.executor.signal_async(workflow_id, "COMPLETED", {"carrier": "owl"})

    wf = e2e.wait_status(workflow_id, "COMPLETED")
    assert wf.output == {"by": "alice", "carrier": "owl"}
    tasks = {t.reference_task_name: t for t in wf.tasks}
    assert tasks["approve"].output_data == {"by": "alice"}
    assert tasks["ship"].output_data == {"carrier": "owl"}


@pytest.mark.timeout(60, func_only=True)
def test_test_run_with_mocked_task_results(e2e: E2E) -> None:
    """``WorkflowClient.test_workflow``: task results come from the mocks; nothing is stored."""
    wf_def = ConductorWorkflow(executor=e2e.executor, name=e2e.name("mocked"), version=1)
    wf_def >> simple(e2e, "flaky", "first", text="${workflow.input.text}")  # 2 retries
    wf_def >> simple(e2e, "add", "second", a="${first.output.n}", b=1)
    wf_def.output_parameters({"sum": "${second.output.sum}"})
    request = WorkflowTestRequest(
        name=wf_def.name,
        version=1,
        workflow_def=wf_def.to_workflow_def(),
        input={"text": "t"},
        task_ref_to_mock_output={
            "first": [TaskMock(status="FAILED"), TaskMock(output={"n": 41})],
            "second": [TaskMock(output={"sum": 42})],
        },
    )
    wf = e2e.workflows.test_workflow(request)
    assert wf.status == "COMPLETED" and wf.output == {"sum": 42}
    assert refs(wf) == [("first", "FAILED"), ("first", "COMPLETED"), ("second", "COMPLETED")]
    assert wf.tasks[2].input_data == {"a": 41, "b": 1}
    with pytest.raises(Exception, match="404"):
        e2e.workflows.get_workflow(wf.workflow_id, include_tasks=False)
