"""``/api/tasks``: polls, updates, logs, task reads, queue information and task search."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from api_gateway import checks, polling, workflow_wait
from api_gateway.context import Gateway
from api_gateway.http import (
    body_json,
    body_object,
    body_text,
    ok_empty,
    ok_json,
    ok_text,
    path,
    q_int,
    q_list,
    q_str,
)
from api_gateway.query import parse_query
from api_gateway.routing import Endpoint, path_param, query, query_list
from podium.errors import InvalidArgument, NotFound
from podium.store import TASK_TERMINAL
from podium.types import JSON

TAG = "tasks"

SYSTEM_TASK_TYPES = frozenset(
    {"HTTP", "JOIN", "WAIT", "SUB_WORKFLOW", "START_WORKFLOW", "KAFKA_PUBLISH", "HUMAN",
     "EVENT", "FORK", "FORK_JOIN", "FORK_JOIN_DYNAMIC", "DECISION", "SWITCH", "DO_WHILE",
     "INLINE", "LAMBDA", "SET_VARIABLE", "TERMINATE", "JSON_JQ_TRANSFORM", "EXCLUSIVE_JOIN",
     "NOOP"}
)  # fmt: skip


def _poll_args(request: Request, gateway: Gateway) -> tuple[str, str | None, str | None]:
    return path(request, "tasktype"), q_str(request, "workerid"), q_str(request, "domain")


def _timeout(request: Request, gateway: Gateway, default: int) -> int:
    limit = gateway.limits.max_poll_timeout_ms
    timeout = q_int(request, "timeout", default, minimum=0) or 0
    if timeout > limit:
        seconds = f"{limit / 1000:g}"
        raise InvalidArgument(
            f"Long Poll Timeout value cannot be more than {seconds} seconds", field="timeout"
        )
    return timeout


async def batch_poll(request: Request, gateway: Gateway) -> Response:
    task_type, worker, domain = _poll_args(request, gateway)
    count = q_int(request, "count", 1, minimum=1, maximum=gateway.limits.max_poll_count) or 1
    timeout = _timeout(request, gateway, 100)
    return ok_json(await polling.poll(gateway, task_type, worker, domain, count, timeout))


async def single_poll(request: Request, gateway: Gateway) -> Response:
    task_type, worker, domain = _poll_args(request, gateway)
    timeout = _timeout(request, gateway, 100)
    tasks = await polling.poll(gateway, task_type, worker, domain, 1, timeout)
    return ok_json(tasks[0]) if tasks else ok_empty(204)


async def _update(gateway: Gateway, result: JSON) -> None:
    await gateway.decider.update_task(result)


async def update_task(request: Request, gateway: Gateway) -> Response:
    result = checks.task_result(await body_json(request))
    await _update(gateway, result)
    return ok_text(str(result["taskId"]))


async def update_task_v2(request: Request, gateway: Gateway) -> Response:
    """Update, then hand the worker its next task of the same type and domain (or 204)."""
    result = checks.task_result(await body_json(request))
    if result.get("status") in (None, "IN_PROGRESS") or result.get("extendLease"):
        await _update(gateway, result)
        return ok_empty(204)
    answer = await gateway.decider.update_task(result, return_task_type=True)
    task_type, domain = answer.get("taskType"), answer.get("domain")
    if not task_type:  # the update left the task as it was (late, or refused)
        task = await gateway.store.executions.get_task(str(result["taskId"]))
        task_type, domain = task["taskType"], task.get("domain")
    worker = result.get("workerId")
    next_task = await gateway.next_tasks.take(
        str(task_type), domain or None, worker if isinstance(worker, str) else None
    )
    return ok_json(next_task) if next_task else ok_empty(204)


def _status(request: Request) -> str:
    status = path(request, "status").upper()
    if status not in checks.TASK_RESULT_STATUSES:
        raise InvalidArgument(f"status: {status} is not a valid TaskResult status", field="status")
    return status


def _updated_task_id(answer: JSON, ref: str) -> str | None:
    changed = set(answer.get("changedTaskIds") or [])
    wf = answer.get("workflow") or {}
    hits = [
        t
        for t in wf.get("tasks") or []
        if t.get("taskId") in changed
        and (
            t.get("referenceTaskName") == ref
            or workflow_wait._base_ref(t["referenceTaskName"]) == ref
        )
    ]
    if not hits:
        return None
    return str(min(hits, key=lambda t: int(t.get("seq") or 0))["taskId"])


async def _update_by_ref(request: Request, gateway: Gateway) -> tuple[JSON, str]:
    workflow_id, ref = path(request, "workflowId"), path(request, "taskRefName")
    status = _status(request)
    output = await body_object(request, "output", required=False)
    answer = await gateway.decider.update_task_by_ref(
        workflow_id, ref, status, output, q_str(request, "workerid"), return_workflow=True
    )
    return answer, ref


async def update_by_ref(request: Request, gateway: Gateway) -> Response:
    answer, ref = await _update_by_ref(request, gateway)
    task_id = _updated_task_id(answer, ref) if answer.get("accepted") else None
    return ok_text(task_id) if task_id else ok_empty()


async def update_by_ref_sync(request: Request, gateway: Gateway) -> Response:
    answer, ref = await _update_by_ref(request, gateway)
    if not answer.get("accepted"):
        raise NotFound(
            f"Found no running task {ref} of workflow {answer.get('workflowId')} to update"
        )
    return ok_json(answer.get("workflow") or {})


async def _signal(request: Request, gateway: Gateway) -> JSON:
    output = await body_object(request, "output", required=False)
    return await gateway.decider.signal(
        path(request, "workflowId"), _status(request), output, return_workflow=True
    )


async def signal(request: Request, gateway: Gateway) -> Response:
    await _signal(request, gateway)
    return ok_empty()


async def signal_sync(request: Request, gateway: Gateway) -> Response:
    strategy = workflow_wait.return_strategy(q_str(request, "returnStrategy"))
    timeout_ms = q_int(request, "timeoutMillis", 5000, minimum=0, maximum=600_000) or 0
    workflow_id = path(request, "workflowId")
    answer = await _signal(request, gateway)
    if not answer.get("accepted"):
        raise NotFound(f"Found no blocked task in workflow {workflow_id} to signal")
    changed = list(answer.get("changedTaskIds") or [])
    outcome = await workflow_wait.wait_for(
        gateway,
        workflow_id,
        min(timeout_ms / 1000, gateway.limits.max_execute_wait_s),
        skip_task_ids=changed,
    )
    return ok_json(workflow_wait.signal_response(outcome, strategy))


async def add_log(request: Request, gateway: Gateway) -> Response:
    task_id = path(request, "taskId")
    line = await body_text(request)
    entry = {"log": line, "taskId": task_id, "createdTime": int(time.time() * 1000)}
    try:
        await gateway.store.executions.add_task_logs(task_id, [entry])
    except NotFound:
        raise NotFound(f"Task not found for taskId: {task_id}", taskId=task_id) from None
    return ok_empty()


async def get_logs(request: Request, gateway: Gateway) -> Response:
    logs = await gateway.store.executions.get_task_logs(path(request, "taskId"))
    return ok_json(logs) if logs else ok_empty(204)


async def get_task(request: Request, gateway: Gateway) -> Response:
    task_id = path(request, "taskId")
    try:
        return ok_json(await gateway.store.executions.get_task(task_id))
    except NotFound:
        raise NotFound(f"Task not found for taskId: {task_id}", taskId=task_id) from None


async def queue_sizes(request: Request, gateway: Gateway) -> Response:
    out: dict[str, int] = {}
    for task_type in q_list(request, "taskType"):
        out[task_type] = await gateway.queues.size(polling.task_queue(task_type, None))
    return ok_json(out)


async def queue_size(request: Request, gateway: Gateway) -> Response:
    task_type = q_str(request, "taskType")
    if not task_type:
        raise InvalidArgument("taskType is required", field="taskType")
    name = polling.task_queue(
        task_type,
        q_str(request, "domain"),
        q_str(request, "executionNamespace") or None,
        q_str(request, "isolationGroupId") or None,
    )
    return ok_json(await gateway.queues.size(name))


async def all_queues(request: Request, gateway: Gateway) -> Response:
    names = sorted(await gateway.queues.list_queues())
    return ok_json({name: await gateway.queues.size(name) for name in names})


async def all_queues_verbose(request: Request, gateway: Gateway) -> Response:
    out: dict[str, dict[str, dict[str, int]]] = {}
    for name in sorted(await gateway.queues.list_queues()):
        shards = await gateway.queues.details(name)
        out[name] = {
            shard: {
                "size": int(d.get("ready", 0)) + int(d.get("delayed", 0)),
                "uacked": int(d.get("leased", 0)),
            }
            for shard, d in shards.items()
        }
    return ok_json(out)


async def poll_data(request: Request, gateway: Gateway) -> Response:
    task_type = q_str(request, "taskType")
    if not task_type:
        raise InvalidArgument("taskType is required", field="taskType")
    return ok_json(await gateway.store.executions.get_poll_data(task_type))


async def all_poll_data(request: Request, gateway: Gateway) -> Response:
    types = sorted({n.rpartition(":")[2] for n in await gateway.queues.list_queues()})
    out: list[JSON] = []
    for task_type in types:
        if not task_type.startswith("_"):
            out.extend(await gateway.store.executions.get_poll_data(task_type))
    return ok_json(out)


async def requeue(request: Request, gateway: Gateway) -> Response:
    """Re-push the SCHEDULED tasks of a type whose queue message went missing."""
    task_type = path(request, "taskType")
    polling.task_queue(task_type, None)
    count = 0
    workflows: set[str] = set()
    for task in await gateway.store.executions.pending_tasks_by_type(task_type):
        if task.get("taskType") in SYSTEM_TASK_TYPES or task.get("status") in TASK_TERMINAL:
            continue
        if task.get("status") != "SCHEDULED":
            continue  # IN_PROGRESS: a worker holds it; re-pushing would hand it out twice
        count += 1
        workflows.add(str(task["workflowInstanceId"]))
    for workflow_id in sorted(workflows):
        # A decide re-pushes every SCHEDULED task message of the workflow that is missing.
        try:
            await gateway.decider.decide(workflow_id)
        except NotFound:
            continue
    return ok_text(str(count))


async def _search(request: Request, gateway: Gateway, full: bool) -> Response:
    criteria = parse_query(
        q_str(request, "query"),
        free_text=q_str(request, "freeText"),
        sort=q_str(request, "sort"),
        start=q_int(request, "start", 0, minimum=0) or 0,
        size=q_int(request, "size", 100, minimum=0) or 0,
    )
    return ok_json(await gateway.store.executions.search_tasks(criteria, full=full))


async def search(request: Request, gateway: Gateway) -> Response:
    return await _search(request, gateway, False)


async def search_v2(request: Request, gateway: Gateway) -> Response:
    return await _search(request, gateway, True)


_BASE = "/api/tasks"
_TYPE = path_param("tasktype", "task type")
_POLL = (_TYPE, query("workerid"), query("domain"))
_TIMEOUT = query("timeout", "integer", "long poll, ms (at most 5000)", minimum=0, default=100)
_WF = path_param("workflowId")
_REF = path_param("taskRefName")
_STATUS = path_param("status", "a TaskResult status")
_TASK_ID = path_param("taskId")
_OUTPUT = {"type": "object"}
_SEARCH = (
    query("start", "integer", minimum=0, default=0),
    query("size", "integer", minimum=0, default=100),
    query("sort"),
    query("freeText"),
    query("query"),
)

ENDPOINTS = [
    Endpoint("GET", f"{_BASE}/poll/batch/{{tasktype}}", batch_poll, "Batch poll (long poll)", TAG,
             params=(*_POLL, query("count", "integer", minimum=1, default=1), _TIMEOUT),
             ok_schema={"type": "array", "items": "#Task"}),
    Endpoint("GET", f"{_BASE}/poll/{{tasktype}}", single_poll, "Poll for one task", TAG,
             params=(*_POLL, _TIMEOUT), ok_schema="#Task", also={204: ("empty", None)}),
    Endpoint("POST", f"{_BASE}/update-v2", update_task_v2, "Update a task; get the next one", TAG,
             body="#TaskResult", ok_schema="#Task", also={204: ("empty", None)},
             errors=(400, 404)),
    Endpoint("GET", f"{_BASE}/queue/sizes", queue_sizes, "Queue sizes of task types", TAG,
             params=(query_list("taskType"),),
             ok_schema={"type": "object", "additionalProperties": {"type": "integer"}}),
    Endpoint("GET", f"{_BASE}/queue/size", queue_size, "Size of one task queue", TAG,
             params=(query("taskType"), query("domain"), query("isolationGroupId"),
                     query("executionNamespace")), ok_schema={"type": "integer"}),
    Endpoint("GET", f"{_BASE}/queue/all/verbose", all_queues_verbose, "Every queue, per shard", TAG,
             ok_schema={"type": "object"}, errors=()),
    Endpoint("GET", f"{_BASE}/queue/all", all_queues, "Every queue and its size", TAG,
             ok_schema={"type": "object", "additionalProperties": {"type": "integer"}},
             errors=()),
    Endpoint("GET", f"{_BASE}/queue/polldata/all", all_poll_data, "Poll data of every task type",
             TAG, ok_schema={"type": "array", "items": "#PollData"}, errors=()),
    Endpoint("GET", f"{_BASE}/queue/polldata", poll_data, "Poll data of a task type", TAG,
             params=(query("taskType"),), ok_schema={"type": "array", "items": "#PollData"}),
    Endpoint("POST", f"{_BASE}/queue/requeue/{{taskType}}", requeue, "Requeue the pending tasks "
             "of a type", TAG, params=(path_param("taskType"),), body_required=False,
             ok_kind="text"),
    Endpoint("GET", f"{_BASE}/search-v2", search_v2, "Search tasks (full records)", TAG,
             params=_SEARCH, ok_schema="#SearchResultTask"),
    Endpoint("GET", f"{_BASE}/search", search, "Search tasks (summaries)", TAG, params=_SEARCH,
             ok_schema="#SearchResultTaskSummary"),
    Endpoint("POST", f"{_BASE}/{{workflowId}}/{{status}}/signal/sync", signal_sync, "Complete the "
             "blocking task of a workflow and wait", TAG,
             params=(_WF, _STATUS,
                     query("returnStrategy", enum=list(workflow_wait.RETURN_STRATEGIES)),
                     query("timeoutMillis", "integer", minimum=0, maximum=600_000)),
             body=_OUTPUT, body_required=False, ok_schema="#SignalResponse",
             errors=(400, 404, 409)),
    Endpoint("POST", f"{_BASE}/{{workflowId}}/{{status}}/signal", signal, "Complete the blocking "
             "task of a workflow", TAG, params=(_WF, _STATUS), body=_OUTPUT,
             body_required=False, ok_kind="empty", errors=(400, 404, 409)),
    Endpoint("POST", f"{_BASE}/{{workflowId}}/{{taskRefName}}/{{status}}/sync", update_by_ref_sync,
             "Update a task by reference name; get the workflow", TAG,
             params=(_WF, _REF, _STATUS, query("workerid")), body=_OUTPUT, body_required=False,
             ok_schema="#Workflow", errors=(400, 404, 409)),
    Endpoint("POST", f"{_BASE}/{{taskId}}/log", add_log, "Append a log line (raw text body)", TAG,
             params=(_TASK_ID,), body={"type": "string"}, body_kind="text", ok_kind="empty",
             errors=(404,)),
    Endpoint("GET", f"{_BASE}/{{taskId}}/log", get_logs, "Logs of a task", TAG, params=(_TASK_ID,),
             ok_schema={"type": "array", "items": "#TaskExecLog"}, also={204: ("empty", None)},
             errors=()),
    Endpoint("POST", f"{_BASE}/{{workflowId}}/{{taskRefName}}/{{status}}", update_by_ref, "Update "
             "a task by reference name", TAG, params=(_WF, _REF, _STATUS, query("workerid")),
             body=_OUTPUT, body_required=False, ok_kind="text", errors=(400, 404, 409)),
    Endpoint("GET", f"{_BASE}/{{taskId}}", get_task, "Get a task", TAG, params=(_TASK_ID,),
             ok_schema="#Task", errors=(404,)),
    Endpoint("POST", _BASE, update_task, "Update a task (worker result)", TAG, body="#TaskResult",
             ok_kind="text", errors=(400, 404)),
]  # fmt: skip
