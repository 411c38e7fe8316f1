"""``/api/workflow``: start, execute, read, control and search workflows.

Reads go to the store; every change goes through the decider.
"""

from __future__ import annotations

import contextlib
import uuid

from starlette.requests import Request
from starlette.responses import Response

from api_gateway import checks, workflow_wait
from api_gateway.context import Gateway
from api_gateway.http import (
    body_json,
    body_object,
    ok_empty,
    ok_json,
    ok_text,
    opt_map,
    path,
    path_int,
    q_bool,
    q_int,
    q_list,
    q_str,
)
from api_gateway.query import bound_range, parse_query
from api_gateway.routing import Endpoint, path_param, query, query_list
from podium.errors import Conflict, InvalidArgument, NotFound
from podium.store import WORKFLOW_TERMINAL, SearchQuery
from podium.types import JSON

TAG = "workflow"


async def read_workflow(gateway: Gateway, workflow_id: str, include_tasks: bool = True) -> JSON:
    try:
        return await gateway.store.executions.get_workflow(workflow_id, include_tasks=include_tasks)
    except NotFound:
        raise NotFound(
            f"No such workflow found by id: {workflow_id}", workflowId=workflow_id
        ) from None


async def start(gateway: Gateway, request: JSON) -> str:
    return await gateway.decider.start_workflow(request)


async def start_workflow(request: Request, gateway: Gateway) -> Response:
    body = checks.start_request(await body_json(request), gateway.definitions)
    return ok_text(await start(gateway, body))


async def start_by_name(request: Request, gateway: Gateway) -> Response:
    body = await body_json(request, required=False)
    if body is not None and not isinstance(body, dict):
        raise InvalidArgument("The workflow input must be a JSON object")
    start_request = {
        "name": path(request, "name"),
        "version": q_int(request, "version", None),
        "correlationId": q_str(request, "correlationId"),
        "priority": q_int(request, "priority", 0, minimum=0, maximum=99),
        "input": body or {},
    }
    return ok_text(await start(gateway, checks.start_request(start_request, gateway.definitions)))


async def test_workflow(request: Request, gateway: Gateway) -> Response:
    """Conductor's test run: the workflow run with mocked task results, nothing stored."""
    body = await body_object(request, "WorkflowTestRequest")
    mocks = checks.task_mocks(body.get("taskRefToMockOutput"))
    test_only = ("taskRefToMockOutput", "subWorkflowTestRequest")
    start_request = checks.start_request(
        {k: v for k, v in body.items() if k not in test_only}, gateway.definitions
    )
    workflow = await gateway.decider.test_workflow({**start_request, "taskRefToMockOutput": mocks})
    return ok_json(workflow)


async def execute(request: Request, gateway: Gateway) -> Response:
    """Start, then wait until the workflow ends or blocks (Conductor's execute)."""
    body = await body_object(request, "StartWorkflowRequest", required=False)
    body["name"] = path(request, "name")
    body["version"] = path_int(request, "version")
    request_id = q_str(request, "requestId") or str(uuid.uuid4())
    refs = q_list(request, "waitUntilTaskRef")
    wait_s = q_int(request, "waitForSeconds", 10, minimum=0) or 10
    strategy = workflow_wait.return_strategy(q_str(request, "returnStrategy"))
    workflow_id = await start(gateway, checks.start_request(body, gateway.definitions))
    outcome = await workflow_wait.wait_for(
        gateway, workflow_id, min(wait_s, gateway.limits.max_execute_wait_s), refs=refs
    )
    return ok_json(workflow_wait.signal_response(outcome, strategy, request_id))


async def get_workflow(request: Request, gateway: Gateway) -> Response:
    include = q_bool(request, "includeTasks", True)
    wf = await read_workflow(gateway, path(request, "workflowId"), include)
    if not include:
        wf["tasks"] = []
    return ok_json(wf)


async def workflow_status(request: Request, gateway: Gateway) -> Response:
    wf = await read_workflow(gateway, path(request, "workflowId"), include_tasks=False)
    out = {
        "workflowId": wf.get("workflowId"),
        "correlationId": wf.get("correlationId"),
        "status": wf.get("status"),
    }
    if q_bool(request, "includeOutput", False):
        out["output"] = wf.get("output")
    if q_bool(request, "includeVariables", False):
        out["variables"] = wf.get("variables")
    return ok_json(out)


async def workflow_tasks(request: Request, gateway: Gateway) -> Response:
    start_at = q_int(request, "start", 0, minimum=0) or 0
    count = q_int(request, "count", 15, minimum=0) or 0
    statuses = {s.upper() for s in q_list(request, "status")}
    wf = await read_workflow(gateway, path(request, "workflowId"))
    tasks = [t for t in wf.get("tasks") or [] if not statuses or t.get("status") in statuses]
    return ok_json({"totalHits": len(tasks), "results": tasks[start_at : start_at + count]})


