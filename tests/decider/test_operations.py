"""Operations as pure transitions: start, claim, update, terminate, pause/resume, retry, restart,
rerun, skip, set variables; idempotency; failure workflows; claim limits."""

from __future__ import annotations

import copy

import pytest

import decider as d
from decider import IllegalState, ValidationError, check_claim_limits
from podium.errors import Conflict, InvalidArgument, LimitExceeded, NotFound
from tests.decider.decider_harness import Harness, simple, wf_def


def two() -> Harness:
    return Harness(
        wf_def(
            simple("a"),
            simple("b"),
            outputParameters={"res": "${b.output.r}", "wid": "${workflow.workflowId}"},
        )
    )


# --- start --------------------------------------------------------------------------------


def test_start_builds_the_conductor_workflow_record() -> None:
    h = Harness(wf_def(simple("a"), variables={"v": 1}, inputTemplate={"dflt": "x", "given": "no"}))
    dec = h.start({"given": "yes"}, at=5, correlationId="c", priority=9, taskToDomain={"a": "d"})
    wf = dec.workflow
    assert wf["workflowId"] == "id-1" and wf["status"] == "RUNNING"
    assert (
        wf["workflowName"],
        wf["workflowVersion"],
        wf["createTime"],
        wf["startTime"],
        wf["endTime"],
    ) == ("wf", 1, 5, 5, 0)
    assert wf["input"] == {"given": "yes", "dflt": "x"} and wf["variables"] == {"v": 1}
    assert wf["correlationId"] == "c" and wf["priority"] == 9 and wf["taskToDomain"] == {"a": "d"}
    assert wf["workflowDefinition"]["tasks"][0]["taskDefinition"]["name"] == "a"
    assert dec.workflow_changed and dec.next_check_ms is not None


def test_start_rejects_null_input_bad_priority_and_invalid_definitions() -> None:
    ctx = d.Context(now_ms=0, ids=lambda: "x")
    with pytest.raises(InvalidArgument, match="NULL input passed when starting workflow"):
        d.start_workflow(wf_def(simple("a")), {"input": None}, ctx)
    with pytest.raises(ValidationError):
        d.start_workflow(wf_def(simple("a")), {"input": {}, "priority": 100}, ctx)
    with pytest.raises(ValidationError):
        d.start_workflow({"name": "x", "tasks": []}, {"input": {}}, ctx)


def test_operations_never_mutate_their_input() -> None:
    h = two()
    h.start()
    before = copy.deepcopy(h.wf)
    d.claim(h.wf, h.task("a")["taskId"], "w", h.ctx(10))
    d.update_task(
        h.wf,
        {
            "workflowInstanceId": h.wf["workflowId"],
            "taskId": h.task("a")["taskId"],
            "status": "COMPLETED",
        },
        h.ctx(20),
    )
    d.terminate(h.wf, "x", h.ctx(30))
    assert h.wf == before


def test_happy_path_output_parameters_and_times() -> None:
    h = two()
    h.start(at=0)
    dec = h.claim("a", at=10, worker="w7")
    a = h.task("a")
    assert (a["status"], a["startTime"], a["workerId"], a["pollCount"], a["updateTime"]) == (
        "IN_PROGRESS",
        10,
        "w7",
        1,
        10,
    )
    assert dec.changed_tasks == [a] and dec.pushes == []
    dec = h.complete("a", {"x": 1}, at=20)
    assert h.task("a")["endTime"] == 20 and [t["referenceTaskName"] for t in dec.changed_tasks] == [
        "a",
        "b",
    ]
    h.run_worker("b", {"r": "done"}, at=30)
    assert h.status == "COMPLETED" and h.wf["output"] == {"res": "done", "wid": h.wf["workflowId"]}
    assert h.wf["endTime"] == 30 and h.last is not None and h.last.next_check_ms is None


def test_output_defaults_to_last_task_output() -> None:
    h = Harness(wf_def(simple("a")))
    h.start()
    h.run_worker("a", {"k": "v"})
    assert h.wf["output"] == {"k": "v"}


def test_update_records_logs_and_truncates_reason() -> None:
    h = two()
    h.start()
    h.claim("a")
    dec = h.update(
        "a",
        "FAILED_WITH_TERMINAL_ERROR",
        reasonForIncompletion="x" * 600,
        logs=[{"log": "line", "createdTime": 3}, {"log": "two"}],
    )
    assert len(h.wf["tasks"][0]["reasonForIncompletion"]) == 500
    assert dec.logs == [
        {"log": "line", "taskId": h.task("a")["taskId"], "createdTime": 3},
        {"log": "two", "taskId": h.task("a")["taskId"], "createdTime": h.now},
    ]


