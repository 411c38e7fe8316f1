"""Task queue names, in one place (Conductor's ``QueueUtils.getQueueName``).

The decider pushes a task to the queue its name gives, the gateway pops a worker's queue by it,
and the sweeper finds the queues of HTTP tasks with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: The task type of HTTP tasks, which the sweeper runs.
HTTP = "HTTP"

#: The workflows' timers: one entry per running workflow, its id the workflow id, due when the
#: workflow must be decided again. The decider sets them, the sweeper pops them.
DECIDER_QUEUE = "_deciderQueue"


def task_queue(
    task_type: str,
    domain: str | None = None,
    namespace: str | None = None,
    isolation_group: str | None = None,
) -> str:
    """``[domain:]taskType[@executionNameSpace][-isolationGroupId]``."""
    name = f"{domain}:{task_type}" if domain else task_type
    if namespace:
        name = f"{name}@{namespace}"
    if isolation_group:
        name = f"{name}-{isolation_group}"
    return name


def http_queues(task_defs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every queue an HTTP task may be in: ``HTTP``, and one per execution namespace and
    isolation group that a TaskDef sets (Conductor's ``IsolatedTaskQueueProducer``).

    System tasks never take a domain (Conductor's ``setTaskDomains`` skips them), so these
    names never carry one.
    """
    names = {HTTP}
    for task_def in task_defs:
        namespace = task_def.get("executionNameSpace") or None
        group = task_def.get("isolationGroupId") or None
        if namespace or group:
            names.add(task_queue(HTTP, None, _text(namespace), _text(group)))
    return sorted(names)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
