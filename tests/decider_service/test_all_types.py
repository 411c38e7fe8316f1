"""Every task type and operation through the real decider service, on each store.

The queue service and the decider run as real RPC servers (``tests/stack.py``), with a real
sweeper for timers, over Redis and then over Cassandra (one keyspace per run, on the
session's node). Tests drive workflows the way the gateway does: ``decider.start_workflow``,
a worker's poll as queue pop + ``decider.claim``, ``decider.update_task`` and the lifecycle
calls, and read the results back from the store.

Covered here (the SDK e2e tests cover SIMPLE, FORK_JOIN, SWITCH, DO_WHILE, SUB_WORKFLOW, WAIT
for a duration and the common lifecycle calls): DYNAMIC, FORK_JOIN_DYNAMIC, EXCLUSIVE_JOIN,
DECISION, SWITCH (value-param, javascript), INLINE, JSON_JQ_TRANSFORM, SET_VARIABLE,
TERMINATE in a switch branch, NOOP, HUMAN, START_WORKFLOW, WAIT until a time, a FORK inside a
DO_WHILE inside a SUB_WORKFLOW; retries (FIXED, EXPONENTIAL_BACKOFF), task, poll and
workflow-ending timeouts, optional tasks, failureWorkflow; skip_task, set_variables, rerun,
restart with the latest definition, pause/resume, retry, update_task_by_ref, signal, remove.

Tests keep apart by data: every test draws fresh workflow names and task types. Every wait is
a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podium.errors import LimitExceeded, NotFound
from podium.launch.redis import RedisServer
from podium.queues import DECIDER_QUEUE
from podium.types import JSON
from sweeper.server import Sweeper
from tests.local_cassandra import cassandra_store_config
from tests.polling import eventually
from tests.stack import Stack, running_stack

BACKENDS = ["redis", "cassandra"]
TERMINAL = {"COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"}

# The module's stack (and, on Cassandra, the node) starts in the first test's setup, which
# func_only keeps out of the tests' own time limits.
pytestmark = pytest.mark.timeout(30, func_only=True)


# --- the stack: one per backend for the module -------------------------------------------------


@pytest.fixture(scope="module")
def queue_redis() -> Iterator[RedisServer]:
    """The module's own Redis: the queue shard, and the store on the Redis backend."""
    with RedisServer() as server:  # started, and removed with its files at the end
        yield server


@pytest.fixture(scope="module", params=BACKENDS)
async def stack(request: pytest.FixtureRequest, queue_redis: RedisServer) -> AsyncIterator[Stack]:
    """Queue service, decider and a sweeper over the backend's store (a fresh keyspace/prefix)."""
    tag = uuid.uuid4().hex[:10]
    store_config = None
    if request.param == "cassandra":
        store_config = cassandra_store_config(
            request.getfixturevalue("cassandra_node"), f"podium_alltypes_{tag}"
        )
    async with running_stack(
        queue_redis, f"podium:alltypes:{tag}:", store_config=store_config
    ) as s:
        sweeper = await Sweeper(s.sweeper_settings()).start()
        try:
            yield s
        finally:
            await sweeper.stop(grace_s=2.0)


# --- definitions ---------------------------------------------------------------------------


def uniq(base: str) -> str:
    return f"{base}_{uuid.uuid4().hex[:8]}"


def wf_def(name: str, *tasks: JSON, **kw: Any) -> JSON:
    return {"name": name, "version": 1, "schemaVersion": 2, "tasks": list(tasks), **kw}


def simple(ref: str, task_type: str, **kw: Any) -> JSON:
    return {"name": task_type, "taskReferenceName": ref, "type": "SIMPLE", **kw}


def sys_task(ref: str, type_: str, **inputs: Any) -> JSON:
    return {"name": ref, "taskReferenceName": ref, "type": type_, "inputParameters": inputs}


def fork(ref: str, *branches: list[JSON]) -> JSON:
    return {"name": ref, "taskReferenceName": ref, "type": "FORK_JOIN", "forkTasks": list(branches)}


def join(ref: str, on: list[str]) -> JSON:
    return {"name": ref, "taskReferenceName": ref, "type": "JOIN", "joinOn": on}


async def task_def(stack: Stack, name: str, **kw: Any) -> None:
    await stack.store.metadata.create_task_def(
        {"name": name, "ownerEmail": "test@podium.dev", "responseTimeoutSeconds": 60, **kw}
    )


# --- driving workflows as the gateway does ----------------------------------------------------


async def start(stack: Stack, definition: JSON, inp: JSON | None = None, **request: Any) -> str:
    """Register ``definition`` and start it through ``decider.start_workflow``."""
    await stack.store.metadata.update_workflow_def(definition)
    answer = await stack.rpc.call(
        "decider.start_workflow",
        {
            "request": {
                "name": definition["name"],
                "version": definition["version"],
                "input": inp or {},
                **request,
            }
        },
    )
    return str(answer["workflowId"])


async def call(stack: Stack, method: str, **params: Any) -> Any:
    return await stack.rpc.call(f"decider.{method}", params)


async def poll(stack: Stack, task_type: str, count: int = 1, wait_ms: int = 0) -> list[JSON]:
    """One worker poll: pop from the task type's queue, then claim through the decider."""
    got = await stack.queues.pop(task_type, count=count, lease_ms=30_000, wait_ms=wait_ms)
    if not got:
        return []
    items = [
        [m.id, m.payload.decode() if isinstance(m.payload, bytes) else str(m.payload)] for m in got
    ]
    answer = await call(stack, "claim", queue=task_type, items=items, workerId="tester")
    return list(answer["tasks"])


async def claim(stack: Stack, task_type: str, n: int = 1, timeout_s: float = 10.0) -> list[JSON]:
    """Poll until ``n`` tasks of ``task_type`` have been claimed."""
    claimed: list[JSON] = []

    async def more() -> list[JSON]:
        claimed.extend(await poll(stack, task_type, count=n - len(claimed), wait_ms=200))
        return claimed

    # each poll waits up to 200 ms for a message: no pause between polls
    return await eventually(
        more,
        until=lambda tasks: len(tasks) >= n,
        timeout_s=timeout_s,
        what=f"{n} {task_type} tasks claimed",
        interval_s=0,
    )


