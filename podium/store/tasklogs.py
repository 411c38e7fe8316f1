"""Checks on task execution logs (Conductor's TaskExecLog: log, taskId, createdTime)."""

from __future__ import annotations

from collections.abc import Sequence

from podium.errors import InvalidArgument
from podium.store.model import Record


def check_logs(task_id: str, logs: Sequence[Record], now_ms: int) -> list[Record]:
    """Checked copies of ``logs`` with ``taskId`` and ``createdTime`` filled in."""
    out = []
    for entry in logs:
        if not isinstance(entry, dict) or not isinstance(entry.get("log"), str):
            raise InvalidArgument("a task log must be an object with a string 'log'", field="log")
        if entry.get("taskId", task_id) != task_id:
            raise InvalidArgument(
                f"log for task {entry.get('taskId')!r} added to task {task_id!r}", field="taskId"
            )
        created = entry.get("createdTime", now_ms)
        if not isinstance(created, int) or isinstance(created, bool) or created < 0:
            raise InvalidArgument("a task log's createdTime must be epoch ms", field="createdTime")
        out.append({"log": entry["log"], "taskId": task_id, "createdTime": created})
    return out