def test_update_validation_and_unknown_task() -> None:
    h = two()
    h.start()
    with pytest.raises(ValidationError) as exc:
        d.update_task(h.wf, {}, h.ctx())
    assert [e["message"] for e in exc.value.errors] == [
        "Workflow Id cannot be null or empty",
        "Task ID cannot be null or empty",
    ]
    with pytest.raises(NotFound, match="No such task found by id: nope"):
        d.update_task(
            h.wf, {"workflowInstanceId": "w", "taskId": "nope", "status": "COMPLETED"}, h.ctx()
        )


def test_late_and_repeated_updates_change_nothing() -> None:
    h = two()
    h.start()
    h.run_worker("a", {"x": 1})
    snapshot = copy.deepcopy(h.wf)
    a_id = h.wf["tasks"][0]["taskId"]
    for status in ("COMPLETED", "FAILED", "IN_PROGRESS"):
        dec = d.update_task(
            h.wf,
            {"workflowInstanceId": "w", "taskId": a_id, "status": status, "outputData": {"x": 2}},
            h.ctx(99),
        )
        assert not dec.accepted and not dec.changed and dec.workflow == snapshot
        assert [r.message_id for r in dec.removals] == [a_id]
    dec = d.claim(h.wf, a_id, "w", h.ctx(100))
    assert not dec.accepted and not dec.changed


def test_terminate_pause_resume() -> None:
    h = two()
    h.start()
    dec = h.apply(d.pause)
    assert h.status == "PAUSED" and dec.next_check_ms is None
    assert not h.apply(d.pause).accepted
    h.run_worker("a")  # workers may finish queued work while paused
    assert h.statuses() == {"a": "COMPLETED"}
    with pytest.raises(IllegalState, match="is not PAUSED so cannot resume"):
        d.resume(two().start().workflow, h.ctx())
    h.apply(d.resume, at=50)
    assert h.status == "RUNNING" and h.wf["lastRetriedTime"] == 50 and h.pending() == ["b"]
    dec = h.apply(d.terminate, "user said so")
    assert h.status == "TERMINATED" and h.wf["reasonForIncompletion"] == "user said so"
    assert h.statuses()["b"] == "CANCELED" and [r.queue for r in dec.removals] == ["b"]
    assert dec.commands == [] and dec.next_check_ms is None
    assert not h.apply(d.terminate, "again").accepted
    with pytest.raises(Conflict, match="has ended, status cannot be updated"):
        h.apply(d.pause)


def test_terminate_completed_is_a_conflict() -> None:
    h = Harness(wf_def(simple("a")))
    h.start()
    h.run_worker("a")
    with pytest.raises(Conflict, match=r"Cannot terminate a COMPLETED workflow\."):
        h.apply(d.terminate, None)


def test_failure_workflow_started_by_decider_not_by_terminate() -> None:
    h = Harness(
        wf_def(simple("a"), failureWorkflow="cleanup", failureWorkflowVersion=2),
        task_defs={"a": {"name": "a", "retryCount": 0}},
    )
    h.start({"k": 1}, correlationId="c")
    h.claim("a")
    dec = h.fail("a", "bad")
    (cmd,) = dec.commands
    assert isinstance(cmd, d.StartWorkflow) and (cmd.name, cmd.version, cmd.correlation_id) == (
        "cleanup",
        2,
        "c",
    )
    assert cmd.input["k"] == 1 and cmd.input["workflowId"] == h.wf["workflowId"]
    assert (
        cmd.input["failureStatus"] == "FAILED"
        and cmd.input["failureTaskId"] == h.task("a")["taskId"]
    )
    assert (
        cmd.input["reason"] == h.wf["reasonForIncompletion"]
        and cmd.input["failedWorkflow"]["workflowId"] == h.wf["workflowId"]
    )
    assert h.wf["output"]["conductor.failure_workflow"] == cmd.workflow_id
    h2 = Harness(wf_def(simple("a"), failureWorkflow="$workflow.input.onFail"))
    h2.start({"onFail": "dyn_cleanup"})
    dec = h2.apply(d.terminate, "manual")
    assert dec.commands == []
    h3 = Harness(
        wf_def(simple("a"), failureWorkflow="$workflow.input.onFail"),
        task_defs={"a": {"name": "a", "retryCount": 0}},
    )
    h3.start({"onFail": "dyn_cleanup"})
    h3.claim("a")
    dec = h3.fail("a")
    assert isinstance(dec.commands[0], d.StartWorkflow)
    assert dec.commands[0].name == "dyn_cleanup"


