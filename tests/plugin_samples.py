"""Objects that entry points in tests/test_plugins.py name: plugins that break the rules."""

from __future__ import annotations

from typing import Any

from podium.plugins import Completed, TaskContext


class Named:
    """A well-formed plugin of any type name."""

    def __init__(self, task_type: str) -> None:
        self.task_type = task_type

    async def execute(self, task_input: dict[str, Any], context: TaskContext) -> Completed:
        return Completed({"type": self.task_type})


class WithoutExecute:
    task_type = "NO_EXECUTE"


class SyncExecute:
    task_type = "SYNC_EXECUTE"

    def execute(self, task_input: dict[str, Any], context: TaskContext) -> Completed:
        return Completed({})


#: takes the name of a built-in type
CLASHES_WITH_HTTP = Named("HTTP")
#: a type name that is not upper-case
LOWER_CASE = Named("text_stats")
NO_EXECUTE = WithoutExecute()
SYNC_EXECUTE = SyncExecute()
SHOUT = Named("SHOUT")
