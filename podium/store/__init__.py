"""Persistence of definitions and executions, on Redis or Cassandra behind one interface.

``store = await open_store(StoreConfig.from_env())`` gives ``store.metadata`` and
``store.executions``; see docs/persistence.md.
"""

from __future__ import annotations

from podium.store.api import (
    AUDIT_KINDS,
    AuditEntry,
    AuditStore,
    ExecutionStore,
    IdempotencyBinding,
    MetadataStore,
    ScheduleStore,
    Store,
    WorkflowSnapshot,
)
from podium.store.config import StoreConfig
from podium.store.errors import DuplicateTask, VersionConflict
from podium.store.factory import open_store
from podium.store.model import (
    TASK_TERMINAL,
    WORKFLOW_TERMINAL,
    Record,
    TaskStatus,
    WorkflowStatus,
)
from podium.store.search import SearchQuery

__all__ = [
    "AUDIT_KINDS",
    "TASK_TERMINAL",
    "WORKFLOW_TERMINAL",
    "AuditEntry",
    "AuditStore",
    "DuplicateTask",
    "ExecutionStore",
    "IdempotencyBinding",
    "MetadataStore",
    "Record",
    "ScheduleStore",
    "SearchQuery",
    "Store",
    "StoreConfig",
    "TaskStatus",
    "VersionConflict",
    "WorkflowSnapshot",
    "WorkflowStatus",
    "open_store",
]
