"""Custom system tasks as plugins: the contract a plugin implements, and how it is loaded.

A plugin is a separate Python package that declares an entry point in the group
``podium.system_tasks``::

    [project.entry-points."podium.system_tasks"]
    text_stats = "podium_plugin_example:TEXT_STATS"

The object named there provides :class:`SystemTask`: a ``task_type`` (upper-case, as
Conductor's ``HTTP``), an ``async def execute(task_input, context)`` returning a
:class:`Completed`, :class:`Failed` or :class:`InProgress` (a plain dict means completed with
that output), and optionally ``validate_input(input_parameters)`` returning problems found in a
definition.

Where a plugin runs: the sweeper pops the queues of the plugin task types it has loaded, runs
them as it runs HTTP tasks, and reports each result to the decider. The decider needs no
plugin: a type it does not know is, by Conductor's rule, a user-defined task (it needs a
TaskDef named as the task, whose retries and timeouts apply) that waits in the queue its type
names. So only the sweepers must have the plugin installed; a gateway that has it also checks
the plugin's inputs when a definition is registered (docs/plugins.md).

Loading: :func:`installed` loads every entry point of the group once per process. A plugin
that fails to import, lacks the contract, or claims a type that is built in or that another
plugin already claims stops the process with a :class:`PluginError` naming the entry point:
a sweeper silently without a plugin would leave its tasks queued until they time out.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, runtime_checkable

from opentelemetry.trace import Tracer

from podium.definitions.task_types import SYSTEM_TYPES, UNSUPPORTED_TYPES, TaskType
from podium.errors import ConfigError

#: The entry point group plugins register their task types in.
ENTRY_POINT_GROUP = "podium.system_tasks"

#: What a plugin task type may be called: upper-case words, as Conductor's own types, so that
#: a queue name (``[domain:]TYPE[@namespace][-isolationGroup]``) shows its type unambiguously.
TYPE_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")

log = logging.getLogger("podium.plugins")


@dataclass(frozen=True)
class Completed:
    """The task succeeded; ``output`` becomes its ``outputData``."""

    output: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """The task failed: retried as the TaskDef says (``retryCount``, ``retryLogic``), unless
    ``terminal``, which fails it for good (``FAILED_WITH_TERMINAL_ERROR``)."""

    reason: str
    output: Mapping[str, Any] = field(default_factory=dict)
    terminal: bool = False


@dataclass(frozen=True)
class InProgress:
    """Not finished: run ``execute`` again in ``callback_after_seconds`` (a poll of something
    slow, without holding a sweeper slot meanwhile). ``output`` is kept on the task."""

    callback_after_seconds: int
    output: Mapping[str, Any] = field(default_factory=dict)


Result = Completed | Failed | InProgress


@dataclass(frozen=True)
class TaskContext:
    """What an execution knows besides its input."""

    workflow_id: str
    task_id: str
    #: 0 on the first attempt, then 1, 2, ... as the decider retries the task
    retry_count: int
    #: ``time.monotonic()`` by which the execution must be done; it is cancelled then
    deadline: float
    #: a logger named after the task type (``podium.plugins.TEXT_STATS``)
    log: logging.Logger
    #: the sweeper's tracer: spans started with it are children of the task's span
    tracer: Tracer
    #: how many times this attempt was handed out (more than 1 after a sweeper died mid-way)
    poll_count: int = 1

    def remaining_s(self) -> float:
        """Seconds left before the deadline (0 when it has passed)."""
        return max(0.0, self.deadline - time.monotonic())


@runtime_checkable
class SystemTask(Protocol):
    """A custom system task: its type name and how to execute one."""

    task_type: str

    async def execute(
        self, task_input: dict[str, Any], context: TaskContext
    ) -> Result | dict[str, Any]:
        """Run one attempt. An exception is a failure the TaskDef's retries apply to."""
        ...


class PluginError(ConfigError):
    """A plugin that cannot be used: the process refuses to start."""


def builtin_types() -> frozenset[str]:
    """Type names a plugin may not take: every type Podium defines, run or not."""
    return frozenset(str(t) for t in TaskType) | SYSTEM_TYPES | UNSUPPORTED_TYPES


def validate_input(plugin: SystemTask, input_parameters: Mapping[str, Any]) -> list[str]:
    """Problems the plugin finds in a WorkflowTask's ``inputParameters`` (none if it has no
    ``validate_input``). Values may still be expressions (``${workflow.input.x}``)."""
    check = getattr(plugin, "validate_input", None)
    if check is None:
        return []
    try:
        return [str(problem) for problem in check(input_parameters)]
    except Exception as exc:  # the plugin's fault, not the definition's: say so, and refuse
        log.warning("%s failed to check its input", plugin.task_type, exc_info=True)
        return [f"{plugin.task_type} could not check its input: {type(exc).__name__}: {exc}"]


def load(points: Iterable[EntryPoint]) -> dict[str, SystemTask]:
    """The plugins of these entry points by task type; :class:`PluginError` for a broken one,
    a type name that is not upper-case, built in, or claimed twice."""
    builtin = builtin_types()
    loaded: dict[str, SystemTask] = {}
    owners: dict[str, str] = {}
    for point in sorted(points, key=lambda p: p.name):
        where = f"plugin {point.name!r} ({point.value})"
        try:
            plugin = point.load()
        except Exception as exc:
            raise PluginError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
        task_type = getattr(plugin, "task_type", None)
        if not isinstance(task_type, str) or not TYPE_NAME.match(task_type):
            raise PluginError(
                f"{where} has task_type {task_type!r}: it must be an upper-case name "
                "(letters, digits and _, starting with a letter)"
            )
        if not isinstance(plugin, SystemTask):
            raise PluginError(f"{where} has no execute(task_input, context) method")
        if not inspect.iscoroutinefunction(plugin.execute):
            raise PluginError(f"{where} has an execute method that is not async def")
        if task_type in builtin:
            raise PluginError(f"{where} claims task type {task_type}, which is built in")
        if task_type in loaded:
            raise PluginError(
                f"{where} claims task type {task_type}, which plugin {owners[task_type]!r} "
                "already provides"
            )
        loaded[task_type] = plugin
        owners[task_type] = point.name
        log.info("loaded system task %s from %s", task_type, where)
    return loaded


_installed: dict[str, SystemTask] | None = None


def installed() -> dict[str, SystemTask]:
    """The plugins installed in this environment, loaded on the first call."""
    global _installed
    if _installed is None:
        _installed = load(entry_points(group=ENTRY_POINT_GROUP))
    return _installed