async def update(
    stack: Stack, task: JSON, status: str, output: JSON | None = None, reason: str | None = None
) -> JSON:
    result: JSON = {
        "workflowInstanceId": task["workflowInstanceId"],
        "taskId": task["taskId"],
        "status": status,
        "outputData": output or {},
    }
    if reason is not None:
        result["reasonForIncompletion"] = reason
    answer: JSON = await call(stack, "update_task", result=result)
    return answer


async def until(
    stack: Stack, wf_id: str, check: Callable[[JSON], bool], timeout_s: float = 15.0
) -> JSON:
    """Read the workflow until ``check`` holds (a workflow not written yet counts as not yet)."""
    return await stack.until(wf_id, check, timeout_s, missing_ok=True)


async def ended(stack: Stack, wf_id: str, timeout_s: float = 15.0) -> JSON:
    return await until(stack, wf_id, lambda w: w["status"] in TERMINAL, timeout_s)


def summary(wf: JSON) -> list[tuple[str, str]]:
    return [(t["referenceTaskName"], t["status"]) for t in wf["tasks"]]


def task(wf: JSON, ref: str) -> JSON:
    """The latest attempt of the task ``ref``."""
    found: list[JSON] = [t for t in wf["tasks"] if t["referenceTaskName"] == ref]
    assert found, f"no task {ref} in {summary(wf)}"
    return found[-1]


def refresh_task_defs(stack: Stack) -> None:
    """Make the decider read the TaskDefs again on its next call (it caches them for 2 s)."""
    assert stack.decider.shell is not None
    stack.decider.shell.invalidate_task_defs()


async def absent(stack: Stack, queue: str, message_id: str) -> bool:
    return not await stack.queues.contains(queue, message_id)


async def gone(stack: Stack, task_id: str) -> bool:
    try:
        await stack.store.executions.get_task(task_id)
    except NotFound:
        return True
    return False


# --- task types ----------------------------------------------------------------------------


def dynamic_task(ref: str) -> JSON:
    return {
        "name": ref,
        "taskReferenceName": ref,
        "type": "DYNAMIC",
        "dynamicTaskNameParam": "taskToExecute",
        "inputParameters": {
            "taskToExecute": "${workflow.input.which}",
            "payload": "${workflow.input.payload}",
        },
    }


async def test_dynamic_task_runs_as_the_type_its_input_names(stack: Stack) -> None:
    name = uniq("dyn")
    target = f"{name}_encode"
    await task_def(stack, target, retryCount=0)
    refresh_task_defs(stack)  # independent of test order; the next test covers a cold cache
    definition = wf_def(
        name, dynamic_task("dyn"), outputParameters={"encoded": "${dyn.output.encoded}"}
    )
    wf_id = await start(stack, definition, {"which": target, "payload": "abc"})
    (t,) = await claim(stack, target)
    assert (t["taskType"], t["taskDefName"], t["referenceTaskName"]) == (target, target, "dyn")
    assert t["inputData"] == {"taskToExecute": target, "payload": "abc"}
    assert t["workflowTask"]["taskDefinition"]["retryCount"] == 0
    await update(stack, t, "COMPLETED", {"encoded": "ABC"})
    wf = await ended(stack, wf_id)
    assert wf["status"] == "COMPLETED" and wf["output"] == {"encoded": "ABC"}


async def test_dynamic_task_finds_a_task_def_registered_just_before(stack: Stack) -> None:
    name = uniq("dynfresh")
    first, second = f"{name}_first", f"{name}_second"
    await task_def(stack, first)
    definition = wf_def(name, dynamic_task("dyn"))
    refresh_task_defs(stack)
    warm = await start(stack, definition, {"which": first})  # the decider reloads its cache
    assert (await stack.workflow(warm))["status"] == "RUNNING"
    await task_def(stack, second)  # a client registers a TaskDef, then starts a workflow
    wf_id = await start(stack, definition, {"which": second})
    wf = await stack.workflow(wf_id)
    assert wf["status"] == "RUNNING", wf.get("reasonForIncompletion")
    (t,) = await claim(stack, second)
    assert t["workflowInstanceId"] == wf_id and t["taskType"] == second


async def test_dynamic_fork_from_a_task_list_and_an_input_map(stack: Stack) -> None:
    name = uniq("dfork")
    worker = f"{name}_w"
    dyn = {
        "name": "df",
        "taskReferenceName": "df",
        "type": "FORK_JOIN_DYNAMIC",
        "dynamicForkTasksParam": "dynamicTasks",
        "dynamicForkTasksInputParamName": "dynamicTasksInput",
        "inputParameters": {
            "dynamicTasks": "${workflow.input.tasks}",
            "dynamicTasksInput": "${workflow.input.inputs}",
        },
    }
    total = sys_task(
        "total",
        "INLINE",
        evaluatorType="javascript",
        expression="$.j.d1.r + $.j.d2.r",
        j="${dj.output}",
    )
    definition = wf_def(
        name, dyn, join("dj", []), total, outputParameters={"total": "${total.output.result}"}
    )
    branches = [
        {
            "name": worker,
            "taskReferenceName": "d1",
            "type": "SIMPLE",
            "inputParameters": {"fixed": "yes"},
        },
        {"name": worker, "taskReferenceName": "d2", "type": "SIMPLE"},
    ]
    wf_id = await start(
        stack, definition, {"tasks": branches, "inputs": {"d1": {"x": 1}, "d2": {"x": 2}}}
    )
    wf = await stack.workflow(wf_id)
    assert summary(wf) == [
        ("df", "COMPLETED"),
        ("d1", "SCHEDULED"),
        ("d2", "SCHEDULED"),
        ("dj", "IN_PROGRESS"),
    ]
    assert task(wf, "df")["taskType"] == "FORK"
    assert task(wf, "df")["inputData"]["forkedTasks"] == ["d1", "d2"]
    assert task(wf, "dj")["inputData"]["joinOn"] == ["d1", "d2"]
    claimed = {t["referenceTaskName"]: t for t in await claim(stack, worker, 2)}
    assert claimed["d1"]["inputData"] == {"fixed": "yes", "x": 1}
    assert claimed["d2"]["inputData"] == {"x": 2}
    await update(stack, claimed["d2"], "COMPLETED", {"r": 32})
    assert task(await stack.workflow(wf_id), "dj")["status"] == "IN_PROGRESS"
    await update(stack, claimed["d1"], "COMPLETED", {"r": 10})
    wf = await ended(stack, wf_id)
    assert wf["status"] == "COMPLETED", summary(wf)
    assert task(wf, "dj")["outputData"] == {"d1": {"r": 10}, "d2": {"r": 32}}
    assert wf["output"] == {"total": 42}


