"""Every CQL statement of the Cassandra backend, prepared once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, fields

from cassandra.query import PreparedStatement

from podium.store.cassandra_backend.session import CassandraSession

# Shard counts are part of the data layout: changing one needs a migration of the data.
INDEX_SHARDS = 4
RUNNING_SHARDS = 8
PENDING_SHARDS = 8
SHARD_ID = 0  # workflows partition shard (always 0, see 0001_initial.cql)
#: Workflow ids per ``wf_read_statuses`` request.
STATUS_GROUP = 100
#: Workflow ids per ``wf_read_many`` request: records may be large, so fewer.
RECORD_GROUP = 20
#: Tasks per ``wf_read_tasks_many`` request (the node looks up workflows x task ids).
TASK_GROUP = 10

_PK = "workflow_id = ? AND shard_id = ?"

# name -> (CQL, idempotent). Conditional statements are not idempotent.
_CQL: dict[str, tuple[str, bool]] = {
    # workflows partition
    "wf_create": (
        "INSERT INTO {ks}.workflows"
        " (workflow_id, shard_id, entity, item_id, payload, version, terminal)"
        " VALUES (?, ?, 'workflow', '', ?, 1, ?) IF NOT EXISTS USING TTL ?",
        False,
    ),
    "wf_fence": (
        "UPDATE {ks}.workflows USING TTL ? SET version = ?, terminal = ? WHERE "
        + _PK
        + " IF version = ? AND terminal = ?",
        False,
    ),
    "wf_row": (
        "INSERT INTO {ks}.workflows (workflow_id, shard_id, entity, item_id, payload)"
        " VALUES (?, ?, ?, ?, ?) USING TTL ?",
        False,
    ),
    "wf_uniq": (
        "INSERT INTO {ks}.workflows (workflow_id, shard_id, entity, item_id, owner)"
        " VALUES (?, ?, 'uniq', ?, ?) USING TTL ?",
        False,
    ),
    # A partition delete cannot be conditional: the statics go under the condition and each
    # row is deleted by key in the same batch.
    "wf_delete": (
        "DELETE version, terminal FROM {ks}.workflows WHERE " + _PK + " IF version = ?",
        False,
    ),
    "wf_delete_row": (
        "DELETE FROM {ks}.workflows WHERE " + _PK + " AND entity = ? AND item_id = ?",
        False,
    ),
    "wf_read_all": (
        "SELECT entity, item_id, payload, owner, version, terminal"
        " FROM {ks}.workflows WHERE " + _PK,
        True,
    ),
    "wf_read_tasks": (
        "SELECT entity, item_id, payload, version FROM {ks}.workflows WHERE "
        + _PK
        + " AND entity IN ('task', 'workflow')",
        True,
    ),
    "wf_read_one": (
        "SELECT payload, version, terminal FROM {ks}.workflows WHERE "
        + _PK
        + " AND entity = 'workflow' AND item_id = ''",
        True,
    ),
    "wf_read_ttl": (
        "SELECT TTL(payload) AS ttl FROM {ks}.workflows WHERE "
        + _PK
        + " AND entity = 'workflow' AND item_id = ''",
        True,
    ),
    "wf_read_task": (
        "SELECT payload FROM {ks}.workflows WHERE " + _PK + " AND entity = 'task' AND item_id = ?",
        True,
    ),
    "wf_read_tasks_in": (
        "SELECT item_id, payload FROM {ks}.workflows WHERE "
        + _PK
        + " AND entity = 'task' AND item_id IN ?",
        True,
    ),
    "wf_read_uniq": (
        "SELECT item_id, owner FROM {ks}.workflows WHERE "
        + _PK
        + " AND entity = 'uniq' AND item_id IN ?",
        True,
    ),
    # Tasks of several workflows in one request: each task id is in one of the workflows.
    "wf_read_tasks_many": (
        "SELECT item_id, payload FROM {ks}.workflows WHERE workflow_id IN ? AND shard_id = ?"
        " AND entity = 'task' AND item_id IN ?",
        True,
    ),
    # Several workflows' rows in one request (search results).
    "wf_read_many": (
        "SELECT workflow_id, payload FROM {ks}.workflows"
        " WHERE workflow_id IN ? AND shard_id = ? AND entity = 'workflow' AND item_id = ''",
        True,
    ),
    # Whether each of several workflows has finished: one request for many partitions.
    "wf_read_statuses": (
        "SELECT workflow_id, terminal FROM {ks}.workflows"
        " WHERE workflow_id IN ? AND shard_id = ? PER PARTITION LIMIT 1",
        True,
    ),
    # task lookup
    "lookup_put": (
        "INSERT INTO {ks}.task_lookup (task_id, workflow_id) VALUES (?, ?) USING TTL ?",
        True,
    ),
    "lookup_get": ("SELECT workflow_id FROM {ks}.task_lookup WHERE task_id = ?", True),
    "lookup_delete": ("DELETE FROM {ks}.task_lookup WHERE task_id = ?", True),
    # search index
    "index_put": (
        "INSERT INTO {ks}.search_index (kind, name, day, shard, index_time, entity_id, workflow_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?",
        True,
    ),
    "index_range": (
        "SELECT index_time, entity_id, workflow_id FROM {ks}.search_index"
        " WHERE kind = ? AND name = ? AND day = ? AND shard = ?"
        " AND index_time >= ? AND index_time <= ? LIMIT ?",
        True,
    ),
    "index_delete": (
        "DELETE FROM {ks}.search_index WHERE kind = ? AND name = ? AND day = ? AND shard = ?"
        " AND index_time = ? AND entity_id = ?",
        True,
    ),
    # correlation, running, pending
    "corr_put": (
        "INSERT INTO {ks}.workflows_by_correlation (workflow_name, correlation_id, workflow_id)"
        " VALUES (?, ?, ?) USING TTL ?",
        True,
    ),
    "corr_get": (
        "SELECT workflow_id FROM {ks}.workflows_by_correlation"
        " WHERE workflow_name = ? AND correlation_id = ?",
        True,
    ),
    "corr_delete": (
        "DELETE FROM {ks}.workflows_by_correlation"
        " WHERE workflow_name = ? AND correlation_id = ? AND workflow_id = ?",
        True,
    ),
    "running_put": (
        "INSERT INTO {ks}.running_workflows (workflow_name, shard, workflow_id, workflow_version)"
        " VALUES (?, ?, ?, ?)",
        True,
    ),
    "running_get": (
        "SELECT workflow_id, workflow_version FROM {ks}.running_workflows"
        " WHERE workflow_name = ? AND shard = ?",
        True,
    ),
    "running_delete": (
        "DELETE FROM {ks}.running_workflows"
        " WHERE workflow_name = ? AND shard = ? AND workflow_id = ?",
        True,
    ),
    "pending_put": (
        "INSERT INTO {ks}.pending_tasks (task_type, shard, task_id, workflow_id)"
        " VALUES (?, ?, ?, ?) USING TTL ?",
        True,
    ),
    "pending_get": (
        "SELECT task_id, workflow_id FROM {ks}.pending_tasks WHERE task_type = ? AND shard = ?",
        True,
    ),
    "pending_delete": (
        "DELETE FROM {ks}.pending_tasks WHERE task_type = ? AND shard = ? AND task_id = ?",
        True,
    ),
    # task logs and poll data
    "log_put": (
        "INSERT INTO {ks}.task_logs (workflow_id, task_id, log_id, entry) VALUES (?, ?, ?, ?)"
        " USING TTL ?",
        True,
    ),
    "log_get": ("SELECT entry FROM {ks}.task_logs WHERE workflow_id = ? AND task_id = ?", True),
    "log_all": ("SELECT task_id, log_id, entry FROM {ks}.task_logs WHERE workflow_id = ?", True),
    "log_delete_all": ("DELETE FROM {ks}.task_logs WHERE workflow_id = ?", True),
    "log_delete_task": (
        "DELETE FROM {ks}.task_logs WHERE workflow_id = ? AND task_id = ?",
        True,
    ),
    "poll_put": (
        "INSERT INTO {ks}.poll_data (queue_name, domain, worker_id, last_poll_time)"
        " VALUES (?, ?, ?, ?)",
        True,
    ),
    "poll_get": (
        "SELECT domain, worker_id, last_poll_time FROM {ks}.poll_data WHERE queue_name = ?",
        True,
    ),
    # the audit trail
    "audit_put": (
        "INSERT INTO {ks}.audit_log (kind, target, bucket, at, record_id, record)"
        " VALUES (?, ?, ?, ?, ?, ?) USING TTL ?",
        True,
    ),
    "audit_get": (
        "SELECT record FROM {ks}.audit_log WHERE kind = ? AND target = ? AND bucket = ? LIMIT ?",
        True,
    ),
    # idempotency keys (lightweight transactions only)
    "idem_insert": (
        "INSERT INTO {ks}.idempotency_keys (workflow_name, idempotency_key, workflow_id, bound_at)"
        " VALUES (?, ?, ?, ?) IF NOT EXISTS",
        False,
    ),
    "idem_replace": (
        "UPDATE {ks}.idempotency_keys SET workflow_id = ?, bound_at = ?"
        " WHERE workflow_name = ? AND idempotency_key = ? IF workflow_id = ?",
        False,
    ),
    "idem_delete": (
        "DELETE FROM {ks}.idempotency_keys WHERE workflow_name = ? AND idempotency_key = ?"
        " IF workflow_id = ?",
        False,
    ),
    # task definitions
    "taskdef_insert": (
        "INSERT INTO {ks}.task_defs (name, payload) VALUES (?, ?) IF NOT EXISTS",
        False,
    ),
    "taskdef_update": ("UPDATE {ks}.task_defs SET payload = ? WHERE name = ? IF EXISTS", False),
    "taskdef_delete": ("DELETE FROM {ks}.task_defs WHERE name = ? IF EXISTS", False),
    "taskdef_get": ("SELECT payload FROM {ks}.task_defs WHERE name = ?", True),
    "taskdef_all": ("SELECT name, payload FROM {ks}.task_defs", True),
    # workflow definitions
    "wfdef_insert": (
        "INSERT INTO {ks}.workflow_defs (name, version, payload) VALUES (?, ?, ?) IF NOT EXISTS",
        False,
    ),
    "wfdef_update": (
        "UPDATE {ks}.workflow_defs SET payload = ? WHERE name = ? AND version = ? IF EXISTS",
        False,
    ),
    "wfdef_delete": (
        "DELETE FROM {ks}.workflow_defs WHERE name = ? AND version = ? IF EXISTS",
        False,
    ),
    "wfdef_get": ("SELECT payload FROM {ks}.workflow_defs WHERE name = ? AND version = ?", True),
    "wfdef_latest": ("SELECT payload FROM {ks}.workflow_defs WHERE name = ? LIMIT 1", True),
    "wfdef_versions": ("SELECT version FROM {ks}.workflow_defs WHERE name = ?", True),
    "wfdef_all": ("SELECT name, version, payload FROM {ks}.workflow_defs", True),
    # event handlers
    "handler_insert": (
        "INSERT INTO {ks}.event_handlers (name, event, payload) VALUES (?, ?, ?) IF NOT EXISTS",
        False,
    ),
    "handler_update": (
        "UPDATE {ks}.event_handlers SET event = ?, payload = ? WHERE name = ? IF event = ?",
        False,
    ),
    "handler_delete": ("DELETE FROM {ks}.event_handlers WHERE name = ? IF event = ?", False),
    "handler_get": ("SELECT event, payload FROM {ks}.event_handlers WHERE name = ?", True),
    "handler_all": ("SELECT name, payload FROM {ks}.event_handlers", True),
    "handler_event_put": (
        "INSERT INTO {ks}.event_handlers_by_event (event, name) VALUES (?, ?)",
        True,
    ),
    "handler_event_get": ("SELECT name FROM {ks}.event_handlers_by_event WHERE event = ?", True),
    "handler_event_delete": (
        "DELETE FROM {ks}.event_handlers_by_event WHERE event = ? AND name = ?",
        True,
    ),
    # access keys
    "key_insert": (
        "INSERT INTO {ks}.access_keys (key_id, payload) VALUES (?, ?) IF NOT EXISTS",
        False,
    ),
    "key_get": ("SELECT payload FROM {ks}.access_keys WHERE key_id = ?", True),
    "key_all": ("SELECT key_id, payload FROM {ks}.access_keys", True),
    "key_delete": ("DELETE FROM {ks}.access_keys WHERE key_id = ? IF EXISTS", False),
}


@dataclass(frozen=True)
class Statements:
    """The prepared statements, one attribute per entry of ``_CQL``."""

    wf_create: PreparedStatement
    wf_fence: PreparedStatement
    wf_row: PreparedStatement
    wf_uniq: PreparedStatement
    wf_delete: PreparedStatement
    wf_delete_row: PreparedStatement
    wf_read_all: PreparedStatement
    wf_read_tasks: PreparedStatement
    wf_read_one: PreparedStatement
    wf_read_ttl: PreparedStatement
    wf_read_task: PreparedStatement
    wf_read_tasks_in: PreparedStatement
    wf_read_uniq: PreparedStatement
    wf_read_statuses: PreparedStatement
    wf_read_many: PreparedStatement
    wf_read_tasks_many: PreparedStatement
    lookup_put: PreparedStatement
    lookup_get: PreparedStatement
    lookup_delete: PreparedStatement
    index_put: PreparedStatement
    index_range: PreparedStatement
    index_delete: PreparedStatement
    corr_put: PreparedStatement
    corr_get: PreparedStatement
    corr_delete: PreparedStatement
    running_put: PreparedStatement
    running_get: PreparedStatement
    running_delete: PreparedStatement
    pending_put: PreparedStatement
    pending_get: PreparedStatement
    pending_delete: PreparedStatement
    log_put: PreparedStatement
    log_get: PreparedStatement
    log_all: PreparedStatement
    log_delete_all: PreparedStatement
    log_delete_task: PreparedStatement
    poll_put: PreparedStatement
    poll_get: PreparedStatement
    audit_put: PreparedStatement
    audit_get: PreparedStatement
    idem_insert: PreparedStatement
    idem_replace: PreparedStatement
    idem_delete: PreparedStatement
    taskdef_insert: PreparedStatement
    taskdef_update: PreparedStatement
    taskdef_delete: PreparedStatement
    taskdef_get: PreparedStatement
    taskdef_all: PreparedStatement
    wfdef_insert: PreparedStatement
    wfdef_update: PreparedStatement
    wfdef_delete: PreparedStatement
    wfdef_get: PreparedStatement
    wfdef_latest: PreparedStatement
    wfdef_versions: PreparedStatement
    wfdef_all: PreparedStatement
    handler_insert: PreparedStatement
    handler_update: PreparedStatement
    handler_delete: PreparedStatement
    handler_get: PreparedStatement
    handler_all: PreparedStatement
    handler_event_put: PreparedStatement
    handler_event_get: PreparedStatement
    handler_event_delete: PreparedStatement
    key_insert: PreparedStatement
    key_get: PreparedStatement
    key_all: PreparedStatement
    key_delete: PreparedStatement

    @classmethod
    def prepare_all(cls, session: CassandraSession, keyspace: str) -> Statements:
        """Prepare every statement for ``keyspace`` (blocking: run it in a thread).

        Table names are qualified with the keyspace (checked by StoreConfig to be a plain
        identifier) rather than relying on a session keyspace.
        """
        names = [f.name for f in fields(cls)]
        missing = set(_CQL) ^ set(names)
        if missing:
            raise RuntimeError(f"statements and their CQL disagree: {sorted(missing)}")
        return cls(
            **{
                n: session.prepare(_CQL[n][0].replace("{ks}", keyspace), idempotent=_CQL[n][1])
                for n in names
            }
        )