async def correlated(request: Request, gateway: Gateway) -> Response:
    found = await gateway.store.executions.workflows_by_correlation_id(
        path(request, "name"),
        path(request, "correlationId"),
        include_closed=q_bool(request, "includeClosed", False),
        include_tasks=q_bool(request, "includeTasks", False),
    )
    return ok_json(found)


async def correlated_many(request: Request, gateway: Gateway) -> Response:
    ids = checks.id_list(await body_json(request), gateway.limits.max_bulk_ids, "correlationIds")
    name = path(request, "name")
    closed = q_bool(request, "includeClosed", False)
    tasks = q_bool(request, "includeTasks", False)
    out: dict[str, list[JSON]] = {}
    for corr in ids:
        out[corr] = await gateway.store.executions.workflows_by_correlation_id(
            name, corr, include_closed=closed, include_tasks=tasks
        )
    return ok_json(out)


async def running(request: Request, gateway: Gateway) -> Response:
    name = path(request, "name")
    version = q_int(request, "version", 1)
    start_time = q_int(request, "startTime", None)
    end_time = q_int(request, "endTime", None)
    if start_time and end_time:
        if start_time > end_time:
            return ok_json([])
        lo, hi = bound_range(start_time, end_time)
        if lo is not None and hi is not None and lo > hi:
            return ok_json([])
        criteria = SearchQuery(
            workflow_types=(name,), start_time_from_ms=lo, start_time_to_ms=hi, size=5000
        )
        found = await gateway.store.executions.search_workflows(criteria, full=True)
        ids = [
            str(wf["workflowId"])
            for wf in found["results"]
            if version is None or wf.get("workflowVersion") == version
        ]
        return ok_json(ids)
    return ok_json(await gateway.store.executions.running_workflow_ids(name, version))


async def decide(request: Request, gateway: Gateway) -> Response:
    await gateway.decider.decide(path(request, "workflowId"))
    return ok_empty()


async def pause(request: Request, gateway: Gateway) -> Response:
    await gateway.decider.pause(path(request, "workflowId"))
    return ok_empty()


async def resume(request: Request, gateway: Gateway) -> Response:
    await gateway.decider.resume(path(request, "workflowId"))
    return ok_empty()


async def skip_task(request: Request, gateway: Gateway) -> Response:
    body = await body_object(request, "SkipTaskRequest", required=False)
    task_input = opt_map(body, "taskInput", "SkipTaskRequest")
    task_output = opt_map(body, "taskOutput", "SkipTaskRequest")
    await gateway.decider.skip_task(
        path(request, "workflowId"), path(request, "taskReferenceName"), task_input, task_output
    )
    return ok_empty()


async def rerun(request: Request, gateway: Gateway) -> Response:
    body = checks.rerun_request(await body_json(request, required=False))
    answer = await gateway.decider.rerun(path(request, "workflowId"), body)
    return ok_text(str(answer.get("workflowId") or path(request, "workflowId")))


async def restart(request: Request, gateway: Gateway) -> Response:
    latest = q_bool(request, "useLatestDefinitions", False)
    await gateway.decider.restart(path(request, "workflowId"), use_latest_definitions=latest)
    return ok_empty(204)


async def retry(request: Request, gateway: Gateway) -> Response:
    resume_subs = q_bool(request, "resumeSubworkflowTasks", False)
    await gateway.decider.retry(path(request, "workflowId"), resume_subworkflow_tasks=resume_subs)
    return ok_empty(204)


async def terminate(request: Request, gateway: Gateway) -> Response:
    await gateway.decider.terminate(path(request, "workflowId"), q_str(request, "reason"))
    return ok_empty()


async def remove_one(gateway: Gateway, workflow_id: str, archive: bool) -> None:
    wf = await read_workflow(gateway, workflow_id, include_tasks=False)
    if archive and wf.get("status") not in WORKFLOW_TERMINAL:
        raise InvalidArgument(
            f"Cannot archive workflow: {workflow_id} with status: {wf.get('status')}"
        )
    await gateway.decider.remove(workflow_id)


async def terminate_remove_one(
    gateway: Gateway, workflow_id: str, reason: str | None, archive: bool
) -> None:
    with contextlib.suppress(Conflict):  # already finished: remove it all the same
        await gateway.decider.terminate(workflow_id, reason)
    await remove_one(gateway, workflow_id, archive)


