"""The decider service's script threads and jq processes.

Decisions that evaluate scripts (INLINE, LAMBDA, JavaScript SWITCH and DO_WHILE conditions,
JSON_JQ_TRANSFORM) run whole on one of a few threads, so a slow script never holds up the
event loop, and with it every other workflow on the replica. JavaScript runs in V8 on that
thread, with V8's own time and heap limits; jq runs in a :class:`~decider.jq_pool.JqPool`
process, killed and replaced when it overruns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

from decider.jq_pool import JqPool
from decider.scripting import Scripts, normalize_jq_results

T = TypeVar("T")


class ScriptHost(Scripts):
    """Created, used and closed by the decider service (no I/O until first used).

    As the ``Context.scripts`` of an operation running on one of its threads, it evaluates
    JavaScript in that thread and jq in its processes.
    """

    def __init__(self, *, threads: int = 4, jq_processes: int = 2) -> None:
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="podium-scripts"
        )
        self._jq = JqPool(jq_processes)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a script thread, the event loop free meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    def run_jq(
        self, program: str, value: Any, *, timeout_s: float, max_memory_bytes: int
    ) -> list[Any]:
        results = self._jq.run(
            program, value, timeout_s=timeout_s, max_memory_bytes=max_memory_bytes
        )
        return normalize_jq_results(results)

    def close(self) -> None:
        """Stop the jq processes and let the threads end (a running script ends at its limit)."""
        self._jq.close()
        self._threads.shutdown(wait=False, cancel_futures=True)
