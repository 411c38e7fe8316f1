"""TEXT_STATS: counts in a text, as a custom Podium system task.

Input: ``text`` (a string). Output: ``characters``, ``words``, ``lines``, ``distinctWords``,
``longestWord`` and ``attempt`` (the task's retry count).

Two inputs show how failures are handled: ``failUntilAttempt: n`` fails each attempt before
the n-th retry (a failure the TaskDef's ``retryCount`` retries), and ``failTerminally: true``
fails the task for good (its workflow fails, whatever the retries). A missing or non-string
``text`` is a terminal failure too: a retry would not change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podium.plugins import Completed, Failed, Result, TaskContext


class TextStats:
    """Counts characters, words and lines of ``text``."""

    task_type = "TEXT_STATS"

    async def execute(self, task_input: dict[str, Any], context: TaskContext) -> Result:
        if task_input.get("failTerminally") is True:
            return Failed("asked to fail terminally", terminal=True)
        fail_until = task_input.get("failUntilAttempt") or 0
        if isinstance(fail_until, int) and context.retry_count < fail_until:
            context.log.info("attempt %d fails on purpose", context.retry_count)
            return Failed(
                f"asked to fail until attempt {fail_until}; this is attempt {context.retry_count}",
                output={"attempt": context.retry_count},
            )
        text = task_input.get("text")
        if not isinstance(text, str):
            return Failed("input 'text' must be a string", terminal=True)
        words = text.split()
        return Completed(
            {
                "characters": len(text),
                "words": len(words),
                "lines": len(text.splitlines()),
                "distinctWords": len({w.lower() for w in words}),
                "longestWord": max(words, key=len) if words else "",
                "attempt": context.retry_count,
            }
        )

    def validate_input(self, input_parameters: Mapping[str, Any]) -> list[str]:
        """Checked when a definition is registered: ``text`` must be given, and
        ``failUntilAttempt``, when given as a number, must not be negative."""
        problems = []
        if "text" not in input_parameters:
            problems.append("TEXT_STATS needs the input parameter 'text'")
        fail_until = input_parameters.get("failUntilAttempt")
        if isinstance(fail_until, int) and fail_until < 0:
            problems.append("failUntilAttempt must be >= 0")
        return problems


#: The object the entry point names.
TEXT_STATS = TextStats()
