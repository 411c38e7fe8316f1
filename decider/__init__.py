"""The decider: Conductor's workflow semantics as pure functions.

Every operation is ``op(workflow_record, ..., ctx) -> Decision`` with no I/O: the service shell
loads the workflow, calls one of these, writes ``decision.workflow`` (and the changed task
records) conditionally, then pushes/removes the queue messages and carries out the commands.
See docs/decider.md.
"""

from decider.child_status import child_status
from decider.decision import (
    ClaimVerdict,
    Command,
    Context,
    DeciderConfig,
    Decision,
    NotifyParent,
    QueuePush,
    QueueRemove,
    RetryWorkflow,
    StartSubWorkflow,
    StartWorkflow,
    TerminateWorkflow,
    check_claim_limits,
)
from decider.lifecycle import next_check_ms
from decider.operations import (
    claim,
    decide,
    pause,
    rerun,
    restart,
    resume,
    retry,
    set_variables,
    signal,
    skip_task,
    start_workflow,
    terminate,
    update_task,
    update_task_by_ref,
)
from decider.statuses import TaskStatus, TaskType, WorkflowStatus
from decider.workflow_run import queue_name
from podium.definitions.validation import validate_task_def, validate_workflow_def
from podium.errors import IllegalState, ValidationError
from podium.queues import DECIDER_QUEUE

__all__ = [
    "DECIDER_QUEUE",
    "ClaimVerdict",
    "Command",
    "Context",
    "DeciderConfig",
    "Decision",
    "IllegalState",
    "NotifyParent",
    "QueuePush",
    "QueueRemove",
    "RetryWorkflow",
    "StartSubWorkflow",
    "StartWorkflow",
    "TaskStatus",
    "TaskType",
    "TerminateWorkflow",
    "ValidationError",
    "WorkflowStatus",
    "check_claim_limits",
    "child_status",
    "claim",
    "decide",
    "next_check_ms",
    "pause",
    "queue_name",
    "rerun",
    "restart",
    "resume",
    "retry",
    "set_variables",
    "signal",
    "skip_task",
    "start_workflow",
    "terminate",
    "update_task",
    "update_task_by_ref",
    "validate_task_def",
    "validate_workflow_def",
]