async def test_switch_by_value_param_with_an_exclusive_join_and_a_noop_default(
    stack: Stack,
) -> None:
    name = uniq("xjoin")
    ta, tb = f"{name}_a", f"{name}_b"
    switch = {
        "name": "s",
        "taskReferenceName": "s",
        "type": "SWITCH",
        "evaluatorType": "value-param",
        "expression": "kind",
        "inputParameters": {"kind": "${workflow.input.kind}"},
        "decisionCases": {"a": [simple("ta", ta)], "b": [simple("tb", tb)]},
        "defaultCase": [sys_task("nd", "NOOP")],
    }
    exclusive = {
        "name": "ej",
        "taskReferenceName": "ej",
        "type": "EXCLUSIVE_JOIN",
        "joinOn": ["ta", "tb"],
        "defaultExclusiveJoinTask": ["nd"],
    }
    definition = wf_def(name, switch, exclusive, outputParameters={"picked": "${ej.output.v}"})

    wf_id = await start(stack, definition, {"kind": "b"})
    (tb_task,) = await claim(stack, tb)
    assert tb_task["referenceTaskName"] == "tb"
    await update(stack, tb_task, "COMPLETED", {"v": "from-b"})
    wf = await ended(stack, wf_id)
    assert wf["status"] == "COMPLETED"
    assert summary(wf) == [("s", "COMPLETED"), ("tb", "COMPLETED"), ("ej", "COMPLETED")]
    assert task(wf, "s")["outputData"] == {"evaluationResult": ["b"], "selectedCase": "b"}
    assert task(wf, "ej")["outputData"] == {"v": "from-b"} and wf["output"] == {"picked": "from-b"}
    assert await stack.queues.size(ta) == 0  # the other branch was never scheduled

    other = await start(stack, definition, {"kind": "neither"})
    wf = await ended(stack, other)  # NOOP default: done in the first decide
    assert wf["status"] == "COMPLETED"
    assert summary(wf) == [("s", "COMPLETED"), ("nd", "COMPLETED"), ("ej", "COMPLETED")]
    assert task(wf, "nd")["taskType"] == "NOOP"
    assert task(wf, "s")["outputData"]["selectedCase"] == "neither"


async def test_javascript_switch_and_a_terminate_inside_its_branch(stack: Stack) -> None:
    name = uniq("jsw")
    big, after = f"{name}_big", f"{name}_after"
    switch = {
        "name": "s",
        "taskReferenceName": "s",
        "type": "SWITCH",
        "evaluatorType": "javascript",
        "expression": "$.n > 10 ? 'big' : 'small'",
        "inputParameters": {"n": "${workflow.input.n}"},
        "decisionCases": {
            "big": [simple("b", big)],
            "small": [
                sys_task(
                    "stop",
                    "TERMINATE",
                    terminationStatus="COMPLETED",
                    terminationReason="too small",
                    workflowOutput={"n": "${workflow.input.n}"},
                )
            ],
        },
    }
    definition = wf_def(name, switch, simple("after", after))

    small = await start(stack, definition, {"n": 3})
    wf = await ended(stack, small)
    assert wf["status"] == "COMPLETED" and wf["reasonForIncompletion"] == "too small"
    assert wf["output"] == {"n": 3}
    assert summary(wf) == [("s", "COMPLETED"), ("stop", "COMPLETED")]
    assert task(wf, "s")["outputData"] == {"evaluationResult": ["small"], "selectedCase": "small"}
    assert await stack.queues.size(after) == 0  # nothing after the TERMINATE
    assert not await stack.queues.contains(DECIDER_QUEUE, small)

    large = await start(stack, definition, {"n": 20})
    (b,) = await claim(stack, big)
    await update(stack, b, "COMPLETED", {"ok": True})
    (a,) = await claim(stack, after)
    await update(stack, a, "COMPLETED")
    wf = await ended(stack, large)
    assert wf["status"] == "COMPLETED"
    assert summary(wf) == [("s", "COMPLETED"), ("b", "COMPLETED"), ("after", "COMPLETED")]
    assert task(wf, "s")["outputData"]["selectedCase"] == "big"


async def test_set_variable_inline_jq_and_decision_run_in_the_first_decide(stack: Stack) -> None:
    name = uniq("sys")
    decision = {
        "name": "dec",
        "taskReferenceName": "dec",
        "type": "DECISION",
        "caseValueParam": "c",
        "inputParameters": {"c": "${inl.output.result}"},
        "decisionCases": {"6": [sys_task("six", "NOOP")]},
        "defaultCase": [simple("other", f"{name}_other")],
    }
    definition = wf_def(
        name,
        sys_task("sv", "SET_VARIABLE", greeting="${workflow.input.greeting}"),
        sys_task(
            "inl",
            "INLINE",
            evaluatorType="javascript",
            expression="function f(){ return $.a * $.b; } f();",
            a="${workflow.input.a}",
            b=3,
        ),
        sys_task(
            "jq",
            "JSON_JQ_TRANSFORM",
            queryExpression="[.items[] * 2]",
            items="${workflow.input.items}",
        ),
        decision,
        outputParameters={
            "product": "${inl.output.result}",
            "doubled": "${jq.output.result}",
            "greeting": "${workflow.variables.greeting}",
            "case": "${dec.output.caseOutput}",
        },
        variables={"kept": True},
    )
    wf_id = await start(stack, definition, {"greeting": "hi", "a": 2, "items": [1, 2, 3]})
    wf = await stack.workflow(wf_id)  # finished before start_workflow answered
    assert wf["status"] == "COMPLETED", summary(wf)
    assert summary(wf) == [(ref, "COMPLETED") for ref in ("sv", "inl", "jq", "dec", "six")]
    assert wf["variables"] == {"kept": True, "greeting": "hi"}
    assert task(wf, "inl")["outputData"] == {"result": 6}
    assert task(wf, "jq")["outputData"] == {"result": [2, 4, 6], "resultList": [[2, 4, 6]]}
    assert task(wf, "dec")["outputData"] == {"caseOutput": ["6"]}
    assert wf["output"] == {"product": 6, "doubled": [2, 4, 6], "greeting": "hi", "case": ["6"]}
    assert not await stack.queues.contains(DECIDER_QUEUE, wf_id)