# --- retry / restart / rerun ----------------------------------------------------------------


def failed_three() -> Harness:
    h = Harness(
        wf_def(simple("a"), simple("b"), simple("c")),
        task_defs={"b": {"name": "b", "retryCount": 0}},
    )
    h.start(at=0)
    h.run_worker("a", {"x": 1}, at=1)
    h.claim("b", at=2)
    h.fail("b", "nope", at=3)
    assert h.status == "FAILED"
    return h


def test_retry_reschedules_the_failed_task() -> None:
    h = failed_three()
    b_old = h.task("b")
    dec = h.apply(d.retry, at=100)
    assert (
        h.status == "RUNNING"
        and h.wf["lastRetriedTime"] == 100
        and "reasonForIncompletion" not in h.wf
    )
    b_new = h.task("b")
    assert (
        b_new["retriedTaskId"] == b_old["taskId"]
        and b_new["retryCount"] == 1
        and b_new["status"] == "SCHEDULED"
    )
    assert h.wf["tasks"][1]["retried"] is True and [p.queue for p in dec.pushes] == ["b"]
    h.run_worker("b", at=101)
    h.run_worker("c", at=102)
    assert h.status == "COMPLETED" and h.wf["failedReferenceTaskNames"] == ["b"]


def test_retry_preconditions() -> None:
    h = two()
    h.start()
    with pytest.raises(NotFound, match=r"Workflow is still running.  status=RUNNING"):
        h.apply(d.retry)
    h.apply(d.terminate, "x")
    h.apply(d.retry)  # the canceled task can be retried
    assert h.pending() == ["a"]
    h2 = Harness(wf_def(simple("a")))
    h2.start()
    h2.run_worker("a")
    with pytest.raises(Conflict, match="There are no retryable tasks!"):
        h2.apply(d.retry)


