"""Several results of one workflow applied together (``update_tasks``), and decisions made
one after another combined into one (``combine``): the same end as one at a time."""

from __future__ import annotations

from typing import Any

import pytest

from decider import operations as ops
from decider.decision import QueuePush, QueueRemove, combine
from podium.errors import NotFound
from tests.decider.decider_harness import Harness
from tests.shapes import fork_join

BRANCHES = 6
FORK = fork_join(
    "wf_fork_together",
    "work",
    BRANCHES,
    {"name": "after", "taskReferenceName": "after", "type": "SIMPLE"},
)


def started() -> Harness:
    h = Harness(FORK)
    h.start(at=1000)
    for i in range(BRANCHES):
        h.claim(f"b{i}", at=2000)
    return h


def result(h: Harness, ref: str, status: str = "COMPLETED", **fields: Any) -> dict[str, Any]:
    return {
        "workflowInstanceId": h.wf["workflowId"],
        "taskId": h.task(ref)["taskId"],
        "status": status,
        "outputData": {"ref": ref},
        **fields,
    }


def view(wf: dict[str, Any]) -> list[tuple[str, str, Any]]:
    return [(t["referenceTaskName"], t["status"], t.get("outputData")) for t in wf["tasks"]]


def test_results_together_end_as_one_at_a_time() -> None:
    one_by_one, together = started(), started()
    refs = [f"b{i}" for i in range(BRANCHES)]
    for ref in refs:
        one_by_one.complete(ref, {"ref": ref}, at=3000)

    decision, outcomes = ops.update_tasks(
        together.wf, [result(together, ref) for ref in refs], together.ctx(3000)
    )

    assert [(o.accepted, o.decide) for o in outcomes if isinstance(o, ops.Applied)] == [
        (True, True)
    ] * BRANCHES
    assert view(decision.workflow) == view(one_by_one.wf)
    # the join completed with every branch's output, and the next task is scheduled, once
    assert decision.workflow["tasks"][-1]["referenceTaskName"] == "after"
    assert [p.message_id for p in decision.pushes] == [decision.workflow["tasks"][-1]["taskId"]]
    changed = {t["referenceTaskName"] for t in decision.changed_tasks}
    assert changed == {*refs, "join", "after"}
    assert decision.created_task_ids == [decision.workflow["tasks"][-1]["taskId"]]


def test_each_result_is_refused_alone() -> None:
    h = started()
    h.complete("b0", at=2500)  # already finished: a late repeat is not accepted
    results = [
        result(h, "b0"),
        {**result(h, "b1"), "taskId": "no-such-task"},
        {**result(h, "b2"), "status": "NOT_A_STATUS"},
        result(h, "b3", "FAILED", reasonForIncompletion="boom"),
        result(h, "b4"),
    ]

    decision, outcomes = ops.update_tasks(h.wf, results, h.ctx(3000))

    late, unknown, invalid, failed, done = outcomes
    assert isinstance(late, ops.Applied) and not late.accepted
    assert isinstance(unknown, NotFound)
    assert not isinstance(invalid, ops.Applied)
    assert isinstance(failed, ops.Applied) and failed.accepted
    assert isinstance(done, ops.Applied) and done.accepted
    status = {t["referenceTaskName"]: t["status"] for t in decision.workflow["tasks"]}
    assert status["b1"] == status["b2"] == "IN_PROGRESS"
    assert status["b4"] == "COMPLETED"
    # b3 failed with retries left (the default TaskDef): a new attempt is scheduled
    attempts = [t for t in decision.workflow["tasks"] if t["referenceTaskName"] == "b3"]
    assert [t["status"] for t in attempts] == ["FAILED", "SCHEDULED"]


def test_combine_keeps_the_last_record_and_the_last_queue_operation() -> None:
    h = started()
    first = ops.update_task(h.wf, result(h, "b0"), h.ctx(3000))
    # b1 goes back to its queue for later, then completes: its message is removed
    second = ops.update_task(
        first.workflow, result(h, "b1", "IN_PROGRESS", callbackAfterSeconds=5), h.ctx(3001)
    )
    third = ops.update_task(second.workflow, result(h, "b1"), h.ctx(3002))

    combined = combine([first, second, third])

    assert combined.workflow is third.workflow
    assert combined.next_check_ms == third.next_check_ms
    final = {t["taskId"]: t for t in third.workflow["tasks"]}
    b0, b1 = h.task("b0")["taskId"], h.task("b1")["taskId"]
    assert {t["taskId"] for t in combined.changed_tasks} >= {b0, b1}
    assert all(t is final[t["taskId"]] for t in combined.changed_tasks)
    assert QueueRemove("work", b1) in combined.removals
    assert all(p.message_id != b1 for p in combined.pushes)
    assert any(p == QueuePush("work", b1, 0, 5000) for p in second.pushes)


def test_combine_of_one_is_that_decision() -> None:
    h = started()
    only = ops.update_task(h.wf, result(h, "b0"), h.ctx(3000))
    assert combine([only]) is only


def test_update_tasks_of_an_unknown_task_only() -> None:
    h = started()
    decision, [outcome] = ops.update_tasks(
        h.wf, [{**result(h, "b0"), "taskId": "nope"}], h.ctx(3000)
    )
    assert isinstance(outcome, NotFound)
    assert not decision.changed
    with pytest.raises(NotFound):
        ops.update_task(h.wf, {**result(h, "b0"), "taskId": "nope"}, h.ctx(3000))