async def test_human_task_waits_for_an_update(stack: Stack) -> None:
    name = uniq("human")
    definition = wf_def(
        name,
        sys_task("hu", "HUMAN", who="${workflow.input.who}"),
        outputParameters={"approved": "${hu.output.approved}"},
    )
    wf_id = await start(stack, definition, {"who": "ann"})
    hu = task(await stack.workflow(wf_id), "hu")
    assert hu["status"] == "IN_PROGRESS" and hu["inputData"] == {"who": "ann"}
    await call(stack, "decide", workflowId=wf_id)  # a sweep does not finish it
    await update(stack, hu, "IN_PROGRESS", {"seen": 1})
    wf = await stack.workflow(wf_id)
    assert wf["status"] == "RUNNING" and task(wf, "hu")["status"] == "IN_PROGRESS"
    assert task(wf, "hu")["outputData"] == {"seen": 1}
    await update(stack, hu, "COMPLETED", {"approved": True})
    wf = await ended(stack, wf_id)
    assert wf["status"] == "COMPLETED" and wf["output"] == {"approved": True}
    assert task(wf, "hu")["outputData"] == {"approved": True}  # an update replaces the output


async def test_start_workflow_task_starts_another_workflow(stack: Stack) -> None:
    name, other = uniq("starter"), uniq("started")
    other_t = f"{other}_t"
    await stack.store.metadata.update_workflow_def(
        wf_def(other, simple("ot", other_t, inputParameters={"x": "${workflow.input.x}"}))
    )
    definition = wf_def(
        name,
        sys_task(
            "sw",
            "START_WORKFLOW",
            startWorkflow={"name": other, "version": 1, "input": {"x": "${workflow.input.x}"}},
        ),
    )
    wf_id = await start(stack, definition, {"x": 5}, correlationId="corr-sw")
    wf = await ended(stack, wf_id)
    sw = task(wf, "sw")
    assert wf["status"] == "COMPLETED" and sw["status"] == "COMPLETED"
    started_id = sw["outputData"]["workflowId"]
    assert wf["output"] == {"workflowId": started_id}
    started = await until(stack, started_id, lambda w: bool(w["tasks"]))
    assert (started["workflowName"], started["status"]) == (other, "RUNNING")
    assert started["input"] == {"x": 5} and started["correlationId"] == "corr-sw"
    assert not started.get("parentWorkflowId")  # started, not a child
    (ot,) = await claim(stack, other_t)
    assert ot["workflowInstanceId"] == started_id and ot["inputData"] == {"x": 5}
    await update(stack, ot, "COMPLETED")
    assert (await ended(stack, started_id))["status"] == "COMPLETED"


def _until_text(at: datetime, zone: str, offset: timedelta) -> str:
    return (at + offset).strftime("%Y-%m-%d %H:%M") + f" {zone}"


async def test_wait_until_a_time(stack: Stack) -> None:
    """``until`` has minute resolution: a past time passes at once, a future one sets the timer.

    The sweeper firing a WAIT on time is shown for ``duration`` in tests/sweeper; here the
    workflow's decider-queue entry must be due exactly at the ``until`` time.
    """
    name = uniq("until")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    past, future = now - timedelta(minutes=2), now + timedelta(minutes=3)
    definition = wf_def(
        name,
        sys_task("w1", "WAIT", until="${workflow.input.past}"),
        sys_task("w2", "WAIT", until="${workflow.input.future}"),
    )
    inp = {
        "past": _until_text(past, "UTC", timedelta(0)),
        "future": _until_text(future, "+02:00", timedelta(hours=2)),
    }
    wf_id = await start(stack, definition, inp)
    wf = await stack.workflow(wf_id)
    w1, w2 = task(wf, "w1"), task(wf, "w2")
    future_ms = int(future.timestamp() * 1000)
    assert w1["status"] == "COMPLETED" and w1["waitTimeout"] == int(past.timestamp() * 1000)
    assert w2["status"] == "IN_PROGRESS" and w2["waitTimeout"] == future_ms
    timer = await stack.queues.get(DECIDER_QUEUE, wf_id)
    assert timer is not None and timer.state == "delayed"
    assert future_ms <= timer.time_ms < future_ms + 5_000, timer.time_ms - future_ms
    await call(stack, "decide", workflowId=wf_id)  # early: nothing changes
    assert task(await stack.workflow(wf_id), "w2")["status"] == "IN_PROGRESS"
    answer = await call(stack, "signal", workflowId=wf_id, status="COMPLETED", output={"ok": 1})
    assert answer["status"] == "COMPLETED"
    wf = await stack.workflow(wf_id)
    assert task(wf, "w2")["status"] == "COMPLETED" and task(wf, "w2")["outputData"] == {"ok": 1}
    assert not await stack.queues.contains(DECIDER_QUEUE, wf_id)


