"""What goes into a decision and what comes out: Context, Decision, queue messages, commands.

Every operation of the decider is ``op(workflow_record, ..., ctx) -> Decision``. The context
carries the clock, the id generator and the few registry facts a pure function cannot look up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from decider.scripting import Scripts
from decider.task_index import tasks_by_id
from podium.definitions.expressions import JsonPaths
from podium.definitions.validation import ValidatedDefinitions
from podium.types import JSON

IdGenerator = Callable[[], str]


@dataclass(frozen=True)
class DeciderConfig:
    """Tunables with Conductor's defaults (``ConductorProperties``)."""

    #: Re-evaluation delay of a running workflow that has no nearer deadline.
    workflow_offset_s: int = 30
    #: Cap on the delay until the next check.
    max_postpone_s: int = 3600
    script_timeout_s: float = 4.0
    script_max_memory_bytes: int = 64 * 1024 * 1024
    max_variables_bytes: int = 256 * 1024
    #: A domain counts as active when a worker polled it this recently (task domains).
    active_worker_last_poll_s: int = 10
    #: How long a claim refused by a limit is pushed back in its queue.
    task_postpone_s: int = 60
    #: Safety bound on decide-loop passes (sync system tasks that keep changing state).
    max_decide_passes: int = 10_000
    owner_email_mandatory: bool = False
    #: How deep sub-workflows may nest: a workflow this deep (a top-level one is 0) fails its
    #: SUB_WORKFLOW tasks instead of starting children (a workflow that starts itself).
    max_subworkflow_depth: int = 32


@dataclass(frozen=True)
class Context:
    """Everything impure that an operation needs, passed in.

    ``task_defs``: registered TaskDefs by name (DYNAMIC tasks, dynamic forks and restarts with
    the latest definitions look them up). ``poll_times``: last poll time (ms) per
    ``(taskType, domain)``, to pick the active domain of a ``taskToDomain`` list. ``env``:
    system names usable in expressions (Conductor reads server env vars). ``scripts``: where
    JavaScript and jq are evaluated (in the calling thread unless the shell says otherwise).
    ``definitions``: where validated workflow definitions are remembered; ``paths``: compiled
    JSONPath expressions.
    """

    now_ms: int
    ids: IdGenerator
    task_defs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    poll_times: Mapping[tuple[str, str], int] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    config: DeciderConfig = field(default_factory=DeciderConfig)
    scripts: Scripts = field(default_factory=Scripts)
    definitions: ValidatedDefinitions = field(default_factory=ValidatedDefinitions)
    paths: JsonPaths = field(default_factory=JsonPaths)


@dataclass(frozen=True)
class QueuePush:
    """Push (or re-push: pushes are idempotent per id) ``message_id`` onto ``queue``."""

    queue: str
    message_id: str
    priority: int
    delay_ms: int = 0


@dataclass(frozen=True)
class QueueRemove:
    queue: str
    message_id: str


@dataclass(frozen=True)
class StartSubWorkflow:
    """Start a child workflow with this id, idempotently (an existing id is left as it is).

    The child is started with :func:`decider.operations.start_workflow` and
    ``parent_workflow_id``/``parent_workflow_task_id`` set; its decisions then carry
    :class:`NotifyParent` commands. If it cannot start (no such definition), the shell reports
    ``FAILED`` with the reason through :func:`decider.child_status.child_status`.
    """

    workflow_id: str
    name: str | None
    version: int | None
    definition: JSON | None
    input: JSON
    correlation_id: str | None
    task_to_domain: dict[str, str]
    priority: int
    parent_workflow_id: str
    parent_workflow_task_id: str
    #: the child's nesting depth (its parent's plus one)
    depth: int = 1
    kind: str = "start_sub_workflow"


@dataclass(frozen=True)
class StartWorkflow:
    """Start an independent workflow with this id, idempotently.

    ``reply_task_id`` is set for a START_WORKFLOW task: the shell then reports the outcome with
    an ``update_task`` on that task (COMPLETED with ``{"workflowId": id}``, or FAILED with the
    reason). For a failure workflow it is None.
    """

    workflow_id: str
    name: str | None
    version: int | None
    definition: JSON | None
    input: JSON
    correlation_id: str | None
    task_to_domain: dict[str, str]
    priority: int
    reply_workflow_id: str | None = None
    reply_task_id: str | None = None
    kind: str = "start_workflow"


@dataclass(frozen=True)
class NotifyParent:
    """Tell the parent workflow that this sub-workflow's status is now ``status``.

    The shell applies it to the parent with :func:`decider.child_status.child_status`.
    """

    parent_workflow_id: str
    parent_workflow_task_id: str
    workflow_id: str
    status: str
    output: JSON
    reason: str | None
    kind: str = "notify_parent"


@dataclass(frozen=True)
class TerminateWorkflow:
    """Terminate another workflow (a sub-workflow whose parent ended)."""

    workflow_id: str
    reason: str
    kind: str = "terminate_workflow"


@dataclass(frozen=True)
class RetryWorkflow:
    """Retry another workflow (``resumeSubworkflowTasks``: a failed sub-workflow)."""

    workflow_id: str
    resume_subworkflow_tasks: bool = True
    kind: str = "retry_workflow"


