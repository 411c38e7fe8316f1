"""Nested containers: forks inside loops inside sub-workflows; random completion orders."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import decider as d
from tests.decider.decider_harness import Harness, simple, wf_def


def fork_in_loop(loop_ref: str = "loop", iterations: int = 2) -> dict[str, Any]:
    body = [
        {
            "name": "prep",
            "taskReferenceName": "prep",
            "type": "INLINE",
            "inputParameters": {"expression": "$.i * 10", "i": f"${{{loop_ref}.output.iteration}}"},
        },
        {
            "name": "f",
            "taskReferenceName": "f",
            "type": "FORK_JOIN",
            "forkTasks": [[simple("a"), simple("a2")], [simple("b")]],
        },
        {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": ["a2", "b"]},
    ]
    return {
        "name": loop_ref,
        "taskReferenceName": loop_ref,
        "type": "DO_WHILE",
        "loopCondition": f"$.{loop_ref}.iteration < {iterations}",
        "loopOver": body,
    }


def test_fork_inside_loop() -> None:
    h = Harness(wf_def(fork_in_loop(), simple("after")))
    h.start()
    assert h.refs() == ["loop", "prep__1", "f__1", "a__1", "b__1", "j__1"]
    assert h.task("prep__1")["outputData"] == {"result": 10}
    h.run_worker("b__1", {"b": 1})
    h.run_worker("a__1")
    h.run_worker("a2__1", {"a2": 1})
    assert h.task("j__1")["status"] == "COMPLETED" and h.task("j__1")["outputData"] == {
        "a2__1": {"a2": 1},
        "b__1": {"b": 1},
    }
    assert h.pending() == ["loop", "a__2", "b__2", "j__2"] and h.task("prep__2")["outputData"] == {
        "result": 20
    }
    for ref in ("a__2", "a2__2", "b__2"):
        h.run_worker(ref)
    assert h.pending() == ["after"] and h.task("loop")["outputData"]["iteration"] == 2
    assert set(h.task("loop")["outputData"]["1"]) == {"prep", "f", "a", "a2", "b", "j"}


def drive_child(parent: Harness, commands: list[Any], at: int) -> Harness:
    """Start the child a StartSubWorkflow command asks for, as the shell would."""
    (cmd,) = [c for c in commands if isinstance(c, d.StartSubWorkflow)]
    child = Harness(cmd.definition or {}, prefix="child")
    dec = child.start(
        cmd.input,
        at=at,
        workflowId=cmd.workflow_id,
        parentWorkflowId=cmd.parent_workflow_id,
        parentWorkflowTaskId=cmd.parent_workflow_task_id,
        correlationId=cmd.correlation_id,
    )
    route(parent, dec.commands)
    return child


def route(parent: Harness, commands: list[Any]) -> None:
    """Deliver NotifyParent commands to the parent, as the shell would."""
    for c in commands:
        if isinstance(c, d.NotifyParent):
            parent.apply(
                d.child_status,
                c.parent_workflow_task_id,
                c.workflow_id,
                c.status,
                output=c.output,
                reason=c.reason,
            )


def test_fork_in_loop_in_inline_sub_workflow_via_commands() -> None:
    child_def = wf_def(
        fork_in_loop(), name="child", outputParameters={"loops": "${loop.output.iteration}"}
    )
    parent_def = wf_def(
        {
            "name": "sub",
            "taskReferenceName": "sub",
            "type": "SUB_WORKFLOW",
            "subWorkflowParam": {"name": "child", "workflowDefinition": child_def},
            "inputParameters": {"n": "${workflow.input.n}"},
        },
        simple("after", inputParameters={"loops": "${sub.output.loops}"}),
        name="parent",
    )
    parent = Harness(parent_def)
    dec = parent.start({"n": 1}, correlationId="corr")
    child = drive_child(parent, dec.commands, at=10)
    assert parent.task("sub")["status"] == "IN_PROGRESS" and child.wf["input"] == {"n": 1}
    assert (
        child.wf["correlationId"] == "corr"
        and child.wf["parentWorkflowId"] == parent.wf["workflowId"]
    )
    for i in (1, 2):
        for ref in (f"a__{i}", f"b__{i}", f"a2__{i}"):
            dec = child.run_worker(ref)
    assert child.status == "COMPLETED"
    route(parent, dec.commands)
    assert (
        parent.task("sub")["status"] == "COMPLETED"
        and parent.task("sub")["outputData"]["loops"] == 2
    )
    assert parent.task("after")["inputData"] == {"loops": 2}


def test_sub_workflows_nest_no_deeper_than_the_limit() -> None:
    sub = {
        "name": "again",
        "taskReferenceName": "again",
        "type": "SUB_WORKFLOW",
        "subWorkflowParam": {"name": "wf", "version": 1},
    }
    config = d.DeciderConfig(max_subworkflow_depth=2)
    top = Harness(wf_def(sub), config=config)
    (cmd,) = top.start().commands
    assert isinstance(cmd, d.StartSubWorkflow) and cmd.depth == 1
    middle = Harness(wf_def(sub), config=config)
    (cmd,) = middle.start(subWorkflowDepth=cmd.depth).commands
    assert isinstance(cmd, d.StartSubWorkflow)
    assert middle.wf["subWorkflowDepth"] == 1 and cmd.depth == 2
    deepest = Harness(wf_def(sub), config=config)
    dec = deepest.start(subWorkflowDepth=cmd.depth)
    again = deepest.task("again")
    assert again["status"] == "FAILED_WITH_TERMINAL_ERROR" and again["retryCount"] == 0
    assert again["reasonForIncompletion"] == (
        "Sub workflow wf not started: sub-workflows may nest 2 deep "
        "(PODIUM_DECIDER_MAX_SUBWORKFLOW_DEPTH)"
    )
    assert deepest.status == "FAILED"
    assert not any(isinstance(c, d.StartSubWorkflow) for c in dec.commands)


def test_failed_child_retried_reopens_parent() -> None:
    child_def = wf_def(simple("c", retryCount=0), name="child")
    parent = Harness(
        wf_def(
            {
                "name": "sub",
                "taskReferenceName": "sub",
                "type": "SUB_WORKFLOW",
                "subWorkflowParam": {"name": "child", "workflowDefinition": child_def},
            },
            simple("z"),
        )
    )
    dec = parent.start()
    child = drive_child(parent, dec.commands, at=1)
    child.claim("c")
    dec = child.fail("c", "child broke")
    route(parent, dec.commands)
    assert parent.status == "FAILED" and parent.task("sub")["status"] == "FAILED"
    dec = child.apply(d.retry)
    route(parent, dec.commands)
    assert parent.status == "RUNNING" and parent.task("sub")["status"] == "IN_PROGRESS"
    dec = child.run_worker("c")
    route(parent, dec.commands)
    assert parent.pending() == ["z"]


@settings(max_examples=60, deadline=None)
@given(
    branches=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=4),
    order_seed=st.randoms(use_true_random=False),
    failures=st.integers(min_value=0, max_value=3),
)
def test_random_completion_orders_never_schedule_twice(
    branches: list[int], order_seed: Any, failures: int
) -> None:
    fork_tasks = [[simple(f"t{b}_{i}") for i in range(n)] for b, n in enumerate(branches)]
    last_refs = [branch[-1]["taskReferenceName"] for branch in fork_tasks]
    defs = {
        t["name"]: {"name": t["name"], "retryCount": 3, "retryDelaySeconds": 0}
        for br in fork_tasks
        for t in br
    }
    h = Harness(
        wf_def(
            {"name": "f", "taskReferenceName": "f", "type": "FORK_JOIN", "forkTasks": fork_tasks},
            {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": last_refs},
            simple("end"),
        ),
        task_defs=defs,
    )
    h.start()
    budget = failures
    for _ in range(200):
        pending = [
            t
            for t in h.wf["tasks"]
            if t["status"] in ("SCHEDULED", "IN_PROGRESS") and t["taskType"] != "JOIN"
        ]
        if not pending:
            break
        t = order_seed.choice(pending)
        ref = t["referenceTaskName"]
        if t["status"] == "SCHEDULED":
            h.claim(ref)
        elif budget and order_seed.random() < 0.3:
            budget -= 1
            h.fail(ref)
        else:
            h.complete(ref, {"from": ref})
        keys = Counter((x["referenceTaskName"], x["retryCount"]) for x in h.wf["tasks"])
        assert max(keys.values()) == 1, keys
        live = Counter(
            x["referenceTaskName"]
            for x in h.wf["tasks"]
            if x["status"] in ("SCHEDULED", "IN_PROGRESS")
        )
        assert not live or max(live.values()) == 1, live
    assert h.status == "COMPLETED"
    assert [t["status"] for t in h.wf["tasks"] if t["referenceTaskName"] == "j"] == ["COMPLETED"]
    assert h.task("j")["outputData"] == {ref: {"from": ref} for ref in last_refs}
    seqs = [t["seq"] for t in h.wf["tasks"]]
    assert len(set(seqs)) == len(seqs)
