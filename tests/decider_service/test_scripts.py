"""Scripts in the decider service: off the event loop, under time and memory limits.

A slow INLINE script or jq program runs beside a stream of starts of another workflow on the
same decider replica (which shares the test's event loop); none of those starts may wait for
it. jq runs in worker processes: one past its time or memory limit is killed, the task fails
with a clear reason, and the next jq task runs in a fresh process.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from decider.server import DeciderSettings
from podium.errors import ConfigError
from podium.launch.redis import RedisServer
from podium.types import JSON
from tests.stack import Stack, running_stack

#: A start that does not wait for the slow script takes milliseconds; one that waits for it
#: takes seconds. The margin is for a loaded machine.
UNBLOCKED_S = 1.5

EXPONENTIAL_JQ = "def f(n): if n == 0 then 1 else (f(n-1) + f(n-1)) end; f(19)"


@pytest.fixture
async def stack(redis_server: RedisServer) -> AsyncIterator[Stack]:
    async with running_stack(redis_server, "podium:scripts:") as s:
        yield s


def one_task(name: str, task: JSON) -> JSON:
    return {"name": name, "version": 1, "schemaVersion": 2, "tasks": [task]}


def inline(expression: str) -> JSON:
    return {
        "name": "inline",
        "taskReferenceName": "script",
        "type": "INLINE",
        "inputParameters": {"evaluatorType": "javascript", "expression": expression},
    }


def jq(query: str) -> JSON:
    return {
        "name": "jq",
        "taskReferenceName": "script",
        "type": "JSON_JQ_TRANSFORM",
        "inputParameters": {"queryExpression": query, "n": 2},
    }


def fresh(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def starts_beside(stack: Stack, slow: JSON) -> tuple[str, list[float]]:
    """Start ``slow``; until that start returns, keep starting a simple workflow and time each
    of those starts. Returns the slow workflow's id and the other starts' durations."""
    fast = one_task(fresh("fast"), {"name": fresh("work"), "taskReferenceName": "w"})
    await stack.store.metadata.update_workflow_def(fast)
    await stack.start(fast)  # the first start of a definition reads it into caches
    slow_start = asyncio.create_task(stack.start(slow))
    durations: list[float] = []
    while not slow_start.done():
        began = time.monotonic()
        await stack.start(fast)
        durations.append(time.monotonic() - began)
    return await slow_start, durations


async def test_a_slow_inline_script_does_not_hold_up_other_starts(stack: Stack) -> None:
    busy_3s = "var t = Date.now(); while (Date.now() - t < 3000) {} 'done'"
    began = time.monotonic()
    wf_id, durations = await starts_beside(stack, one_task(fresh("slow_js"), inline(busy_3s)))
    assert time.monotonic() - began >= 3.0  # the script did run for its 3 s
    assert len(durations) >= 3, durations
    assert max(durations) < UNBLOCKED_S, durations
    wf = await stack.workflow(wf_id)
    assert wf["status"] == "COMPLETED"
    assert wf["tasks"][0]["outputData"] == {"result": "done"}


async def test_a_jq_program_past_its_time_limit_fails_without_holding_up_other_starts(
    stack: Stack,
) -> None:
    wf_id, durations = await starts_beside(stack, one_task(fresh("slow_jq"), jq(EXPONENTIAL_JQ)))
    assert len(durations) >= 3, durations
    assert max(durations) < UNBLOCKED_S, durations
    wf = await stack.workflow(wf_id)
    assert wf["status"] == "FAILED"
    (task,) = wf["tasks"]
    assert task["status"] == "FAILED"
    assert task["reasonForIncompletion"] == "jq expression exceeded its 4 s time limit"
    # the process that overran was replaced: the next program runs
    ok = await stack.start(one_task(fresh("jq_ok"), jq(".n * 21")))
    done = await stack.workflow(ok)
    assert done["status"] == "COMPLETED"
    assert done["tasks"][0]["outputData"] == {"result": 42, "resultList": [42]}


async def test_a_jq_program_past_its_memory_limit_fails(stack: Stack) -> None:
    # One 200 MB string: past 64 MiB at once, however slow the machine (a growing array
    # could meet the time limit first on a loaded one).
    wf_id = await stack.start(one_task(fresh("big_jq"), jq('("x" * 200000000) | length')))
    wf = await stack.workflow(wf_id)
    assert wf["status"] == "FAILED"
    (task,) = wf["tasks"]
    assert task["status"] == "FAILED"
    assert task["reasonForIncompletion"] == "jq expression exceeded its 64 MiB memory limit"
    ok = await stack.start(one_task(fresh("jq_ok"), jq("[range(1000)] | length")))
    assert (await stack.workflow(ok))["tasks"][0]["outputData"]["result"] == 1000


def test_script_limits_and_pools_come_from_the_settings() -> None:
    settings = DeciderSettings.from_env(
        {
            "PODIUM_DECIDER_SCRIPT_TIMEOUT_S": "2",
            "PODIUM_DECIDER_SCRIPT_MAX_MEMORY_MB": "128",
            "PODIUM_DECIDER_SCRIPT_THREADS": "8",
            "PODIUM_DECIDER_JQ_PROCESSES": "3",
        }
    )
    assert settings.config.script_timeout_s == 2
    assert settings.config.script_max_memory_bytes == 128 * 1024 * 1024
    assert (settings.script_threads, settings.jq_processes) == (8, 3)
    default = DeciderSettings.from_env({})
    assert default.config.script_timeout_s == 4
    assert default.config.script_max_memory_bytes == 64 * 1024 * 1024
    with pytest.raises(ConfigError, match="PODIUM_DECIDER_JQ_PROCESSES"):
        DeciderSettings.from_env({"PODIUM_DECIDER_JQ_PROCESSES": "0"})


async def test_jq_programs_do_not_see_the_deciders_environment(stack: Stack) -> None:
    wf_id = await stack.start(one_task(fresh("jq_env"), jq("{path: env.PATH, home: $ENV.HOME}")))
    wf = await stack.workflow(wf_id)
    assert wf["status"] == "COMPLETED"
    assert wf["tasks"][0]["outputData"]["result"] == {"path": None, "home": None}
