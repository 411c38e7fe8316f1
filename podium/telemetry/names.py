"""Attribute names and fixed values shared by every span Podium makes.

Standard names follow the current OpenTelemetry semantic conventions (RPC: ``rpc.system.name``,
which replaced ``rpc.system``; messaging; database; HTTP). Conductor's own ids use the
``conductor.*`` names proposed in conductor-oss#1113, so traces from Podium and from Conductor
can be joined on the same keys; what only Podium has is under ``podium.*``.
"""

from __future__ import annotations

from typing import Final

WORKFLOW_ID: Final = "conductor.workflow.id"
TASK_ID: Final = "conductor.task.id"
TASK_TYPE: Final = "conductor.task.type"
WORKFLOW_STATUS: Final = "conductor.workflow.status"

DECIDE_OPERATION: Final = "podium.decide.operation"
DECIDE_TASKS_SCHEDULED: Final = "podium.decide.tasks_scheduled"
DECIDE_CONFLICTS: Final = "podium.decide.conflicts"
#: On a batch call's span (claims of several tasks): the tasks and workflows it decided on.
DECIDE_TASK_IDS: Final = "podium.decide.task_ids"
DECIDE_WORKFLOW_IDS: Final = "podium.decide.workflow_ids"
#: On a span link: why the link exists (``scheduled_by``, ``workflow_start``).
LINK_KIND: Final = "podium.link.kind"
#: On a ``queue.batch`` call: its operations, ``"{operation} {queue}"`` each.
QUEUE_OPERATIONS: Final = "podium.queue.operations"

RPC_SYSTEM_NAME: Final = "rpc.system.name"
RPC_METHOD: Final = "rpc.method"
RPC_STATUS: Final = "rpc.response.status_code"
RPC_SYSTEM: Final = "podium_msgpack"

MSG_SYSTEM: Final = "messaging.system"
MSG_OPERATION: Final = "messaging.operation.name"
MSG_OPERATION_TYPE: Final = "messaging.operation.type"
MSG_DESTINATION: Final = "messaging.destination.name"
MSG_BATCH: Final = "messaging.batch.message_count"
MSG_ID: Final = "messaging.message.id"
QUEUE_SYSTEM: Final = "podium_queue"

DB_SYSTEM: Final = "db.system.name"
DB_OPERATION: Final = "db.operation.name"
DB_NAMESPACE: Final = "db.namespace"
DB_PROCEDURE: Final = "db.stored_procedure.name"

SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"

#: Record fields (on workflows and tasks) that carry trace context; see docs/observability.md.
TRACE_ID_FIELD: Final = "traceId"
TRACE_PARENT_FIELD: Final = "traceParent"
