"""The working state of one operation: a private copy of the workflow plus what to emit.

An operation copies the workflow record (its tasks one level deep: see Run), mutates the
copy, collects queue messages and commands, and ends with :meth:`Run.finish`, which diffs
the copy against the input to report created, changed and removed tasks. The caller's
records are never mutated.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from itertools import compress
from typing import TYPE_CHECKING, Any

from decider.decision import (
    Command,
    Context,
    Decision,
    QueuePush,
    QueueRemove,
)
from decider.statuses import (
    SYNC_SYSTEM_TYPES,
    SYSTEM_TYPES,
    TASK_TERMINAL,
    TaskStatus,
    TaskType,
    WorkflowStatus,
    is_system_type,
    task_terminal,
)
from decider.task_index import JoinProgress, TaskIndex
from podium.clone import clone
from podium.events import EVENT_TASK_QUEUE
from podium.queues import task_queue
from podium.types import JSON

if TYPE_CHECKING:
    from decider.lifecycle import TaskDeadlines


class WorkflowRecord(dict[str, Any]):
    """A workflow record as a decision leaves it: a plain dict to everything that reads it,
    which also carries ``deadlines``, the deadline of each of its unfinished tasks as
    :func:`decider.lifecycle.next_check_ms` found them (None until then). The next decision
    on this same record (the owner decides on the record it kept) then only works out the
    deadlines of the tasks it changed. A record read from the store is a plain dict: its
    deadlines are worked out from all its tasks. ``index`` (decider.task_index) is kept the
    same way: where its tasks are."""

    __slots__ = ("deadlines", "index")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadlines: TaskDeadlines | None = None
        self.index: TaskIndex | None = None


class TerminateSignal(Exception):
    """Ends the workflow from inside decide (Conductor's TerminateWorkflowException)."""

    def __init__(self, reason: str, status: str = WorkflowStatus.FAILED, task: JSON | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.task = task


def queue_name(task: Mapping[str, Any]) -> str | None:
    """The queue of a task (``[domain:]taskType[@namespace][-isolationGroup]``), or None for
    tasks that never sit in a task queue (sync system tasks, WAIT, HUMAN, sub-workflows)."""
    task_type = task["taskType"]
    if task_type == TaskType.EVENT:
        return EVENT_TASK_QUEUE  # one queue, which every sweeper polls
    if task_type in SYSTEM_TYPES and task_type != TaskType.HTTP:
        return None
    return task_queue(
        str(task_type),
        None if task_type == TaskType.HTTP else task.get("domain"),
        task.get("executionNameSpace"),
        task.get("isolationGroupId"),
    )


class Run:
    """A mutable copy of one workflow and the effects collected while deciding it."""

    def __init__(
        self,
        workflow: Mapping[str, Any],
        ctx: Context,
        *,
        share_settled: bool = False,
        share_all: bool = False,
    ) -> None:
        self.ctx = ctx
        self.now = ctx.now_ms
        self._before = workflow
        # The definition is only read while deciding (an operation that changes it, a
        # restart with the latest one, replaces it whole), so it is shared, not copied: it is
        # most of the record.
        #
        # Tasks are copied one level deep: an operation sets a task's fields, and replaces a
        # nested value (outputData, inputData) rather than changing it in place, so the copy
        # costs a few microseconds a task and the tasks it leaves alone compare equal at a
        # glance in finish(), where a deep copy of a fork's thousand branches would cost
        # tens of milliseconds per decision.
        #
        # The workflow's input is shared too: operations replace it whole (rerun), never
        # change it, and a fan-out's input may hold every child.
        #
        # Settled tasks (finished, and processed by a decide: ``executed``) are not copied at
        # all: deciding never changes them again, so a fan-out's finished branches cost
        # nothing here nor in finish(). Nor are quiet ones: worker tasks waiting for a worker
        # whose deadline is ahead (TaskDeadlines.quiet, kept on a record a decision left).
        # Through the record's TaskIndex (decider.task_index) the run finds the other tasks
        # without a pass over all, and the decide loop looks only at those (candidates()).
        # The operations a fan-out repeats (update, decide) ask for this with
        # ``share_settled=True``, and copy a task with :meth:`own` before changing it; the
        # others, some of which reopen finished tasks (retry, rerun), copy every task. A
        # claim, which changes only the tasks it hands out, shares every task (``share_all``)
        # and owns those.
        head = dict(workflow)
        shared: dict[str, Any] = {
            k: head.pop(k) for k in ("workflowDefinition", "input") if k in head
        }
        tasks = head.pop("tasks", None) or []
        self.wf: JSON = WorkflowRecord(clone(head))
        self.wf.update(shared)
        self._base: list[JSON] = tasks
        #: the index of the input's tasks (runs that share tasks); it holds for this run's
        #: list as long as that list is only appended to (:meth:`indexed`)
        self.index: TaskIndex | None = None
        #: positions (below ``index.size``) where this run's list holds its own copy
        self._copied: set[int] = set()
        #: how many quiet tasks this run shares with its input (not copied)
        self.quiet_left = 0
        #: progress of waiting JOINs, as this run leaves them (see decider.systasks)
        self.joins: dict[str, JoinProgress] = {}
        self._base_ids: set[int] | None = None
        self._new = _Appended(len(tasks))
        if share_all or share_settled:
            index = getattr(workflow, "index", None)
            if not isinstance(index, TaskIndex) or index.size != len(tasks):
                index = TaskIndex.of(tasks)
            self.index = index
            self.joins = dict(index.joins)
            copies = list(tasks)
            if share_settled:
                deadlines = getattr(workflow, "deadlines", None)
                active: set[str] = index.unsettled
                # The kept deadlines and index describe this same record (they move together
                # from decision to decision): their sizes must agree.
                quiet = len(index.unsettled) - len(index.loud)
                if deadlines is not None and len(deadlines.quiet) == quiet:
                    active = index.loud | deadlines.due_quiet(self.now)
                self.quiet_left = len(index.unsettled) - len(active)
                self._copied = set(map(index.at.__getitem__, active))
                for i in self._copied:
                    copies[i] = dict(copies[i])
            self.wf["tasks"] = self._list = copies
        else:
            self.wf["tasks"] = self._list = [dict(t) for t in tasks]
        self.pushes: dict[tuple[str, str], QueuePush] = {}
        self.removals: dict[tuple[str, str], QueueRemove] = {}
        self.commands: list[Command] = []
        self.logs: list[JSON] = []
        #: precise retry delays (ms, with jitter) of tasks created in this run
        self.delay_ms: dict[str, int] = {}

    # --- views ------------------------------------------------------------------------------

    @property
    def before(self) -> Mapping[str, Any]:
        """The workflow record the run began from (never changed)."""
        return self._before

    @property
    def tasks(self) -> list[JSON]:
        tasks: list[JSON] = self.wf["tasks"]
        return tasks

    @property
    def wf_def(self) -> JSON:
        d: JSON = self.wf["workflowDefinition"]
        return d

    @property
    def status(self) -> str:
        return str(self.wf["status"])

    def indexed(self) -> bool:
        """Whether :attr:`index` holds for :attr:`tasks` (the list was only appended to)."""
        return self.index is not None and self.wf["tasks"] is self._list

    def _appended(self) -> _Appended:
        """Where the tasks this run appended are (an indexed run), brought up to date with
        the tasks appended since the last look: each task is filed once."""
        found = self._new
        tasks = self.tasks
        for j in range(found.upto, len(tasks)):
            t = tasks[j]
            found.at[t["taskId"]] = j
            found.by_ref.setdefault(t["referenceTaskName"], []).append(j)
            if is_system_type(t["taskType"]):
                found.system.append(j)
        found.upto = len(tasks)
        return found

    def task_by_id(self, task_id: str) -> JSON | None:
        if self.indexed():
            assert self.index is not None
            i = self.index.at.get(task_id)
            if i is None:
                i = self._appended().at.get(task_id)
            return None if i is None else self.tasks[i]
        return next((t for t in self.tasks if t["taskId"] == task_id), None)

    def own(self, task_ids: Iterable[str]) -> dict[str, JSON]:
        """Private copies of the tasks with these ids, put in place of the shared ones (a
        run made with ``share_all`` or ``share_settled``), by id; ids that are not tasks of
        the workflow are left out. A claim or an update names a few of a fan-out's thousand
        tasks: they are found by the index, or else in C."""
        tasks = self.tasks
        wanted = set(task_ids)
        owned: dict[str, JSON] = {}
        if self.indexed():
            assert self.index is not None
            at, new = self.index.at, self._appended().at
            positions = [at[t] for t in wanted if t in at]
            positions += [new[t] for t in wanted if t in new]
        else:
            positions = list(
                compress(range(len(tasks)), map(wanted.__contains__, map(_task_id, tasks)))
            )
        for i in positions:
            self._mark_owned(i, tasks[i])
            tasks[i] = owned[tasks[i]["taskId"]] = dict(tasks[i])
        return owned

    def own_at(self, index: int) -> JSON:
        """The task at ``index``, copied first if it is shared with the input."""
        task = self.tasks[index]
        if self._base_ids is None:
            self._base_ids = set(map(id, self._base))
        if id(task) in self._base_ids:
            self._mark_owned(index, task)
            task = self.tasks[index] = dict(task)
        return task

    def _mark_owned(self, i: int, task: JSON) -> None:
        if not self.indexed():
            return
        assert self.index is not None
        if i < self.index.size and i not in self._copied:
            self._copied.add(i)
            if task["taskId"] in self.index.unsettled:
                self.quiet_left -= 1  # every unsettled task not copied is a quiet one

    def candidates(self) -> list[JSON]:
        """The tasks a decide pass must look at, in order (an indexed run): this run's copies
        and the tasks it appended. The others are settled or quiet."""
        tasks = self.tasks
        return [tasks[i] for i in sorted(self._copied)] + tasks[len(self._base) :]

    def system_tasks(self) -> list[JSON]:
        """The system-type tasks, in order."""
        tasks = self.tasks
        if self.indexed():
            assert self.index is not None
            return [tasks[i] for i in self.index.system + self._appended().system]
        return [t for t in tasks if is_system_type(t["taskType"])]

    def positions(self, ref: str) -> list[int]:
        """Positions of the tasks with this reference name, in order."""
        tasks = self.tasks
        if self.indexed():
            assert self.index is not None
            found = self.index.by_ref.get(ref, [])
            more = self._appended().by_ref.get(ref)
            return found + more if more else found
        return list(compress(range(len(tasks)), map(ref.__eq__, map(_ref, tasks))))

    def task_by_ref(self, ref: str) -> JSON | None:
        """The last task with this reference name (the latest retry)."""
        positions = self.positions(ref)
        return self.tasks[positions[-1]] if positions else None

    def latest_by_ref(self, refs: list[str]) -> dict[str, JSON | None]:
        """:meth:`task_by_ref` of each of ``refs``, in one pass over the tasks (a join of a
        thousand branches would otherwise scan them a thousand times)."""
        tasks = self.tasks
        latest = dict(zip(map(_ref, tasks), tasks, strict=True))  # in C; the last one wins
        return dict(zip(refs, map(latest.get, refs), strict=True))

    # --- effects ----------------------------------------------------------------------------

    def push(self, task: JSON, delay_ms: int) -> None:
        q = queue_name(task)
        if q is None:
            return
        priority = int(self.wf.get("priority") or 0)
        self.removals.pop((q, task["taskId"]), None)
        self.pushes[(q, task["taskId"])] = QueuePush(q, task["taskId"], priority, max(0, delay_ms))

    def remove_message(self, task: JSON) -> None:
        q = queue_name(task)
        if q is None:
            return
        self.pushes.pop((q, task["taskId"]), None)
        self.removals[(q, task["taskId"])] = QueueRemove(q, task["taskId"])

    def command(self, cmd: Command) -> None:
        if cmd not in self.commands:
            self.commands.append(cmd)

    def set_status(self, task: JSON, status: str, reason: str | None = None) -> None:
        """Move a task to ``status``; terminal moves set ``endTime`` and drop its message."""
        task["status"] = str(status)
        if reason is not None:
            task["reasonForIncompletion"] = reason
        if task_terminal(status):
            if not task.get("endTime"):
                task["endTime"] = self.now
            self.remove_message(task)

    # --- scheduling (WorkflowExecutorOps.scheduleTask / dedupAndAddTasks) -----------------

    def schedule(self, new_tasks: list[JSON]) -> list[JSON]:
        """Add tasks to the workflow (deduplicated by ref + retryCount) and queue them."""
        if not new_tasks:
            return []
        # Only tasks with the new ones' reference names can clash, and they are picked out in C:
        # most calls re-offer a task already there (a JOIN still waiting), and a fan-out has
        # thousands of others.
        tasks = self.tasks
        refs = {t["referenceTaskName"] for t in new_tasks}
        if self.indexed():
            same_ref: Iterable[JSON] = [tasks[i] for ref in refs for i in self.positions(ref)]
        else:
            same_ref = compress(tasks, map(refs.__contains__, map(_ref, tasks)))
        existing = {(t["referenceTaskName"], t.get("retryCount", 0)) for t in same_ref}
        added: list[JSON] = []
        before = len(tasks)
        seq: int | None = None  # the highest seq of the tasks before this call, once needed
        for task in new_tasks:
            key = (task["referenceTaskName"], task.get("retryCount", 0))
            if key in existing:
                continue
            existing.add(key)
            if not task.get("seq"):
                if seq is None:
                    if self.indexed():
                        assert self.index is not None
                        appended = tasks[self.index.size : before]
                        seq = max(self.index.max_seq, max(map(_seq, appended), default=0))
                    else:
                        seq = max(map(_seq, tasks[:before]), default=0)
                seq += 1
                task["seq"] = seq
            task["scheduledTime"] = self.now
            if not task.get("firstScheduledTime"):
                task["firstScheduledTime"] = self.now
            if not is_system_type(task["taskType"]):
                self._set_domain(task)
            elif task["taskType"] in SYNC_SYSTEM_TYPES and not task_terminal(task["status"]):
                # async ones get their startTime when claimed or started
                task["startTime"] = task.get("startTime") or self.now
            self.tasks.append(task)
            added.append(task)
            if task["status"] == TaskStatus.SCHEDULED:
                delay = self.delay_ms.get(
                    task["taskId"], 1000 * int(task.get("callbackAfterSeconds") or 0)
                )
                self.push(task, delay)
        return added

    def _set_domain(self, task: JSON) -> None:
        """``setTaskDomains``: pick the first active domain of the task's ``taskToDomain``."""
        mapping = self.wf.get("taskToDomain") or {}
        spec = mapping.get(task["taskType"]) or mapping.get("*")
        if not spec:
            return
        domains = [d.strip() for d in str(spec).split(",") if d.strip()]
        if not domains:
            return
        window = self.ctx.config.active_worker_last_poll_s * 1000
        for d in domains:
            if d.upper() == "NO_DOMAIN":
                continue
            last = self.ctx.poll_times.get((task["taskType"], d))
            if last is not None and self.now - last <= window:
                task["domain"] = d
                return
        if domains[-1].upper() != "NO_DOMAIN":
            task["domain"] = domains[-1]

    # --- result -----------------------------------------------------------------------------

    def finish(
        self, next_check_ms: int | None, *, accepted: bool = True, note: str | None = None
    ) -> Decision:
        if self.indexed():
            created, changed = self._indexed_changes()
            removed: list[str] = []
        else:
            created, changed, removed = _task_changes(self._base, self.tasks)
        for task in changed:
            task["updateTime"] = self.now
        head_before = {k: v for k, v in self._before.items() if k != "tasks"}
        head_after = {k: v for k, v in self.wf.items() if k != "tasks"}
        wf_changed = head_before != head_after or bool(changed) or bool(removed)
        if wf_changed:
            self.wf["updateTime"] = self.now
        if not isinstance(self.wf, WorkflowRecord):
            self.wf = WorkflowRecord(self.wf)
        if self.index is not None:
            if isinstance(self._before, WorkflowRecord) and self._before.index is self.index:
                self._before.index = None  # moved to the output record (TaskIndex.advance)
            if self.indexed():
                self.wf.index = self.index.advance(self.tasks, self._copied, self.joins)
            else:  # an indexed run whose list was rebuilt (keepLastN)
                self.wf.index = TaskIndex.of(self.tasks)
        return Decision(
            workflow=self.wf,
            changed_tasks=changed,
            created_task_ids=created,
            removed_task_ids=removed,
            pushes=list(self.pushes.values()),
            removals=list(self.removals.values()),
            commands=list(self.commands),
            logs=list(self.logs),
            next_check_ms=next_check_ms,
            workflow_changed=wf_changed,
            accepted=accepted,
            note=note,
        )

    def _indexed_changes(self) -> tuple[list[str], list[JSON]]:
        """:func:`_task_changes` of an indexed run: only its copies can differ from the input,
        and the tasks it appended are new."""
        tasks, base = self.tasks, self._base
        changed = [tasks[i] for i in sorted(self._copied) if tasks[i] != base[i]]
        added = tasks[len(base) :]
        return [t["taskId"] for t in added], changed + added


class _Appended:
    """The tasks an indexed run appended: positions by id, by reference name, of the system
    ones; filed up to position ``upto``."""

    __slots__ = ("at", "by_ref", "system", "upto")

    def __init__(self, upto: int) -> None:
        self.upto = upto
        self.at: dict[str, int] = {}
        self.by_ref: dict[str, list[int]] = {}
        self.system: list[int] = []


_task_id = operator.itemgetter("taskId")
_status = operator.itemgetter("status")
_ref = operator.itemgetter("referenceTaskName")
_executed = operator.methodcaller("get", "executed")
_seq = operator.methodcaller("get", "seq", 0)
_terminal = TASK_TERMINAL.__contains__


def _task_changes(before: list[JSON], after: list[JSON]) -> tuple[list[str], list[JSON], list[str]]:
    """(ids of the tasks ``after`` adds, the tasks of ``after`` that are new or differ from
    their ``before`` version, ids of the tasks ``after`` no longer has), in ``after``'s order.

    In the usual case ``after`` keeps ``before``'s tasks in their order and appends new ones;
    then the tasks are compared pairwise in C (a fan-out's thousand branches are compared at
    each decision). Otherwise they are matched by id.
    """
    n = len(before)
    if len(after) >= n and list(map(_task_id, before)) == list(map(_task_id, after[:n])):
        # A settled task shared with ``before`` is the same object: only copies are compared.
        copies = list(compress(range(n), map(operator.is_not, before, after)))
        olds, news = map(before.__getitem__, copies), list(map(after.__getitem__, copies))
        changed = list(compress(news, map(operator.ne, olds, news)))
        added = after[n:]
        return [t["taskId"] for t in added], changed + added, []
    by_id = {t["taskId"]: t for t in before}
    created: list[str] = []
    changed = []
    for task in after:
        old = by_id.get(task["taskId"])
        if old is None or old != task:
            changed.append(task)
            if old is None:
                created.append(task["taskId"])
    after_ids = set(map(_task_id, after))
    return created, changed, [tid for tid in by_id if tid not in after_ids]
