"""Where a record's tasks are, kept on the record a decision leaves (beside its deadlines).

The owning decider decides on the record it kept (decider/records.py). With the index of that
record, the next decision reaches the few tasks it concerns (the ones an update names, the
ones not settled, the JOIN) without passing over all of them: a fan-out of N branches then
costs each decision a few tasks' work, not N, and the whole fan-out linear time.

A decision moves its input record's index to its output record, brought up to date
(:meth:`TaskIndex.advance`), or builds one anew (:meth:`TaskIndex.of`) when the operation
reordered or removed tasks, or when its input has none (a store read, or a record whose index
an earlier decision took).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter
from typing import Any

from decider.statuses import TASK_TERMINAL, TaskStatus, is_system_type
from podium.types import JSON


@dataclass(frozen=True)
class JoinProgress:
    """What a JOIN's last evaluation found, while it waits: every joined task's latest attempt
    had a status that neither fails the join nor makes it COMPLETED_WITH_ERRORS, and those of
    ``refs[:done]`` had ended. Within the decisions that share tasks (update, claim, decide)
    an ended attempt is never reopened and a later one is made only for a failure, so the
    next evaluation only looks at the tasks changed since and moves ``done`` on."""

    #: the join task's ``inputData`` and ``iteration`` when this was found: the joined
    #: references follow from them (a waiting join's task is copied, its input never changed)
    inputs: Any
    iteration: int
    refs: tuple[str, ...]
    ref_set: frozenset[str]
    done: int


class TaskIndex:
    """Positions in one record's ``tasks`` list.

    * ``at``: task id -> position;
    * ``by_ref``: reference name -> positions of its tasks, in order (the last is the latest
      attempt);
    * ``system``: positions of system-type tasks, in order;
    * ``unsettled``: ids of the tasks not settled. A settled task has ended and been processed
      by a decide (``executed``): deciding never changes it again;
    * ``loud``: those of them that are not of the quiet kind (:func:`quiet_kind`): each
      decision looks at these, and at the quiet ones whose deadline has come;
    * ``max_seq``: the highest ``seq``;
    * ``joins``: the progress of waiting JOINs, by task id.
    """

    __slots__ = ("at", "by_ref", "joins", "loud", "max_seq", "size", "system", "unsettled")

    def __init__(
        self,
        at: dict[str, int],
        by_ref: dict[str, list[int]],
        system: list[int],
        unsettled: set[str],
        max_seq: int,
        joins: dict[str, JoinProgress],
    ) -> None:
        self.at = at
        self.by_ref = by_ref
        self.system = system
        self.unsettled = unsettled
        self.loud: set[str] = set()  # filled with unsettled by _extend
        self.max_seq = max_seq
        self.joins = joins
        self.size = len(at)

    @classmethod
    def of(cls, tasks: Sequence[Mapping[str, Any]]) -> TaskIndex:
        """The index of ``tasks`` (a pass over all of them: a record read from the store, or
        left by an operation that reordered or removed tasks)."""
        index = cls({}, {}, [], set(), 0, {})
        index._extend(tasks, 0)
        return index

    def advance(
        self,
        tasks: Sequence[Mapping[str, Any]],
        touched: Iterable[int],
        joins: dict[str, JoinProgress],
    ) -> TaskIndex:
        """This index made the index of ``tasks``: its list with the tasks at positions
        ``touched`` changed in place (their ids, types and reference names unchanged) and
        tasks appended from position ``self.size`` on; ``joins`` as they are now.

        It is changed in place and returned: it moves from the decision's input record to its
        output record, and the input record is left without one (a later decision on it,
        rare, builds one anew). A copy would cost each decision a pass over all tasks."""
        for i in touched:
            self._file(tasks[i])
        self._extend(tasks, self.size)
        self.joins = joins
        return self

    def _extend(self, tasks: Sequence[Mapping[str, Any]], start: int) -> None:
        by_ref = self.by_ref
        for i in range(start, len(tasks)):
            t = tasks[i]
            task_id, ref = t["taskId"], t["referenceTaskName"]
            self.at[task_id] = i
            positions = by_ref.get(ref)
            if positions is None:
                by_ref[ref] = [i]
            else:
                positions.append(i)
            if is_system_type(t["taskType"]):
                self.system.append(i)
            self._file(t)
            self.max_seq = max(self.max_seq, int(t.get("seq") or 0))
        self.size = len(tasks)

    def _file(self, t: Mapping[str, Any]) -> None:
        """Put a task in ``unsettled`` and ``loud``, or take it out, as its state says."""
        task_id = t["taskId"]
        if t.get("executed") and t["status"] in TASK_TERMINAL:
            self.unsettled.discard(task_id)
            self.loud.discard(task_id)
            return
        self.unsettled.add(task_id)
        if quiet_kind(t):
            self.loud.discard(task_id)
        else:
            self.loud.add(task_id)


_WAITING = frozenset({TaskStatus.SCHEDULED, TaskStatus.IN_PROGRESS})


def quiet_kind(t: Mapping[str, Any]) -> bool:
    """Whether a task is of the kind a decide has nothing to do with until its deadline: a
    worker task (not a system type) SCHEDULED, or IN_PROGRESS since ``updateTime``, that
    carries its TaskDef (without one, the TaskDef that applies may be the definition's, found
    by reference name, which the kept deadlines do not follow)."""
    status = t["status"]
    if status not in _WAITING or is_system_type(t["taskType"]):
        return False
    if status == TaskStatus.IN_PROGRESS and not t.get("updateTime"):
        return False  # its deadline moves with the clock
    workflow_task = t.get("workflowTask")
    return isinstance(workflow_task, dict) and isinstance(workflow_task.get("taskDefinition"), dict)


def tasks_by_id(
    workflow: Mapping[str, Any], ids: Iterable[str] | None = None
) -> Mapping[str, JSON]:
    """The record's tasks by id (those with one of ``ids``, if given): through its index when
    it has one, else picked out in C (a claim names a few of a fan-out's thousand tasks)."""
    tasks = workflow.get("tasks") or []
    index = getattr(workflow, "index", None)
    if isinstance(index, TaskIndex) and index.size == len(tasks):
        if ids is None:
            return _ById(tasks, index.at)
        at = index.at
        return {i: tasks[at[i]] for i in ids if i in at}
    if ids is None:
        return {t["taskId"]: t for t in tasks}
    wanted = set(ids)
    return {t["taskId"]: t for t in compress(tasks, map(wanted.__contains__, map(_task_id, tasks)))}


_task_id = itemgetter("taskId")


class _ById(Mapping[str, JSON]):
    """Tasks by id, looked up through an index's positions."""

    __slots__ = ("_at", "_tasks")

    def __init__(self, tasks: list[JSON], at: Mapping[str, int]) -> None:
        self._tasks, self._at = tasks, at

    def __getitem__(self, task_id: str) -> JSON:
        return self._tasks[self._at[task_id]]

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._at

    def __iter__(self) -> Iterator[str]:
        return iter(self._at)

    def __len__(self) -> int:
        return len(self._at)
