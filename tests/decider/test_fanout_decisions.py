"""Fan-outs decided on kept records: the decisions that share settled and quiet tasks, find
tasks through the record's index and carry a waiting JOIN's progress must be the ones a
fresh read gives. The harness makes every decision twice (on the kept record and on a deep
copy without deadlines or index) and compares them; these tests drive the cases that tell
the two apart if the shortcuts are wrong."""

from __future__ import annotations

import random
from typing import Any

from decider.task_index import TaskIndex
from tests.decider.decider_harness import Harness, simple, wf_def
from tests.decider.test_task_types import fork, join, sys_task


def test_a_waiting_join_fails_at_once_when_a_branch_fails_while_others_run() -> None:
    failing = sys_task("c", "INLINE", evaluatorType="graaljs", expression="$.x.y.z")
    d = wf_def(
        fork("f", [simple("a")], [simple("b"), failing], [simple("d")]),
        join("j", ["a", "c", "d"]),
    )
    h = Harness(d, task_defs={"b": {"name": "b", "retryCount": 0}})
    h.start(at=1)
    h.run_worker("a", at=2)  # the join waits, with a and nothing failed: its progress is kept
    index = getattr(h.wf, "index", None)
    assert isinstance(index, TaskIndex) and h.task("j")["taskId"] in index.joins
    h.run_worker("b", at=3)  # c runs and fails in the same decision; d is still scheduled
    assert h.statuses()["c"] == "FAILED_WITH_TERMINAL_ERROR"
    assert h.statuses()["j"] == "FAILED" and h.statuses()["d"] == "CANCELED"
    assert h.status == "FAILED"


def dynamic_fork(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    dyn = {
        "name": "df",
        "taskReferenceName": "df",
        "type": "FORK_JOIN_DYNAMIC",
        "dynamicForkTasksParam": "tasks",
        "dynamicForkTasksInputParamName": "inputs",
        "inputParameters": {
            "tasks": "${workflow.input.tasks}",
            "inputs": "${workflow.input.inputs}",
        },
    }
    refs = [f"p{i}" for i in range(n)]
    inputs = {
        "tasks": [{"name": "p", "taskReferenceName": r} for r in refs],
        "inputs": {r: {"i": i} for i, r in enumerate(refs)},
    }
    return wf_def(dyn, join("dj", []), simple("z")), inputs


def test_a_dynamic_fork_in_any_order_with_retries_callbacks_and_timeouts() -> None:
    n = 40
    definition, inputs = dynamic_fork(n)
    task_def = {
        "name": "p",
        "retryCount": 2,
        "retryDelaySeconds": 0,
        "responseTimeoutSeconds": 5,
        "timeoutPolicy": "RETRY",
    }
    h = Harness(definition, task_defs={"p": task_def})
    h.start(inputs, at=1000)
    rng = random.Random(7)
    now = 1000
    refs = [f"p{i}" for i in range(n)]
    steps = 0
    while h.pending() and steps < 2000:
        steps += 1
        now += rng.choice((1, 10, 100))
        ref = rng.choice([r for r in refs if h.statuses()[r] in ("SCHEDULED", "IN_PROGRESS")])
        task = h.task(ref)
        roll = rng.random()
        if task["status"] == "SCHEDULED":
            h.claim(ref, at=now)
        elif roll < 0.1:
            h.fail(ref, "flaky", at=now)  # retried: a new attempt of the same reference
        elif roll < 0.2:
            h.update(ref, "IN_PROGRESS", at=now, callbackAfterSeconds=1)  # back to the queue
        elif roll < 0.25:
            h.decide(at=now + 6000)  # past the response timeout of what is in progress
            now += 6000
        else:
            h.complete(ref, {"r": ref}, at=now)
        if h.statuses().get("z") == "SCHEDULED":
            break
    assert h.statuses()["dj"] == "COMPLETED", h.summary()
    assert sorted(h.task("dj")["outputData"]) == sorted(refs)
    assert any(t["status"] == "TIMED_OUT" for t in h.wf["tasks"])
    assert any(t["status"] == "FAILED" for t in h.wf["tasks"])
    h.run_worker("z", at=now + 1)
    assert h.status == "COMPLETED"


def test_the_index_a_decision_leaves_matches_its_record() -> None:
    definition, inputs = dynamic_fork(12)
    h = Harness(definition)
    h.start(inputs, at=1)
    for i in range(12):
        h.claim(f"p{i}", at=10 + i)
        if i % 3 == 0:
            h.complete(f"p{i}", at=20 + i)
        index = getattr(h.wf, "index", None)
        assert isinstance(index, TaskIndex)
        fresh = TaskIndex.of(h.wf["tasks"])
        assert (index.at, index.by_ref, index.system) == (fresh.at, fresh.by_ref, fresh.system)
        assert (index.unsettled, index.loud, index.max_seq) == (
            fresh.unsettled,
            fresh.loud,
            fresh.max_seq,
        )
