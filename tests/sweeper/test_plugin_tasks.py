"""Plugin system tasks run by real sweepers against the in-process stack.

Each test gives its sweeper plugins of a fresh type name, so that no other test's tasks meet
them: what the sweeper reports when a plugin asks to be called again, overruns its deadline,
raises or returns something else than a result, how it finds a type's queue in a domain, and
how many it runs at once, and the spans of an execution.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from podium.plugins import Completed, Failed, InProgress, Result, TaskContext
from podium.telemetry import Telemetry
from podium.types import JSON
from sweeper.plugin_tasks import plugin_queues, task_result
from sweeper.server import Sweeper
from tests.polling import eventually
from tests.stack import Stack

from .conftest import SweeperFactory

Body = Callable[[dict[str, Any], TaskContext], Awaitable[Any]]


class Plugin:
    """A plugin whose execution is the test's ``body``."""

    def __init__(self, task_type: str, body: Body) -> None:
        self.task_type = task_type
        self.body = body

    async def execute(self, task_input: dict[str, Any], context: TaskContext) -> Any:
        return await self.body(task_input, context)


@pytest.fixture
def task_type() -> str:
    return f"SAMPLE_{uuid.uuid4().hex[:8].upper()}"


def workflow(name: str, task_type: str) -> JSON:
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": f"{name}_task",
                "taskReferenceName": "it",
                "type": task_type,
                "inputParameters": {"n": "${workflow.input.n}"},
            }
        ],
    }


async def task_def(stack: Stack, name: str, retries: int, response_timeout_s: int = 30) -> None:
    await stack.store.metadata.create_task_def(
        {
            "name": f"{name}_task",
            "retryCount": retries,
            "retryDelaySeconds": 0,
            "responseTimeoutSeconds": response_timeout_s,
            "timeoutSeconds": 0,
        }
    )


async def finished(stack: Stack, wf_id: str) -> JSON:
    return await stack.until(wf_id, lambda w: w["status"] != "RUNNING", timeout_s=20)


def test_the_queues_polled_are_the_types_own_and_those_of_domains_and_task_defs() -> None:
    task_defs = [{"name": "a"}, {"name": "b", "isolationGroupId": "g1"}]
    existing = [
        "blue:STATS",  # a domain
        "STATS-g1",  # an isolation group a TaskDef sets
        "blue:STATS-g1",
        "STATS-other",  # no TaskDef sets this group: a worker task type of that name
        "STATSX",
        "HTTP",
    ]
    assert plugin_queues(["STATS"], task_defs, existing) == [
        "STATS",
        "STATS-g1",
        "blue:STATS",
        "blue:STATS-g1",
    ]
    assert plugin_queues(["STATS", "COUNT"], [], []) == ["COUNT", "STATS"]


def test_results_become_task_results() -> None:
    task = {"workflowInstanceId": "w", "taskId": "t"}
    outcomes: list[tuple[Result, JSON]] = [
        (Completed({"a": 1}), {"status": "COMPLETED", "outputData": {"a": 1}}),
        (
            Failed("no", terminal=True),
            {"status": "FAILED_WITH_TERMINAL_ERROR", "reasonForIncompletion": "no"},
        ),
        (InProgress(7), {"status": "IN_PROGRESS", "callbackAfterSeconds": 7}),
    ]
    for outcome, expected in outcomes:
        result = task_result(task, outcome, "me")
        assert result["workerId"] == "me" and result["taskId"] == "t"
        assert expected.items() <= result.items()


@pytest.mark.timeout(30)
async def test_in_progress_calls_the_plugin_again_later(
    stack: Stack, make_sweeper: SweeperFactory, name: str, task_type: str
) -> None:
    polls: list[int] = []

    async def body(task_input: dict[str, Any], context: TaskContext) -> Result:
        polls.append(context.poll_count)
        if len(polls) < 3:
            return InProgress(0, {"seen": len(polls)})
        return Completed({"n": task_input["n"], "seen": len(polls)})

    await make_sweeper(plugins={task_type: Plugin(task_type, body)})
    await task_def(stack, name, retries=0)
    wf = await finished(stack, await stack.start(workflow(name, task_type), {"n": 4}))
    assert wf["status"] == "COMPLETED"
    [task] = wf["tasks"]
    assert task["outputData"] == {"n": 4, "seen": 3}
    assert polls == [1, 2, 3]  # one task, handed out three times


@pytest.mark.timeout(30)
async def test_an_execution_past_its_deadline_fails_and_is_retried(
    stack: Stack, make_sweeper: SweeperFactory, name: str, task_type: str
) -> None:
    never = asyncio.Event()

    async def body(task_input: dict[str, Any], context: TaskContext) -> Result:
        if context.retry_count == 0:
            await never.wait()  # cancelled at the deadline
        return Completed({"attempt": context.retry_count})

    # The sweeper's limit ends the execution; the TaskDef's response timeout is far away.
    await make_sweeper(plugins={task_type: Plugin(task_type, body)}, plugin_timeout_s=1)
    await task_def(stack, name, retries=1, response_timeout_s=30)
    wf = await finished(stack, await stack.start(workflow(name, task_type)))
    assert wf["status"] == "COMPLETED"
    first, second = wf["tasks"]
    assert first["status"] == "FAILED"
    assert first["reasonForIncompletion"] == f"{task_type} did not finish within 1 s"
    assert second["status"] == "COMPLETED" and second["outputData"] == {"attempt": 1}