async def test_fork_inside_a_loop_inside_a_sub_workflow(stack: Stack) -> None:
    name, child = uniq("parent"), uniq("child")
    ta, tb, after = f"{child}_a", f"{child}_b", f"{name}_after"
    loop = {
        "name": "loop",
        "taskReferenceName": "loop",
        "type": "DO_WHILE",
        "loopCondition": "$.loop.iteration < 2",
        "loopOver": [
            sys_task(
                "prep",
                "INLINE",
                evaluatorType="javascript",
                expression="$.i * 10",
                i="${loop.output.iteration}",
            ),
            fork(
                "f",
                [simple("a", ta, inputParameters={"p": "${prep.output.result}"})],
                [simple("b", tb)],
            ),
            join("j", ["a", "b"]),
        ],
    }
    await stack.store.metadata.update_workflow_def(
        wf_def(
            child,
            loop,
            outputParameters={"loops": "${loop.output.iteration}", "n": "${workflow.input.n}"},
        )
    )
    sub = {
        "name": "sub",
        "taskReferenceName": "sub",
        "type": "SUB_WORKFLOW",
        "subWorkflowParam": {"name": child, "version": 1},
        "inputParameters": {"n": "${workflow.input.n}"},
    }
    definition = wf_def(
        name, sub, simple("after", after, inputParameters={"loops": "${sub.output.loops}"})
    )
    parent_id = await start(stack, definition, {"n": 7}, correlationId="nest")
    wf = await until(stack, parent_id, lambda w: task(w, "sub")["status"] == "IN_PROGRESS")
    sub_task = task(wf, "sub")
    child_id = sub_task["subWorkflowId"]
    kid = await until(stack, child_id, lambda w: bool(w["tasks"]))
    assert kid["workflowName"] == child and kid["input"] == {"n": 7}
    assert kid["parentWorkflowId"] == parent_id
    assert kid["parentWorkflowTaskId"] == sub_task["taskId"]
    assert kid["correlationId"] == "nest"
    for i in (1, 2):
        (a,) = await claim(stack, ta)
        (b,) = await claim(stack, tb)
        assert (a["referenceTaskName"], b["referenceTaskName"]) == (f"a__{i}", f"b__{i}")
        assert a["iteration"] == i and a["inputData"] == {"p": i * 10}
        assert a["workflowInstanceId"] == child_id
        await update(stack, b, "COMPLETED", {"bi": i})
        await update(stack, a, "COMPLETED", {"ai": i})
    kid = await ended(stack, child_id)
    assert kid["status"] == "COMPLETED", summary(kid)
    assert kid["output"] == {"loops": 2, "n": 7}
    assert [ref for ref, _ in summary(kid)] == [
        "loop",
        "prep__1",
        "f__1",
        "a__1",
        "b__1",
        "j__1",
        "prep__2",
        "f__2",
        "a__2",
        "b__2",
        "j__2",
    ]
    assert task(kid, "j__2")["outputData"] == {"a__2": {"ai": 2}, "b__2": {"bi": 2}}
    (last,) = await claim(stack, after)
    assert last["workflowInstanceId"] == parent_id and last["inputData"] == {"loops": 2}
    wf = await stack.workflow(parent_id)
    assert task(wf, "sub")["status"] == "COMPLETED"
    assert task(wf, "sub")["outputData"] == {"loops": 2, "n": 7, "subWorkflowId": child_id}
    await update(stack, last, "COMPLETED")
    assert (await ended(stack, parent_id))["status"] == "COMPLETED"


async def test_a_workflow_that_starts_itself_stops_at_the_nesting_depth(stack: Stack) -> None:
    # Each child starts in a task of its own, not in its parent's start; the workflow 32 deep
    # (PODIUM_DECIDER_MAX_SUBWORKFLOW_DEPTH) fails its SUB_WORKFLOW task, and so the chain.
    name = uniq("selfsub")
    again = {
        "name": "again",
        "taskReferenceName": "again",
        "type": "SUB_WORKFLOW",
        "subWorkflowParam": {"name": name, "version": 1},
    }
    top = await ended(stack, await start(stack, wf_def(name, again)), timeout_s=25)
    chain = [top]
    while task(chain[-1], "again")["status"] != "FAILED_WITH_TERMINAL_ERROR":
        chain.append(await stack.workflow(task(chain[-1], "again")["subWorkflowId"]))
    assert len(chain) == 33 and {w["status"] for w in chain} == {"FAILED"}
    assert [w["subWorkflowDepth"] for w in chain[1:]] == list(range(1, 33))
    assert "sub-workflows may nest 32 deep" in top["reasonForIncompletion"]
    running = await stack.store.executions.running_workflow_ids(name)
    assert running == []


# --- retries, timeouts, optional tasks, failureWorkflow ---------------------------------------


async def _fail_and_retry(
    stack: Stack, task_type: str, delays: list[int], last: str
) -> tuple[JSON, list[JSON]]:
    """Fail a task once per delay, checking each retry waits out its delay; end with ``last``."""
    wf_id = await start(stack, wf_def(f"{task_type}_wf", simple("t", task_type)))
    (current,) = await claim(stack, task_type)
    attempts = [current]
    for n, delay in enumerate(delays):
        failed_at_ms = int(time.time() * 1000)
        await update(stack, current, "FAILED", reason=f"boom{n}")
        assert await poll(stack, task_type) == []  # not pollable before its delay
        wf = await stack.workflow(wf_id)
        old, new = wf["tasks"][-2], wf["tasks"][-1]
        assert old["taskId"] == current["taskId"] and old["status"] == "FAILED" and old["retried"]
        assert new["status"] == "SCHEDULED" and new["retriedTaskId"] == current["taskId"]
        assert new["retryCount"] == n + 1 and new["reasonForIncompletion"] == f"boom{n}"
        assert (new["callbackAfterSeconds"], new["startDelayInSeconds"]) == (delay, delay)
        queued = await stack.queues.get(task_type, new["taskId"])
        assert queued is not None and queued.state == "delayed"
        assert queued.time_ms >= failed_at_ms + delay * 1000
        (current,) = await claim(stack, task_type, timeout_s=delay + 10)
        # claimed once due, by the services' own clock (the one the delay is kept by)
        assert current["startTime"] >= queued.time_ms
        assert current["taskId"] == new["taskId"] and current["pollCount"] == 1
        attempts.append(current)
    await update(stack, current, last, reason="final" if last == "FAILED" else None)
    return await ended(stack, wf_id), attempts


async def test_fixed_and_exponential_backoff_retries_wait_out_their_delays(stack: Stack) -> None:
    name = uniq("retry")
    fixed, expo = f"{name}_fixed", f"{name}_expo"
    await task_def(stack, fixed, retryCount=1, retryLogic="FIXED", retryDelaySeconds=1)
    await task_def(stack, expo, retryCount=2, retryLogic="EXPONENTIAL_BACKOFF", retryDelaySeconds=1)
    (fixed_wf, fixed_tries), (expo_wf, expo_tries) = await asyncio.gather(
        _fail_and_retry(stack, fixed, [1], "FAILED"),
        _fail_and_retry(stack, expo, [1, 2], "COMPLETED"),
    )
    # FIXED, retries exhausted: the workflow fails with Conductor's reason
    assert fixed_wf["status"] == "FAILED" and len(fixed_wf["tasks"]) == 2
    assert fixed_wf["reasonForIncompletion"] == (
        f"Task {fixed_tries[-1]['taskId']} failed with status: FAILED and reason: 'final'"
    )
    assert fixed_wf["failedReferenceTaskNames"] == ["t"]
    # EXPONENTIAL_BACKOFF: 1 s then 2 s, and the third attempt completes the workflow
    assert expo_wf["status"] == "COMPLETED"
    assert [t["retryCount"] for t in expo_wf["tasks"]] == [0, 1, 2]
    assert [t.get("retriedTaskId") for t in expo_wf["tasks"]][1:] == [
        t["taskId"] for t in expo_tries[:-1]
    ]
    assert [t["status"] for t in expo_wf["tasks"]] == ["FAILED", "FAILED", "COMPLETED"]
    assert expo_wf["failedReferenceTaskNames"] == ["t"]  # as Conductor: a failed attempt counts


