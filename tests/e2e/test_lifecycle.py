"""Control of running and finished workflows through the SDK's WorkflowClient, and failures.

Pause and resume, terminate, restart, rerun, retry; a task that fails twice and then succeeds
under its retry policy, one that exhausts its retries (then ``retry`` from the client), one that
always fails (the SDK's traceback is kept as a task log) and one that fails terminally.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from conductor.client.http.models.rerun_workflow_request import RerunWorkflowRequest
from conductor.client.http.models.start_workflow_request import StartWorkflowRequest
from conductor.client.workflow.conductor_workflow import ConductorWorkflow
from conductor.client.workflow.task.do_while_task import LoopTask
from conductor.client.workflow.task.fork_task import ForkTask
from conductor.client.workflow.task.join_task import JoinTask
from conductor.client.workflow.task.switch_task import SwitchTask
from conductor.client.workflow.task.wait_task import WaitTask

from .conftest import E2E
from .test_workflows import refs, simple

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")


def _start(e2e: E2E, wf: ConductorWorkflow, inp: dict[str, Any] | None = None) -> str:
    wf.register(overwrite=True)
    return str(
        e2e.workflows.start_workflow(StartWorkflowRequest(name=wf.name, version=1, input=inp or {}))
    )


def _gated(e2e: E2E, base: str) -> ConductorWorkflow:
    """WAIT ``gate`` (completed from outside), then an SDK worker task ``after``."""
    wf = ConductorWorkflow(executor=e2e.executor, name=e2e.name(base), version=1)
    wf >> WaitTask("gate") >> simple(e2e, "echo", "after", text="${gate.output.note}")
    wf.output_parameters({"note": "${after.output.text}"})
    return wf


def _attempts(wf: Any, ref: str) -> list[tuple[int, str]]:
    return [(t.retry_count, t.status) for t in wf.tasks if t.reference_task_name == ref]


@pytest.mark.timeout(60, func_only=True)
def test_pause_and_resume(e2e: E2E) -> None:
    workflow_id = _start(e2e, _gated(e2e, "pause"))
    e2e.wait_task(workflow_id, "gate", "IN_PROGRESS")
    e2e.workflows.pause_workflow(workflow_id)
    assert e2e.workflow(workflow_id).status == "PAUSED"

    # A task finished while paused is recorded, but nothing new is scheduled.
    e2e.executor.update_task_by_ref_name({"note": "paused"}, workflow_id, "gate", "COMPLETED")
    paused = e2e.workflow(workflow_id)
    assert paused.status == "PAUSED"
    assert [(t.reference_task_name, t.status) for t in paused.tasks] == [("gate", "COMPLETED")]

    resumed_at = int(time.time() * 1000)
    e2e.workflows.resume_workflow(workflow_id)
    wf = e2e.wait_status(workflow_id, "COMPLETED")
    assert wf.output == {"note": "paused"}
    after = wf.tasks[-1]
    assert after.reference_task_name == "after"
    assert after.scheduled_time >= resumed_at  # scheduled by the resume, not before


@pytest.mark.timeout(60, func_only=True)
def test_terminate_then_restart(e2e: E2E) -> None:
    workflow_id = _start(e2e, _gated(e2e, "term"))
    first_gate = e2e.wait_task(workflow_id, "gate", "IN_PROGRESS")
    e2e.workflows.terminate_workflow(workflow_id, reason="stopped by the e2e test")
    wf = e2e.wait_status(workflow_id, "TERMINATED", timeout_s=10)
    assert wf.reason_for_incompletion == "stopped by the e2e test"
    assert [(t.reference_task_name, t.status) for t in wf.tasks] == [("gate", "CANCELED")]

    e2e.workflows.restart_workflow(workflow_id)
    gate = e2e.wait_task(workflow_id, "gate", "IN_PROGRESS")
    assert gate.task_id != first_gate.task_id
    restarted = e2e.workflow(workflow_id)
    assert restarted.status == "RUNNING" and len(restarted.tasks) == 1
    answer = e2e.executor.signal(workflow_id, "COMPLETED", {"note": "restarted"})
    assert (answer.response_type, answer.workflow_id) == ("TARGET_WORKFLOW", workflow_id)
    # The SDK turns a status that is also a task status into its TaskStatus enum.
    assert getattr(answer.status, "value", answer.status) in {"RUNNING", "COMPLETED"}
    wf = e2e.wait_status(workflow_id, "COMPLETED")
    assert wf.output == {"note": "restarted"}


@pytest.mark.timeout(60, func_only=True)
def test_restart_and_rerun_completed(e2e: E2E) -> None:
    wf_def = ConductorWorkflow(executor=e2e.executor, name=e2e.name("rerun"), version=1)
    wf_def >> simple(e2e, "echo", "echo", text="${workflow.input.text}")
    wf_def >> simple(e2e, "add", "add", a="${workflow.input.a}", b="${workflow.input.b}")
    wf_def.output_parameters({"text": "${echo.output.text}", "sum": "${add.output.sum}"})
    workflow_id = _start(e2e, wf_def, {"text": "x", "a": 1, "b": 2})
    first = e2e.wait_status(workflow_id, "COMPLETED")
    assert first.output == {"text": "x", "sum": 3}
    echo, add = first.tasks

    # Rerun from the second task with new input for it: the first task is kept as it was, the
    # second is scheduled again under its id (as Conductor does), tasks after it are dropped.
    rerun_id = e2e.workflows.rerun_workflow(
        workflow_id,
        RerunWorkflowRequest(re_run_from_task_id=add.task_id, task_input={"a": 40, "b": 2}),
    )
    assert rerun_id == workflow_id
    wf = e2e.wait_status(workflow_id, "COMPLETED")
    assert wf.output == {"text": "x", "sum": 42}
    assert wf.tasks[0].task_id == echo.task_id
    assert [t.task_id for t in wf.tasks] == [echo.task_id, add.task_id]
    assert wf.tasks[1].input_data == {"a": 40, "b": 2} and wf.tasks[1].end_time > add.end_time

    # Restart runs the whole workflow again from its original input, under the same id.
    e2e.workflows.restart_workflow(workflow_id)
    wf = e2e.wait_for(
        workflow_id,
        lambda w: w.status == "COMPLETED" and echo.task_id not in {t.task_id for t in w.tasks},
        30,
        "completed again after restart",
    )
    assert wf.output == {"text": "x", "sum": 3}
    assert len(wf.tasks) == 2


@pytest.mark.timeout(120, func_only=True)
def test_rerun_from_the_first_task_of_a_fork_switch_and_loop(e2e: E2E) -> None:
    # Every task after the rerun point goes, loop iterations and the loop task included: the
    # new loop task must not be refused as a duplicate of the old one.
    wf_def = ConductorWorkflow(executor=e2e.executor, name=e2e.name("rerun_flow"), version=1)
    fork = ForkTask(
        "fork",
        [
            [simple(e2e, "echo", "fa", text="${first.output.text}")],
            [simple(e2e, "add", "fb", a="${workflow.input.n}", b=1)],
        ],
    )
    switch = (
        SwitchTask("sw", "${workflow.input.kind}")
        .switch_case("sum", [simple(e2e, "add", "sw_add", a="${workflow.input.n}", b=100)])
        .default_case([simple(e2e, "echo", "sw_echo", text="default")])
    )
    loop = LoopTask("loop", 2, [simple(e2e, "add", "body", a="${workflow.input.n}", b=1000)])
    wf_def >> simple(e2e, "echo", "first", text="${workflow.input.text}")
    wf_def >> fork >> JoinTask("join", join_on=["fa", "fb"]) >> switch >> loop
    wf_def.output_parameters({"fa": "${fa.output.text}", "iterations": "${loop.output.iteration}"})
    workflow_id = _start(e2e, wf_def, {"text": "one", "n": 5, "kind": "sum"})
    before = e2e.wait_status(workflow_id, "COMPLETED", timeout_s=60)
    assert before.output == {"fa": "one", "iterations": 2}
    first = before.tasks[0]
    assert first.reference_task_name == "first"

    e2e.workflows.rerun_workflow(
        workflow_id,
        RerunWorkflowRequest(re_run_from_task_id=first.task_id, task_input={"text": "two"}),
    )
    wf = e2e.wait_for(
        workflow_id,
        lambda w: w.status == "COMPLETED" and w.tasks[0].end_time > first.end_time,
        60,
        "completed again after the rerun",
    )
    assert wf.output == {"fa": "two", "iterations": 2}
    assert [t.task_id for t in wf.tasks if t.reference_task_name == "first"] == [first.task_id]
    old_ids = {t.task_id for t in before.tasks[1:]}
    assert not old_ids & {t.task_id for t in wf.tasks}
    assert sorted(r for r, _ in refs(wf)) == sorted(r for r, _ in refs(before))
    assert all(status == "COMPLETED" for _, status in refs(wf))


def _flaky(e2e: E2E, fail_until: int) -> ConductorWorkflow:
    wf = ConductorWorkflow(executor=e2e.executor, name=e2e.name("flaky"), version=1)
    wf >> simple(e2e, "flaky", "flaky", fail_until=fail_until, value="${workflow.input.value}")
    wf.output_parameters({"attempt": "${flaky.output.attempt}", "value": "${flaky.output.value}"})
    return wf


@pytest.mark.timeout(60, func_only=True)
def test_failing_task_retried_until_it_succeeds(e2e: E2E) -> None:
    """retryCount 2: two failures, then the third attempt completes the workflow."""
    workflow_id = _start(e2e, _flaky(e2e, fail_until=2), {"value": "v"})
    wf = e2e.wait_status(workflow_id, "COMPLETED")
    assert _attempts(wf, "flaky") == [(0, "FAILED"), (1, "FAILED"), (2, "COMPLETED")]
    failed = [t for t in wf.tasks if t.status == "FAILED"]
    assert [t.reason_for_incompletion for t in failed] == [
        "flaky failure on attempt 0",
        "flaky failure on attempt 1",
    ]
    assert wf.tasks[1].retried_task_id == wf.tasks[0].task_id
    assert wf.tasks[2].retried_task_id == wf.tasks[1].task_id
    assert wf.output == {"attempt": 2, "value": "v"}


@pytest.mark.timeout(60, func_only=True)
def test_exhausted_retries_fail_the_workflow_then_client_retry(e2e: E2E) -> None:
    workflow_id = _start(e2e, _flaky(e2e, fail_until=3), {"value": "w"})
    failed = e2e.wait_status(workflow_id, "FAILED")
    assert _attempts(failed, "flaky") == [(0, "FAILED"), (1, "FAILED"), (2, "FAILED")]
    assert "flaky failure on attempt 2" in (failed.reason_for_incompletion or "")
    assert set(failed.failed_reference_task_names or []) == {"flaky"}

    e2e.workflows.retry_workflow(workflow_id)
    wf = e2e.wait_status(workflow_id, "COMPLETED")
    assert _attempts(wf, "flaky")[-1] == (3, "COMPLETED")
    assert len(_attempts(wf, "flaky")) == 4
    assert wf.output == {"attempt": 3, "value": "w"}


@pytest.mark.timeout(60, func_only=True)
def test_always_failing_and_terminal_failures(e2e: E2E) -> None:
    always = ConductorWorkflow(executor=e2e.executor, name=e2e.name("always"), version=1)
    always >> simple(e2e, "always_fail", "boom", reason="it broke")
    terminal = ConductorWorkflow(executor=e2e.executor, name=e2e.name("terminal"), version=1)
    terminal >> simple(e2e, "terminal_fail", "stop", reason="do not retry")
    always_id, terminal_id = _start(e2e, always), _start(e2e, terminal)

    wf = e2e.wait_status(always_id, "FAILED")
    assert _attempts(wf, "boom") == [(0, "FAILED"), (1, "FAILED")]  # retryCount 1
    assert all(t.reason_for_incompletion == "it broke" for t in wf.tasks)
    logs = e2e.task_client.get_task_logs(wf.tasks[0].task_id)
    assert any("RuntimeError: it broke" in (entry.log or "") for entry in logs)

    wf = e2e.wait_status(terminal_id, "FAILED")
    assert _attempts(wf, "stop") == [(0, "FAILED_WITH_TERMINAL_ERROR")]  # retryCount 2 unused
    assert wf.tasks[0].reason_for_incompletion == "do not retry"