@pytest.mark.timeout(30)
async def test_an_exception_is_a_failure_the_retries_apply_to(
    stack: Stack, make_sweeper: SweeperFactory, name: str, task_type: str
) -> None:
    async def body(task_input: dict[str, Any], context: TaskContext) -> Result:
        raise ValueError(f"bad attempt {context.retry_count}")

    await make_sweeper(plugins={task_type: Plugin(task_type, body)})
    await task_def(stack, name, retries=1)
    wf = await finished(stack, await stack.start(workflow(name, task_type)))
    assert wf["status"] == "FAILED"
    assert [(t["status"], t["reasonForIncompletion"]) for t in wf["tasks"]] == [
        ("FAILED", f"{task_type} raised ValueError: bad attempt 0"),
        ("FAILED", f"{task_type} raised ValueError: bad attempt 1"),
    ]


@pytest.mark.timeout(30)
async def test_something_else_than_a_result_fails_terminally(
    stack: Stack, make_sweeper: SweeperFactory, name: str, task_type: str
) -> None:
    async def body(task_input: dict[str, Any], context: TaskContext) -> Any:
        return ["not", "a", "result"]

    await make_sweeper(plugins={task_type: Plugin(task_type, body)})
    await task_def(stack, name, retries=3)
    wf = await finished(stack, await stack.start(workflow(name, task_type)))
    assert wf["status"] == "FAILED"
    [task] = wf["tasks"]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert task["reasonForIncompletion"] == f"{task_type} returned a list, not a result"


@pytest.mark.timeout(30)
async def test_a_task_in_a_domain_is_found_in_its_queue(
    stack: Stack, make_sweeper: SweeperFactory, name: str, task_type: str
) -> None:
    async def body(task_input: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        return {"done": True}

    await make_sweeper(plugins={task_type: Plugin(task_type, body)}, http_queues_refresh_s=0.2)
    await task_def(stack, name, retries=0)
    definition = workflow(name, task_type)
    await stack.store.metadata.update_workflow_def(definition)
    answer = await stack.rpc.call(
        "decider.start_workflow",
        {"request": {"name": name, "version": 1, "taskToDomain": {"*": "blue"}}},
    )
    wf = await finished(stack, str(answer["workflowId"]))
    assert wf["status"] == "COMPLETED"
    [task] = wf["tasks"]
    assert task["domain"] == "blue" and task["outputData"] == {"done": True}


@pytest.mark.timeout(30)
async def test_no_more_tasks_run_at_once_than_the_concurrency_cap(
    stack: Stack, make_sweeper: SweeperFactory, name: str, task_type: str
) -> None:
    running, peak = 0, 0
    release = asyncio.Event()

    async def body(task_input: dict[str, Any], context: TaskContext) -> Result:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return Completed({})

    await task_def(stack, name, retries=0)
    # All four are waiting in the queue before the sweeper starts: it could take them at once.
    ids = [await stack.start(workflow(name, task_type)) for _ in range(4)]
    await make_sweeper(plugins={task_type: Plugin(task_type, body)}, plugin_concurrency=2)

    async def two_running() -> bool:
        return running == 2

    await eventually(two_running, timeout_s=10, what="two executions running")
    release.set()
    for wf_id in ids:
        assert (await finished(stack, wf_id))["status"] == "COMPLETED"
    assert peak == 2


@pytest.mark.timeout(30)
async def test_each_execution_is_a_span_and_the_plugins_own_spans_are_its_children(
    stack: Stack, name: str, task_type: str
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))

    async def body(task_input: dict[str, Any], context: TaskContext) -> Result:
        with context.tracer.start_as_current_span("count words"):
            return Completed({})

    settings = stack.sweeper_settings(plugins={task_type: Plugin(task_type, body)})
    sweeper = await Sweeper(settings, telemetry=Telemetry(provider, "podium-sweeper")).start()
    try:
        await task_def(stack, name, retries=0)
        wf = await finished(stack, await stack.start(workflow(name, task_type)))
    finally:
        await sweeper.stop(grace_s=2.0)
        provider.shutdown()
    assert wf["status"] == "COMPLETED"
    finished_spans = spans.get_finished_spans()
    [process] = [s for s in finished_spans if s.name == f"process {task_type}"]
    [own] = [s for s in finished_spans if s.name == "count words"]
    assert process.kind == SpanKind.CONSUMER
    assert (process.attributes or {})["conductor.task.id"] == wf["tasks"][0]["taskId"]
    assert own.parent is not None and own.parent.span_id == process.context.span_id