async def test_task_timeout_with_retry_and_time_out_wf_policies(stack: Stack) -> None:
    name = uniq("tmo")
    retry_t, fail_t, on_fail = f"{name}_retry", f"{name}_wf", uniq("tmo_failure")
    await task_def(
        stack,
        retry_t,
        timeoutSeconds=2,
        responseTimeoutSeconds=2,
        timeoutPolicy="RETRY",
        retryCount=1,
        retryDelaySeconds=0,
    )
    await task_def(
        stack,
        fail_t,
        timeoutSeconds=1,
        responseTimeoutSeconds=1,
        timeoutPolicy="TIME_OUT_WF",
        retryCount=1,
        retryDelaySeconds=0,
    )
    await stack.store.metadata.update_workflow_def(wf_def(on_fail, sys_task("n", "NOOP")))
    retry_wf = await start(stack, wf_def(f"{retry_t}_wf", simple("t", retry_t)))
    fail_wf = await start(
        stack, wf_def(f"{fail_t}_wf", simple("t", fail_t), failureWorkflow=on_fail), {"k": 1}
    )
    (first,) = await claim(stack, retry_t)
    (doomed,) = await claim(stack, fail_t)

    # RETRY: the sweeper times the attempt out and a new one is scheduled
    wf = await until(stack, retry_wf, lambda w: len(w["tasks"]) == 2)
    old, new = wf["tasks"]
    assert wf["status"] == "RUNNING" and old["status"] == "TIMED_OUT"
    assert old["reasonForIncompletion"].startswith("Task timed out after ")
    assert old["reasonForIncompletion"].endswith(
        "Timeout configured as 2 seconds. Timeout policy configured to RETRY"
    )
    assert new["status"] == "SCHEDULED" and new["retriedTaskId"] == first["taskId"]
    (second,) = await claim(stack, retry_t)
    assert second["taskId"] == new["taskId"] and second["retryCount"] == 1
    await update(stack, second, "COMPLETED")
    assert (await ended(stack, retry_wf))["status"] == "COMPLETED"

    # TIME_OUT_WF: the workflow times out (retries left or not) and its failureWorkflow starts
    wf = await ended(stack, fail_wf)
    assert wf["status"] == "TIMED_OUT" and summary(wf) == [("t", "TIMED_OUT")]
    reason = task(wf, "t")["reasonForIncompletion"]
    assert (
        reason.endswith("Timeout configured as 1 seconds. Timeout policy configured to TIME_OUT_WF")
        and wf["reasonForIncompletion"] == reason
    )
    assert task(wf, "t")["taskId"] == doomed["taskId"]
    # the queue effects of a decision the sweeper made follow its commit
    await eventually(
        lambda: absent(stack, DECIDER_QUEUE, fail_wf),
        timeout_s=10,
        what="the timed-out workflow's timer removed",
    )
    failure = await ended(stack, wf["output"]["conductor.failure_workflow"])
    assert failure["workflowName"] == on_fail and failure["status"] == "COMPLETED"
    assert failure["input"]["failureStatus"] == "TIMED_OUT"
    assert failure["input"]["workflowId"] == fail_wf and failure["input"]["k"] == 1


async def test_poll_timeout_times_out_a_task_nobody_polls(stack: Stack) -> None:
    name = uniq("ptmo")
    task_type = f"{name}_t"
    await task_def(
        stack, task_type, pollTimeoutSeconds=1, timeoutPolicy="TIME_OUT_WF", retryCount=0
    )
    wf_id = await start(stack, wf_def(name, simple("t", task_type)))
    queued = task(await stack.workflow(wf_id), "t")
    assert await stack.queues.contains(task_type, queued["taskId"])
    wf = await ended(stack, wf_id)
    assert wf["status"] == "TIMED_OUT"
    t = task(wf, "t")
    assert t["status"] == "TIMED_OUT" and t["pollCount"] == 0
    assert t["reasonForIncompletion"].startswith("Task poll timed out after ")
    assert t["reasonForIncompletion"].endswith(
        "Poll timeout configured as 1 seconds. Timeout policy configured to TIME_OUT_WF"
    )
    # the queue effects of a decision the sweeper made follow its commit
    await eventually(
        lambda: absent(stack, task_type, t["taskId"]),
        timeout_s=10,
        what="the task's message removed",
    )
    assert await poll(stack, task_type) == []


async def test_failed_optional_tasks_complete_with_errors_and_the_workflow_goes_on(
    stack: Stack,
) -> None:
    name = uniq("opt")
    opt_t, plain_t, last_t = f"{name}_opt", f"{name}_plain", f"{name}_last"
    await task_def(stack, opt_t, retryCount=0)
    definition = wf_def(
        name,
        simple("opt", opt_t, optional=True),
        fork("f", [simple("opt2", opt_t, optional=True)], [simple("p", plain_t)]),
        join("j", ["opt2", "p"]),
        simple("last", last_t),
    )
    wf_id = await start(stack, definition)
    (o1,) = await claim(stack, opt_t)
    await update(stack, o1, "FAILED", reason="optional broke")
    wf = await until(stack, wf_id, lambda w: any(t["referenceTaskName"] == "p" for t in w["tasks"]))
    assert wf["status"] == "RUNNING"
    assert task(wf, "opt")["status"] == "COMPLETED_WITH_ERRORS"
    assert sum(t["referenceTaskName"] == "opt" for t in wf["tasks"]) == 1  # not retried
    (o2,) = await claim(stack, opt_t)
    assert o2["referenceTaskName"] == "opt2"
    await update(stack, o2, "FAILED", reason="also broke")
    (p,) = await claim(stack, plain_t)
    await update(stack, p, "COMPLETED", {"p": 1})
    wf = await until(stack, wf_id, lambda w: task(w, "j")["status"] != "IN_PROGRESS")
    j = task(wf, "j")
    assert task(wf, "opt2")["status"] == "COMPLETED_WITH_ERRORS"
    assert j["status"] == "COMPLETED_WITH_ERRORS"
    assert j["reasonForIncompletion"] == f"{opt_t}/{o2['taskId']} completed with errors"
    (last,) = await claim(stack, last_t)
    await update(stack, last, "COMPLETED")
    wf = await ended(stack, wf_id)
    assert wf["status"] == "COMPLETED" and wf["failedReferenceTaskNames"] == []


