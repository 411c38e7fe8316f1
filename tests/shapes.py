"""Workflow definitions that several tests use."""

from __future__ import annotations

from typing import Any

from podium.types import JSON


def fork_join(name: str, task_type: str, branches: int, *after: dict[str, Any]) -> JSON:
    """``name``: a FORK_JOIN of ``branches`` SIMPLE tasks of ``task_type`` (references b0,
    b1, ...), a JOIN on all of them, then the tasks ``after``."""
    refs = [f"b{i}" for i in range(branches)]
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": "fork",
                "taskReferenceName": "fork",
                "type": "FORK_JOIN",
                "forkTasks": [
                    [{"name": task_type, "taskReferenceName": ref, "type": "SIMPLE"}]
                    for ref in refs
                ],
            },
            {"name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": refs},
            *after,
        ],
    }