def test_retry_reopens_join_in_place() -> None:
    fork = {
        "name": "f",
        "taskReferenceName": "f",
        "type": "FORK_JOIN",
        "forkTasks": [[simple("x")], [simple("y")]],
    }
    j = {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": ["x", "y"]}
    h = Harness(wf_def(fork, j), task_defs={"x": {"name": "x", "retryCount": 0}})
    h.start()
    h.claim("x")
    h.fail("x")
    # the failure ends the workflow before the join is evaluated: the join is canceled
    assert h.statuses() == {"f": "COMPLETED", "x": "FAILED", "y": "CANCELED", "j": "CANCELED"}
    h.apply(d.retry)
    assert h.statuses() == {
        "f": "COMPLETED",
        "x": "SCHEDULED",
        "y": "SCHEDULED",
        "j": "IN_PROGRESS",
    }
    assert (
        h.task("j")["retryCount"] == 0
        and sum(t["referenceTaskName"] == "j" for t in h.wf["tasks"]) == 1
    )
    h.run_worker("x")
    h.run_worker("y")
    assert h.status == "COMPLETED"


def test_restart_starts_over_with_the_same_id() -> None:
    h = failed_three()
    wid = h.wf["workflowId"]
    old_ids = [t["taskId"] for t in h.wf["tasks"]]
    dec = h.apply(d.restart, at=500)
    assert h.wf["workflowId"] == wid and h.status == "RUNNING" and h.refs() == ["a"]
    assert h.wf["createTime"] == 500 and h.wf["endTime"] == 0 and h.wf["output"] == {}
    assert sorted(dec.removed_task_ids) == sorted(old_ids)
    new_def = wf_def(simple("z"), version=2)
    h.apply(d.terminate, "x")
    h.apply(d.restart, latest_definition=new_def)
    assert h.refs() == ["z"] and h.wf["workflowVersion"] == 2
    with pytest.raises(Conflict):
        h.apply(d.restart)
    h3 = Harness(wf_def(simple("a"), restartable=False))
    h3.start()
    h3.run_worker("a")
    with pytest.raises(NotFound, match="is non-restartable"):
        h3.apply(d.restart)


def test_rerun_from_a_task() -> None:
    h = failed_three()
    a = h.task("a")
    dec = h.apply(
        d.rerun,
        {"reRunFromTaskId": a["taskId"], "taskInput": {"fresh": True}, "workflowInput": {"n": 2}},
        at=200,
    )
    assert h.status == "RUNNING" and h.wf["input"] == {"n": 2}
    assert h.refs() == ["a"] and h.task("a")["taskId"] == a["taskId"]
    assert h.task("a")["status"] == "SCHEDULED" and h.task("a")["inputData"] == {"fresh": True}
    assert len(dec.removed_task_ids) == 1 and [p.message_id for p in dec.pushes] == [a["taskId"]]
    h.run_worker("a", at=201)
    h.run_worker("b", at=202)
    h.run_worker("c", at=203)
    assert h.status == "COMPLETED"
    with pytest.raises(InvalidArgument, match="Task nope not found"):
        h.apply(d.rerun, {"reRunFromTaskId": "nope"})


def test_rerun_from_the_start() -> None:
    h = failed_three()
    h.apply(d.rerun, {"correlationId": "again"})
    assert h.refs() == ["a"] and h.wf["correlationId"] == "again"


# --- skip / variables -------------------------------------------------------------------------


def test_skip_task() -> None:
    h = Harness(wf_def(simple("a"), simple("b"), simple("c")))
    h.start()
    h.apply(d.skip_task, "b", task_output={"skipped": 1})
    assert h.summary()[-1] == ("b", "b", "SKIPPED")
    h.run_worker("a")
    assert h.pending() == ["c"]
    h.run_worker("c")
    assert h.status == "COMPLETED"
    with pytest.raises(IllegalState, match="is not running"):
        h.apply(d.skip_task, "c")
    h2 = Harness(wf_def(simple("a"), simple("b")))
    h2.start()
    with pytest.raises(IllegalState, match="already been processed"):
        h2.apply(d.skip_task, "a")
    with pytest.raises(IllegalState, match="does not exist"):
        h2.apply(d.skip_task, "zz")


def test_set_variables() -> None:
    h = two()
    h.start()
    h.apply(d.set_variables, {"k": [1]})
    assert h.wf["variables"] == {"k": [1]}
    with pytest.raises(LimitExceeded):
        h.apply(d.set_variables, {"big": "x" * 300_000})


def test_update_by_ref_merges_output() -> None:
    h = two()
    h.start()
    h.claim("a")
    h.update("a", "IN_PROGRESS", outputData={"p": 1})
    h.apply(d.update_task_by_ref, "a", "COMPLETED", {"q": 2})
    assert h.task("a")["outputData"] == {"p": 1, "q": 2} and h.task("a")["status"] == "COMPLETED"
    assert not h.apply(d.update_task_by_ref, "zz", "COMPLETED", {}).accepted


# --- claim limits ---------------------------------------------------------------------------


def test_claim_limits() -> None:
    assert check_claim_limits(None, in_progress=100, claimed_in_window=100).allowed
    conc = {"name": "t", "concurrentExecLimit": 2}
    assert check_claim_limits(conc, in_progress=1, claimed_in_window=0).allowed
    verdict = check_claim_limits(conc, in_progress=2, claimed_in_window=0)
    assert (
        not verdict.allowed
        and verdict.postpone_ms == 60_000
        and "concurrentExecLimit" in (verdict.reason or "")
    )
    assert not check_claim_limits(
        conc, in_progress=0, claimed_in_window=0, is_among_oldest=False
    ).allowed
    rate = {"name": "t", "rateLimitPerFrequency": 3, "rateLimitFrequencyInSeconds": 10}
    assert check_claim_limits(rate, in_progress=0, claimed_in_window=2).allowed
    assert not check_claim_limits(rate, in_progress=0, claimed_in_window=3).allowed
    assert check_claim_limits(
        {"name": "t", "rateLimitPerFrequency": 0}, in_progress=0, claimed_in_window=10**6
    ).allowed


def test_update_task_rejects_malformed_results_with_field_errors() -> None:
    import pytest

    from decider import operations as ops
    from decider.decision import Context
    from podium.errors import ValidationError

    ctx = Context(now_ms=1, ids=lambda: "x")
    for bad, path in (
        ({"callbackAfterSeconds": "soon"}, "callbackAfterSeconds"),
        ({"callbackAfterSeconds": -1}, "callbackAfterSeconds"),
        ({"logs": "not a list"}, "logs"),
        ({"logs": [1, 2]}, "logs"),
        ({"outputData": [1]}, "outputData"),
    ):
        result = {"workflowInstanceId": "w", "taskId": "t", "status": "COMPLETED", **bad}
        with pytest.raises(ValidationError) as info:
            ops.update_task({}, result, ctx)
        paths = [e["path"] for e in info.value.data["validationErrors"]]
        assert paths == [path]