async def test_failure_workflow_gets_conductors_input_and_terminate_starts_none(
    stack: Stack,
) -> None:
    name, on_fail = uniq("failing"), uniq("on_fail")
    task_type = f"{name}_t"
    await task_def(stack, task_type, retryCount=0)
    await stack.store.metadata.update_workflow_def(wf_def(on_fail, sys_task("n", "NOOP")))
    definition = wf_def(name, simple("t", task_type), failureWorkflow=on_fail)
    wf_id = await start(stack, definition, {"k": 1}, correlationId="corr-f")
    (t,) = await claim(stack, task_type)
    await update(stack, t, "FAILED", reason="kaput")
    wf = await ended(stack, wf_id)
    assert wf["status"] == "FAILED"
    reason = f"Task {t['taskId']} failed with status: FAILED and reason: 'kaput'"
    assert wf["reasonForIncompletion"] == reason
    failure_id = wf["output"]["conductor.failure_workflow"]
    failure = await ended(stack, failure_id)
    assert failure["workflowName"] == on_fail and failure["status"] == "COMPLETED"
    assert failure["correlationId"] == "corr-f"
    inp = failure["input"]
    assert inp["k"] == 1 and inp["workflowId"] == wf_id and inp["reason"] == reason
    assert inp["failureStatus"] == "FAILED" and inp["failureTaskId"] == t["taskId"]
    failed = inp["failedWorkflow"]
    assert failed["workflowId"] == wf_id and failed["status"] == "FAILED"
    assert [x["referenceTaskName"] for x in failed["tasks"]] == ["t"]

    # A terminate ends the workflow without its failureWorkflow.
    other = await start(stack, definition, {"k": 2})
    answer = await call(stack, "terminate", workflowId=other, reason="manual")
    assert answer["status"] == "TERMINATED"
    wf = await stack.workflow(other)
    assert wf["status"] == "TERMINATED" and wf["reasonForIncompletion"] == "manual"
    assert "conductor.failure_workflow" not in (wf.get("output") or {})
    assert task(wf, "t")["status"] == "CANCELED"
    assert await poll(stack, task_type) == []


# --- operations ----------------------------------------------------------------------------


async def test_skip_task_skips_a_task_not_yet_scheduled(stack: Stack) -> None:
    name = uniq("skip")
    ta, tb, tc = f"{name}_a", f"{name}_b", f"{name}_c"
    wf_id = await start(stack, wf_def(name, simple("a", ta), simple("b", tb), simple("c", tc)))
    await call(stack, "skip_task", workflowId=wf_id, ref="b", taskOutput={"skipped": True})
    wf = await stack.workflow(wf_id)
    assert task(wf, "b")["status"] == "SKIPPED" and task(wf, "b")["outputData"] == {"skipped": True}
    (a,) = await claim(stack, ta)
    await update(stack, a, "COMPLETED")
    (c,) = await claim(stack, tc)
    assert await poll(stack, tb) == []
    await update(stack, c, "COMPLETED")
    wf = await ended(stack, wf_id)
    assert wf["status"] == "COMPLETED"
    assert sorted(summary(wf)) == [("a", "COMPLETED"), ("b", "SKIPPED"), ("c", "COMPLETED")]


async def test_set_variables_are_kept_and_bound_into_later_tasks(stack: Stack) -> None:
    name = uniq("vars")
    ta, tb = f"{name}_a", f"{name}_b"
    definition = wf_def(
        name,
        simple("a", ta),
        simple("b", tb, inputParameters={"v": "${workflow.variables.k}"}),
        variables={"keep": 1},
    )
    wf_id = await start(stack, definition)
    await call(stack, "set_variables", workflowId=wf_id, variables={"k": [1, 2]})
    assert (await stack.workflow(wf_id))["variables"] == {"keep": 1, "k": [1, 2]}
    with pytest.raises(LimitExceeded):
        await call(stack, "set_variables", workflowId=wf_id, variables={"big": "x" * 300_000})
    assert (await stack.workflow(wf_id))["variables"] == {"keep": 1, "k": [1, 2]}
    (a,) = await claim(stack, ta)
    await update(stack, a, "COMPLETED")
    (b,) = await claim(stack, tb)
    assert b["inputData"] == {"v": [1, 2]}
    await update(stack, b, "COMPLETED")
    assert (await ended(stack, wf_id))["status"] == "COMPLETED"


async def test_rerun_from_a_task_drops_the_later_tasks(stack: Stack) -> None:
    name = uniq("rerun")
    ta, tb, tc = f"{name}_a", f"{name}_b", f"{name}_c"
    await task_def(stack, tb, retryCount=0)
    wf_id = await start(
        stack, wf_def(name, simple("a", ta), simple("b", tb), simple("c", tc)), {"n": 1}
    )
    (a,) = await claim(stack, ta)
    await update(stack, a, "COMPLETED", {"x": 1})
    (b,) = await claim(stack, tb)
    await update(stack, b, "FAILED", reason="nope")
    assert (await ended(stack, wf_id))["status"] == "FAILED"

    request = {
        "reRunFromTaskId": a["taskId"],
        "taskInput": {"fresh": True},
        "workflowInput": {"n": 2},
    }
    answer = await call(stack, "rerun", workflowId=wf_id, request=request)
    assert answer["status"] == "RUNNING"
    wf = await stack.workflow(wf_id)
    assert wf["input"] == {"n": 2} and not wf.get("reasonForIncompletion")
    assert summary(wf) == [("a", "SCHEDULED")]
    assert task(wf, "a")["taskId"] == a["taskId"] and task(wf, "a")["inputData"] == {"fresh": True}
    assert await gone(stack, b["taskId"])
    assert await stack.queues.contains(DECIDER_QUEUE, wf_id)
    (again,) = await claim(stack, ta)
    assert again["taskId"] == a["taskId"]
    await update(stack, again, "COMPLETED")
    for task_type in (tb, tc):
        (t,) = await claim(stack, task_type)
        await update(stack, t, "COMPLETED")
    wf = await ended(stack, wf_id)
    assert wf["status"] == "COMPLETED" and [r for r, _ in summary(wf)] == ["a", "b", "c"]