async def remove(request: Request, gateway: Gateway) -> Response:
    archive = q_bool(request, "archiveWorkflow", True)
    await remove_one(gateway, path(request, "workflowId"), archive)
    return ok_empty()


async def terminate_remove(request: Request, gateway: Gateway) -> Response:
    await terminate_remove_one(
        gateway,
        path(request, "workflowId"),
        q_str(request, "reason"),
        q_bool(request, "archiveWorkflow", True),
    )
    return ok_empty()


def search_query(request: Request) -> SearchQuery:
    return parse_query(
        q_str(request, "query"),
        free_text=q_str(request, "freeText"),
        sort=q_str(request, "sort"),
        start=q_int(request, "start", 0, minimum=0) or 0,
        size=q_int(request, "size", 100, minimum=0) or 0,
    )


async def search(request: Request, gateway: Gateway) -> Response:
    return ok_json(await gateway.store.executions.search_workflows(search_query(request)))


async def search_v2(request: Request, gateway: Gateway) -> Response:
    found = await gateway.store.executions.search_workflows(search_query(request), full=True)
    for wf in found["results"]:
        wf.pop("tasks", None)
    return ok_json(found)


async def _by_tasks(request: Request, gateway: Gateway) -> list[str]:
    tasks = await gateway.store.executions.search_tasks(search_query(request), full=True)
    return list(dict.fromkeys(str(t["workflowInstanceId"]) for t in tasks["results"]))


async def search_by_tasks(request: Request, gateway: Gateway) -> Response:
    results = []
    for wid in await _by_tasks(request, gateway):
        found = await gateway.store.executions.search_workflows(SearchQuery(workflow_id=wid))
        results.extend(found["results"])
    return ok_json({"totalHits": len(results), "results": results})


async def search_by_tasks_v2(request: Request, gateway: Gateway) -> Response:
    results = []
    for wid in await _by_tasks(request, gateway):
        try:
            results.append(await gateway.store.executions.get_workflow(wid, include_tasks=False))
        except NotFound:
            continue
    return ok_json({"totalHits": len(results), "results": results})


_BASE = "/api/workflow"
_ID = path_param("workflowId")
_NAME = path_param("name", "workflow name")
_INCLUDE_TASKS = query("includeTasks", "boolean")
_SEARCH = (
    query("start", "integer", minimum=0, default=0),
    query("size", "integer", minimum=0, maximum=5000, default=100),
    query("sort"),
    query("freeText"),
    query("query"),
)
_ERR_CTRL = (400, 404, 409)

