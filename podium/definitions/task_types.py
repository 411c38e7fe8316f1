"""Task types as Conductor names them, and their families."""

from __future__ import annotations

from enum import StrEnum


class TaskType(StrEnum):
    """WorkflowTask ``type`` values Podium knows (runtime ``taskType`` may differ, see below)."""

    SIMPLE = "SIMPLE"
    DYNAMIC = "DYNAMIC"
    HTTP = "HTTP"
    FORK_JOIN = "FORK_JOIN"
    FORK_JOIN_DYNAMIC = "FORK_JOIN_DYNAMIC"
    FORK = "FORK"  # runtime taskType of both fork kinds
    JOIN = "JOIN"
    EXCLUSIVE_JOIN = "EXCLUSIVE_JOIN"
    DECISION = "DECISION"
    SWITCH = "SWITCH"
    DO_WHILE = "DO_WHILE"
    SUB_WORKFLOW = "SUB_WORKFLOW"
    START_WORKFLOW = "START_WORKFLOW"
    WAIT = "WAIT"
    HUMAN = "HUMAN"
    TERMINATE = "TERMINATE"
    SET_VARIABLE = "SET_VARIABLE"
    INLINE = "INLINE"
    LAMBDA = "LAMBDA"
    JSON_JQ_TRANSFORM = "JSON_JQ_TRANSFORM"
    NOOP = "NOOP"
    EVENT = "EVENT"


#: Conductor types that need modules Podium lacks: definitions with them are accepted (as
#: Conductor stores them), and such a task fails terminally when it is scheduled.
UNSUPPORTED_TYPES: frozenset[str] = frozenset(
    {
        "KAFKA_PUBLISH",
        "PULL_WORKFLOW_MESSAGES",
        "BUSINESS_RULE",
        "JDBC",
        "GRPC",
        "LLM_CHAT_COMPLETE",
        "LLM_TEXT_COMPLETE",
        "LLM_GENERATE_EMBEDDINGS",
        "LLM_GET_EMBEDDINGS",
        "LLM_INDEX_TEXT",
        "LLM_SEARCH_INDEX",
    }
)

#: Runtime task types executed inside the decide loop (Conductor's sync system tasks, plus
#: JOIN and WAIT, which Podium evaluates in decide instead of on a system-task queue).
SYNC_SYSTEM_TYPES: frozenset[str] = frozenset(
    {
        TaskType.DECISION,
        TaskType.SWITCH,
        TaskType.FORK,
        TaskType.JOIN,
        TaskType.EXCLUSIVE_JOIN,
        TaskType.DO_WHILE,
        TaskType.SET_VARIABLE,
        TaskType.INLINE,
        TaskType.LAMBDA,
        TaskType.JSON_JQ_TRANSFORM,
        TaskType.TERMINATE,
        TaskType.NOOP,
        TaskType.HUMAN,
        TaskType.WAIT,
    }
)
#: Runtime task types done outside decide: HTTP and EVENT by the sweeper from their queues,
#: SUB_WORKFLOW and START_WORKFLOW by the shell through commands.
ASYNC_SYSTEM_TYPES: frozenset[str] = frozenset(
    {TaskType.HTTP, TaskType.EVENT, TaskType.SUB_WORKFLOW, TaskType.START_WORKFLOW}
)
SYSTEM_TYPES: frozenset[str] = SYNC_SYSTEM_TYPES | ASYNC_SYSTEM_TYPES

#: Never retried by the decider (``TaskType.isBuiltIn``).
BUILT_IN_TYPES: frozenset[str] = frozenset(
    {
        TaskType.DECISION,
        TaskType.SWITCH,
        TaskType.FORK,
        TaskType.JOIN,
        TaskType.EXCLUSIVE_JOIN,
        TaskType.DO_WHILE,
    }
)


def is_system_type(task_type: str) -> bool:
    """Whether a runtime ``taskType`` is executed by the server rather than a worker."""
    return task_type in SYSTEM_TYPES