async def test_restart_with_and_without_the_latest_definition(stack: Stack) -> None:
    name = uniq("restart")
    ta, tz = f"{name}_a", f"{name}_z"
    v1 = wf_def(name, simple("a", ta))
    latest_id = await start(stack, v1)
    kept_id = await start(stack, v1)
    for wf_id in (latest_id, kept_id):
        await call(stack, "terminate", workflowId=wf_id, reason="stop")
    old_a = task(await stack.workflow(latest_id), "a")["taskId"]
    await stack.store.metadata.update_workflow_def(wf_def(name, simple("z", tz), version=2))

    await call(stack, "restart", workflowId=latest_id, useLatestDefinitions=True)
    wf = await stack.workflow(latest_id)
    assert wf["status"] == "RUNNING" and wf["workflowVersion"] == 2
    assert wf["workflowDefinition"]["version"] == 2 and summary(wf) == [("z", "SCHEDULED")]
    assert await gone(stack, old_a)
    await call(stack, "restart", workflowId=kept_id, useLatestDefinitions=False)
    wf = await stack.workflow(kept_id)
    assert wf["workflowVersion"] == 1 and summary(wf) == [("a", "SCHEDULED")]

    (z,) = await claim(stack, tz)
    assert z["workflowInstanceId"] == latest_id
    await update(stack, z, "COMPLETED")
    (a,) = await claim(stack, ta)
    assert a["workflowInstanceId"] == kept_id
    await update(stack, a, "COMPLETED")
    assert (await ended(stack, latest_id))["status"] == "COMPLETED"
    assert (await ended(stack, kept_id))["status"] == "COMPLETED"


async def test_pause_resume_and_retry(stack: Stack) -> None:
    name = uniq("pause")
    ta, tb = f"{name}_a", f"{name}_b"
    await task_def(stack, tb, retryCount=0)
    wf_id = await start(stack, wf_def(name, simple("a", ta), simple("b", tb)))
    (a,) = await claim(stack, ta)
    assert (await call(stack, "pause", workflowId=wf_id))["status"] == "PAUSED"
    assert not await stack.queues.contains(DECIDER_QUEUE, wf_id)  # no timer while paused
    await update(stack, a, "COMPLETED")  # a worker may still finish its task
    wf = await stack.workflow(wf_id)
    assert wf["status"] == "PAUSED" and summary(wf) == [("a", "COMPLETED")]
    assert await poll(stack, tb) == []
    assert (await call(stack, "resume", workflowId=wf_id))["status"] == "RUNNING"
    assert await stack.queues.contains(DECIDER_QUEUE, wf_id)
    (b,) = await claim(stack, tb)
    await update(stack, b, "FAILED", reason="bad")
    assert (await ended(stack, wf_id))["status"] == "FAILED"

    assert (await call(stack, "retry", workflowId=wf_id))["status"] == "RUNNING"
    wf = await stack.workflow(wf_id)
    assert wf["lastRetriedTime"] > 0
    retried = task(wf, "b")
    assert retried["status"] == "SCHEDULED" and retried["retriedTaskId"] == b["taskId"]
    assert retried["retryCount"] == 1
    (b2,) = await claim(stack, tb)
    assert b2["taskId"] == retried["taskId"]
    await update(stack, b2, "COMPLETED")
    wf = await ended(stack, wf_id)
    assert wf["status"] == "COMPLETED" and wf["failedReferenceTaskNames"] == ["b"]


async def test_update_task_by_ref_merges_output_and_drops_the_queued_message(
    stack: Stack,
) -> None:
    name = uniq("byref")
    ta, tb = f"{name}_a", f"{name}_b"
    wf_id = await start(stack, wf_def(name, simple("a", ta), simple("b", tb)))
    (a,) = await claim(stack, ta)
    # The worker reports progress and asks to be called back later: the task is queued again.
    result = {
        "workflowInstanceId": wf_id,
        "taskId": a["taskId"],
        "status": "IN_PROGRESS",
        "outputData": {"p": 1},
        "callbackAfterSeconds": 60,
    }
    await call(stack, "update_task", result=result)
    assert await stack.queues.contains(ta, a["taskId"])
    answer = await call(
        stack,
        "update_task_by_ref",
        workflowId=wf_id,
        ref="a",
        status="COMPLETED",
        output={"q": 2},
        workerId="ops",
    )
    assert answer["accepted"]
    wf = await stack.workflow(wf_id)
    assert task(wf, "a")["status"] == "COMPLETED"
    assert task(wf, "a")["outputData"] == {"p": 1, "q": 2}
    assert not await stack.queues.contains(ta, a["taskId"])
    b = task(wf, "b")
    assert b["status"] == "SCHEDULED" and await stack.queues.contains(tb, b["taskId"])
    # by ref, a task still waiting in its queue
    await call(
        stack,
        "update_task_by_ref",
        workflowId=wf_id,
        ref="b",
        status="COMPLETED",
        output={"done": True},
    )
    assert not await stack.queues.contains(tb, b["taskId"])
    wf = await ended(stack, wf_id)
    assert wf["status"] == "COMPLETED" and task(wf, "b")["outputData"] == {"done": True}
    unknown = await call(
        stack, "update_task_by_ref", workflowId=wf_id, ref="nope", status="COMPLETED", output={}
    )
    assert not unknown["accepted"]


async def test_remove_deletes_the_workflow_its_messages_and_its_timer(stack: Stack) -> None:
    name = uniq("remove")
    tx, ty = f"{name}_x", f"{name}_y"
    wf_id = await start(
        stack, wf_def(name, fork("f", [simple("x", tx)], [simple("y", ty)]), join("j", ["x", "y"]))
    )
    wf = await stack.workflow(wf_id)
    ids = {ref: task(wf, ref)["taskId"] for ref in ("f", "x", "y", "j")}
    assert await stack.queues.contains(tx, ids["x"]) and await stack.queues.contains(ty, ids["y"])
    assert await stack.queues.contains(DECIDER_QUEUE, wf_id)
    assert await call(stack, "remove", workflowId=wf_id) == {"workflowId": wf_id}
    with pytest.raises(NotFound):
        await stack.workflow(wf_id)
    for task_id in ids.values():
        assert await gone(stack, task_id)
    assert not await stack.queues.contains(tx, ids["x"])
    assert not await stack.queues.contains(ty, ids["y"])
    assert not await stack.queues.contains(DECIDER_QUEUE, wf_id)
    assert await poll(stack, tx) == [] and await poll(stack, ty) == []
    with pytest.raises(NotFound):
        await call(stack, "remove", workflowId=wf_id)