ENDPOINTS = [
    # before /workflow/{name}: "test" is this endpoint, not a workflow of that name
    Endpoint("POST", f"{_BASE}/test", test_workflow, "Run a workflow with mocked task results "
             "(nothing is stored)", TAG, body="#WorkflowTestRequest", ok_schema="#Workflow",
             errors=(400, 404)),
    Endpoint("POST", f"{_BASE}/execute/{{name}}/{{version}}", execute, "Start and wait until the "
             "workflow ends or blocks", TAG,
             params=(_NAME, path_param("version", integer=True), query("requestId"),
                     query("waitUntilTaskRef"), query("waitForSeconds", "integer", minimum=0),
                     query("consistency"),
                     query("returnStrategy", enum=list(workflow_wait.RETURN_STRATEGIES))),
             body="#StartWorkflowRequest", body_required=False, ok_schema="#SignalResponse",
             errors=(400, 404, 409)),
    Endpoint("GET", f"{_BASE}/search-v2", search_v2, "Search workflows (full records)", TAG,
             params=_SEARCH, ok_schema="#SearchResultWorkflow"),
    Endpoint("GET", f"{_BASE}/search-by-tasks-v2", search_by_tasks_v2, "Search workflows by their "
             "tasks (full records)", TAG, params=_SEARCH, ok_schema="#SearchResultWorkflow"),
    Endpoint("GET", f"{_BASE}/search-by-tasks", search_by_tasks, "Search workflows by their tasks",
             TAG, params=_SEARCH, ok_schema="#SearchResultWorkflowSummary"),
    Endpoint("GET", f"{_BASE}/search", search, "Search workflows", TAG, params=_SEARCH,
             ok_schema="#SearchResultWorkflowSummary"),
    Endpoint("GET", f"{_BASE}/running/{{name}}", running, "Ids of running workflows of a name",
             TAG, params=(_NAME, query("version", "integer"), query("startTime", "integer"),
                          query("endTime", "integer")),
             ok_schema={"type": "array", "items": {"type": "string"}}),
    Endpoint("PUT", f"{_BASE}/decide/{{workflowId}}", decide, "Decide a workflow now", TAG,
             params=(_ID,), body_required=False, ok_kind="empty", errors=_ERR_CTRL),
    Endpoint("GET", f"{_BASE}/{{name}}/correlated/{{correlationId}}", correlated, "Workflows with "
             "a correlation id", TAG, params=(_NAME, path_param("correlationId"),
                                               query("includeClosed", "boolean"), _INCLUDE_TASKS),
             ok_schema={"type": "array", "items": "#Workflow"}),
    Endpoint("POST", f"{_BASE}/{{name}}/correlated", correlated_many, "Workflows for several "
             "correlation ids", TAG,
             params=(_NAME, query("includeClosed", "boolean"), _INCLUDE_TASKS),
             body={"type": "array", "items": {"type": "string"}},
             ok_schema={"type": "object", "additionalProperties": {
                 "type": "array", "items": "#Workflow"}}),
    Endpoint("GET", f"{_BASE}/{{workflowId}}/status", workflow_status, "Status of a workflow", TAG,
             params=(_ID, query("includeOutput", "boolean"), query("includeVariables", "boolean")),
             ok_schema="#WorkflowStatus", errors=(400, 404)),
    Endpoint("GET", f"{_BASE}/{{workflowId}}/tasks", workflow_tasks, "Tasks of a workflow, paged",
             TAG, params=(_ID, query("start", "integer", minimum=0), query("count", "integer",
                                                                   minimum=0),
                          query_list("status")),
             ok_schema="#SearchResultTask", errors=(400, 404)),
    Endpoint("PUT", f"{_BASE}/{{workflowId}}/pause", pause, "Pause a workflow", TAG, params=(_ID,),
             body_required=False, ok_kind="empty", errors=_ERR_CTRL),
    Endpoint("PUT", f"{_BASE}/{{workflowId}}/resume", resume, "Resume a paused workflow", TAG,
             params=(_ID,), body_required=False, ok_kind="empty", errors=_ERR_CTRL),
    Endpoint("PUT", f"{_BASE}/{{workflowId}}/skiptask/{{taskReferenceName}}", skip_task, "Skip a "
             "task that has not been scheduled yet", TAG,
             params=(_ID, path_param("taskReferenceName")), body="#SkipTaskRequest",
             body_required=False, ok_kind="empty", errors=_ERR_CTRL),
    Endpoint("POST", f"{_BASE}/{{workflowId}}/rerun", rerun, "Rerun a finished workflow", TAG,
             params=(_ID,), body="#RerunWorkflowRequest", body_required=False, ok_kind="text",
             errors=_ERR_CTRL),
    Endpoint("POST", f"{_BASE}/{{workflowId}}/restart", restart, "Restart a finished workflow",
             TAG, params=(_ID, query("useLatestDefinitions", "boolean")), body_required=False,
             ok=204, ok_kind="empty", errors=_ERR_CTRL),
    Endpoint("POST", f"{_BASE}/{{workflowId}}/retry", retry, "Retry the last failed task", TAG,
             params=(_ID, query("resumeSubworkflowTasks", "boolean")), body_required=False,
             ok=204, ok_kind="empty", errors=_ERR_CTRL),
    Endpoint("DELETE", f"{_BASE}/{{workflowId}}/remove", remove, "Remove a workflow", TAG,
             params=(_ID, query("archiveWorkflow", "boolean")), body_required=False,
             ok_kind="empty", errors=(400, 404)),
    Endpoint("DELETE", f"{_BASE}/{{workflowId}}/terminate-remove", terminate_remove, "Terminate "
             "and remove a workflow", TAG,
             params=(_ID, query("reason"), query("archiveWorkflow", "boolean")),
             body_required=False, ok_kind="empty", errors=_ERR_CTRL),
    Endpoint("GET", f"{_BASE}/{{workflowId}}", get_workflow, "Get a workflow", TAG,
             params=(_ID, _INCLUDE_TASKS), ok_schema="#Workflow", errors=(400, 404)),
    Endpoint("DELETE", f"{_BASE}/{{workflowId}}", terminate, "Terminate a workflow", TAG,
             params=(_ID, query("reason"), query("triggerFailureWorkflow", "boolean")),
             body_required=False, ok_kind="empty", errors=_ERR_CTRL),
    Endpoint("POST", f"{_BASE}/{{name}}", start_by_name, "Start a workflow by name", TAG,
             params=(_NAME, query("version", "integer"), query("correlationId"),
                     query("priority", "integer", minimum=0, maximum=99)),
             body={"type": "object"}, body_required=False, ok_kind="text", errors=(400, 404)),
    Endpoint("POST", _BASE, start_workflow, "Start a workflow", TAG, body="#StartWorkflowRequest",
             ok_kind="text", errors=(400, 404, 409)),
]  # fmt: skip