Command = StartSubWorkflow | StartWorkflow | NotifyParent | TerminateWorkflow | RetryWorkflow


@dataclass(frozen=True)
class Decision:
    """The result of one operation, everything the shell must persist and do.

    ``workflow`` is the full new record (Conductor's Workflow JSON, ``tasks`` included).
    ``changed_tasks`` are the task records created or modified (``created_task_ids`` says which
    are new); ``removed_task_ids`` are tasks to delete (restart, rerun, ``keepLastN``). Queue
    ``pushes`` and ``removals`` go to the task queues; ``commands`` concern other workflows;
    ``logs`` are TaskExecLogs to append. ``next_check_ms`` is when the workflow must be decided
    again (push it on the decider queue then); None when it is finished or paused with no
    timeout. ``accepted`` is False for an operation that changed nothing on purpose (a late
    update of a finished task, a refused claim).
    """

    workflow: JSON
    changed_tasks: list[JSON]
    created_task_ids: list[str]
    removed_task_ids: list[str]
    pushes: list[QueuePush]
    removals: list[QueueRemove]
    commands: list[Command]
    logs: list[JSON]
    next_check_ms: int | None
    workflow_changed: bool
    accepted: bool = True
    note: str | None = None

    @property
    def changed(self) -> bool:
        return self.workflow_changed or bool(self.changed_tasks) or bool(self.removed_task_ids)

    def to_dict(self) -> JSON:
        """A msgpack/JSON friendly form (commands carry their ``kind``)."""
        return asdict(self)


def combine(decisions: Sequence[Decision]) -> Decision:
    """One decision for several made one after another on one workflow, each on the record
    the one before it produced: committed at once, it leaves the store and the queues as
    committing each in turn would.

    The record is the last one; the changed, created and removed tasks are those of any
    decision, as they are in the last record; of the queue operations on one message the last
    one counts; commands and logs are all of them, in order.
    """
    if len(decisions) == 1:
        return decisions[0]
    last = decisions[-1]
    final = tasks_by_id(last.workflow)
    changed = dict.fromkeys(t["taskId"] for d in decisions for t in d.changed_tasks)
    created = dict.fromkeys(i for d in decisions for i in d.created_task_ids)
    removed = dict.fromkeys(i for d in decisions for i in d.removed_task_ids)
    queue_ops: dict[tuple[str, str], QueuePush | QueueRemove] = {}
    commands: list[Command] = []
    for d in decisions:
        ops: list[QueuePush | QueueRemove] = [*d.pushes, *d.removals]
        for op in ops:  # one decision never both pushes and removes one message
            queue_ops.pop((op.queue, op.message_id), None)  # keep the order of the last
            queue_ops[(op.queue, op.message_id)] = op
        commands += [c for c in d.commands if c not in commands]
    return Decision(
        workflow=last.workflow,
        changed_tasks=[final[i] for i in changed if i in final],
        created_task_ids=[i for i in created if i in final],
        removed_task_ids=[i for i in removed if i not in final],
        pushes=[op for op in queue_ops.values() if isinstance(op, QueuePush)],
        removals=[op for op in queue_ops.values() if isinstance(op, QueueRemove)],
        commands=commands,
        logs=[entry for d in decisions for entry in d.logs],
        next_check_ms=last.next_check_ms,
        workflow_changed=any(d.workflow_changed for d in decisions),
    )


@dataclass(frozen=True)
class ClaimVerdict:
    """Whether a popped task may be handed to a worker now (see :func:`check_claim_limits`)."""

    allowed: bool
    reason: str | None = None
    postpone_ms: int = 0


def check_claim_limits(
    task_def: Mapping[str, Any] | None,
    *,
    in_progress: int,
    claimed_in_window: int,
    is_among_oldest: bool = True,
    config: DeciderConfig | None = None,
) -> ClaimVerdict:
    """Conductor's poll-time limits of a TaskDef, from counts the shell supplies.

    ``in_progress``: IN_PROGRESS tasks of this definition now. ``claimed_in_window``: tasks of
    this definition handed out in the last ``rateLimitFrequencyInSeconds``. ``is_among_oldest``:
    whether this task is among the ``concurrentExecLimit`` oldest pending ones (FIFO fairness).
    A refused claim is postponed ``task_postpone_s`` (60 s) in its queue.
    """
    if task_def is None:
        return ClaimVerdict(True)
    postpone_ms = (config or DeciderConfig()).task_postpone_s * 1000
    limit = task_def.get("concurrentExecLimit")
    if isinstance(limit, int) and limit > 0 and (in_progress >= limit or not is_among_oldest):
        reason = f"concurrentExecLimit {limit} reached for {task_def.get('name')}"
        return ClaimVerdict(False, reason, postpone_ms)
    per = task_def.get("rateLimitPerFrequency") or 0
    window = task_def.get("rateLimitFrequencyInSeconds") or 1
    if per > 0 and claimed_in_window >= per:
        reason = f"rateLimitPerFrequency {per} per {window}s reached for {task_def.get('name')}"
        return ClaimVerdict(False, reason, postpone_ms)
    return ClaimVerdict(True)
