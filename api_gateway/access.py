"""Which roles may call each route, and the check every request passes before its handler.

:data:`POLICY` gives every endpoint (method and path, as declared in the resource modules) a
:class:`Rule`. :func:`api_gateway.routing.routes` asks :func:`rule_for` for each endpoint and
refuses to build a route that has none, so a new endpoint cannot be served until its
permission is written here; :func:`api_gateway.openapi.build` shows the same rules in the
document (``x-podium-roles``).

A worker key passes a worker rule only for its own task types. The type comes from where the
request names it (the poll path, a ``taskType`` parameter) or, when the request names a task,
from the task as the store has it: a type the client states about an existing task is never
trusted. Admin, operator and viewer keys never cost a store read here.

With authentication off every route is open, as it always was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from starlette.requests import Request
from starlette.responses import Response

from api_gateway import checks
from api_gateway.context import Gateway
from api_gateway.errors import error_response
from api_gateway.grants import ADMIN, OPERATOR, ROLES, VIEWER, WORKER, Grant
from api_gateway.http import body_json, path, q_list, q_str
from api_gateway.workflow_wait import _base_ref
from podium.errors import InvalidArgument, NotFound

TaskTypeSource = Literal["path", "query", "query_list", "body_task", "path_task", "task_ref"]


@dataclass(frozen=True)
class TaskTypeFrom:
    """Where a request names the task type(s) a worker key is checked against.

    ``path``/``query``/``query_list``: the parameter ``name`` is the task type (every value of
    a list must be allowed); ``body_task``: the TaskResult body's ``taskId``, looked up in the
    store; ``path_task``: the ``taskId`` path parameter, looked up; ``task_ref``: the task of
    the ``workflowId`` path parameter whose reference name is ``taskRefName``.
    """

    kind: TaskTypeSource
    name: str = ""

    def describe(self) -> str:
        return {
            "path": f"the task type in the path ({{{self.name}}})",
            "query": f"the task type in the {self.name} parameter",
            "query_list": f"every task type in the {self.name} parameter",
            "body_task": "the type of the task named by the body's taskId",
            "path_task": "the type of the task named in the path",
            "task_ref": "the type of the workflow's task with that reference name",
        }[self.kind]


@dataclass(frozen=True)
class Rule:
    """The roles that may call an endpoint.

    With ``task_types`` the worker role among them passes only for the key's own task types;
    without, a worker passes like any other listed role (only ``GET /api/auth/me``).
    """

    roles: tuple[str, ...]
    task_types: TaskTypeFrom | None = None
    #: Served to anyone, with or without a token (health, token exchange, this document).
    public: bool = False

    def __post_init__(self) -> None:
        if self.task_types is not None and WORKER not in self.roles:
            raise ValueError("a rule that names a task type source must admit workers")
        if not self.public and not self.roles:
            raise ValueError("a rule that is not public needs at least one role")

    def describe(self) -> str:
        """One sentence for the OpenAPI document."""
        if self.public:
            return "Public: no token needed."
        if set(self.roles) == set(ROLES) and self.task_types is None:
            return "Any valid key."
        others = [r for r in self.roles if r != WORKER]
        text = "Roles: " + ", ".join(others)
        if self.task_types is not None:
            text += f"; worker keys for their task types only ({self.task_types.describe()})"
        return text + "."


PUBLIC = Rule((), public=True)
ANY_KEY = Rule(ROLES)
READ = Rule((ADMIN, OPERATOR, VIEWER))
OPERATE = Rule((ADMIN, OPERATOR))
ADMIN_ONLY = Rule((ADMIN,))


def work(source: TaskTypeFrom) -> Rule:
    """A worker's action (poll, update, log): operators may do it for any type."""
    return Rule((ADMIN, OPERATOR, WORKER), source)


def read_work(source: TaskTypeFrom) -> Rule:
    """A read workers need for their own types; viewers may read it for any type."""
    return Rule((ADMIN, OPERATOR, VIEWER, WORKER), source)


_TASKTYPE_PATH = TaskTypeFrom("path", "tasktype")
_BODY_TASK = TaskTypeFrom("body_task")
_PATH_TASK = TaskTypeFrom("path_task")
_TASK_REF = TaskTypeFrom("task_ref")

#: (method, path as declared) -> rule. Every endpoint must have exactly one entry.
POLICY: dict[tuple[str, str], Rule] = {
    # public
    ("GET", "/health"): PUBLIC,
    ("GET", "/api/health"): PUBLIC,
    ("POST", "/api/token"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    # the caller's own key, and key management
    ("GET", "/api/auth/me"): ANY_KEY,
    ("GET", "/api/admin/keys"): ADMIN_ONLY,
    ("POST", "/api/admin/keys"): ADMIN_ONLY,
    ("DELETE", "/api/admin/keys/{keyId}"): ADMIN_ONLY,
    # metadata
    ("POST", "/api/metadata/workflow/validate"): READ,
    ("POST", "/api/metadata/workflow"): OPERATE,
    ("PUT", "/api/metadata/workflow"): OPERATE,
    ("GET", "/api/metadata/workflow/names-and-versions"): READ,
    ("GET", "/api/metadata/workflow/names"): READ,
    ("GET", "/api/metadata/workflow/latest-versions"): READ,
    ("GET", "/api/metadata/workflow/{name}/versions"): READ,
    ("GET", "/api/metadata/workflow/{name}"): READ,
    ("GET", "/api/metadata/workflow"): READ,
    ("DELETE", "/api/metadata/workflow/{name}/{version}"): OPERATE,
    ("POST", "/api/metadata/taskdefs"): OPERATE,
    ("PUT", "/api/metadata/taskdefs"): OPERATE,
    ("GET", "/api/metadata/taskdefs"): READ,
    ("GET", "/api/metadata/taskdefs/{tasktype}"): read_work(_TASKTYPE_PATH),
    ("DELETE", "/api/metadata/taskdefs/{tasktype}"): OPERATE,
    # workflows in bulk
    ("PUT", "/api/workflow/bulk/pause"): OPERATE,
    ("PUT", "/api/workflow/bulk/resume"): OPERATE,
    ("POST", "/api/workflow/bulk/restart"): OPERATE,
    ("POST", "/api/workflow/bulk/retry"): OPERATE,
    ("POST", "/api/workflow/bulk/terminate"): OPERATE,
    ("DELETE", "/api/workflow/bulk/remove"): OPERATE,
    ("DELETE", "/api/workflow/bulk/terminate-remove"): OPERATE,
    ("POST", "/api/workflow/bulk/search"): READ,
    # workflows
    ("POST", "/api/workflow/test"): OPERATE,
    ("POST", "/api/workflow/execute/{name}/{version}"): OPERATE,
    ("GET", "/api/workflow/search-v2"): READ,
    ("GET", "/api/workflow/search-by-tasks-v2"): READ,
    ("GET", "/api/workflow/search-by-tasks"): READ,
    ("GET", "/api/workflow/search"): READ,
    ("GET", "/api/workflow/running/{name}"): READ,
    ("PUT", "/api/workflow/decide/{workflowId}"): OPERATE,
    ("GET", "/api/workflow/{name}/correlated/{correlationId}"): READ,
    ("POST", "/api/workflow/{name}/correlated"): READ,
    ("GET", "/api/workflow/{workflowId}/status"): READ,
    ("GET", "/api/workflow/{workflowId}/tasks"): READ,
    ("PUT", "/api/workflow/{workflowId}/pause"): OPERATE,
    ("PUT", "/api/workflow/{workflowId}/resume"): OPERATE,
    ("PUT", "/api/workflow/{workflowId}/skiptask/{taskReferenceName}"): OPERATE,
    ("POST", "/api/workflow/{workflowId}/rerun"): OPERATE,
    ("POST", "/api/workflow/{workflowId}/restart"): OPERATE,
    ("POST", "/api/workflow/{workflowId}/retry"): OPERATE,
    ("DELETE", "/api/workflow/{workflowId}/remove"): OPERATE,
    ("DELETE", "/api/workflow/{workflowId}/terminate-remove"): OPERATE,
    ("GET", "/api/workflow/{workflowId}"): READ,
    ("DELETE", "/api/workflow/{workflowId}"): OPERATE,
    ("POST", "/api/workflow/{name}"): OPERATE,
    ("POST", "/api/workflow"): OPERATE,
    # tasks: a worker's own work
    ("GET", "/api/tasks/poll/batch/{tasktype}"): work(_TASKTYPE_PATH),
    ("GET", "/api/tasks/poll/{tasktype}"): work(_TASKTYPE_PATH),
    ("POST", "/api/tasks/update-v2"): work(_BODY_TASK),
    ("POST", "/api/tasks"): work(_BODY_TASK),
    ("POST", "/api/tasks/{workflowId}/{taskRefName}/{status}/sync"): work(_TASK_REF),
    ("POST", "/api/tasks/{workflowId}/{taskRefName}/{status}"): work(_TASK_REF),
    ("POST", "/api/tasks/{taskId}/log"): work(_PATH_TASK),
    ("GET", "/api/tasks/{taskId}/log"): read_work(_PATH_TASK),
    ("GET", "/api/tasks/{taskId}"): read_work(_PATH_TASK),
    ("GET", "/api/tasks/queue/sizes"): read_work(TaskTypeFrom("query_list", "taskType")),
    ("GET", "/api/tasks/queue/size"): read_work(TaskTypeFrom("query", "taskType")),
    ("GET", "/api/tasks/queue/polldata"): read_work(TaskTypeFrom("query", "taskType")),
    # tasks: everything else
    ("GET", "/api/tasks/queue/all/verbose"): READ,
    ("GET", "/api/tasks/queue/all"): READ,
    ("GET", "/api/tasks/queue/polldata/all"): READ,
    ("POST", "/api/tasks/queue/requeue/{taskType}"): OPERATE,
    ("GET", "/api/tasks/search-v2"): READ,
    ("GET", "/api/tasks/search"): READ,
    # The blocking task of a workflow may be of any type: an operator's action.
    ("POST", "/api/tasks/{workflowId}/{status}/signal/sync"): OPERATE,
    ("POST", "/api/tasks/{workflowId}/{status}/signal"): OPERATE,
    # admin and monitoring
    ("GET", "/api/admin/cluster"): READ,
    ("GET", "/api/admin/queue-stats"): READ,
    ("GET", "/api/admin/config"): READ,
    ("GET", "/api/admin/task/{tasktype}"): READ,
    ("POST", "/api/admin/sweep/requeue/{workflowId}"): OPERATE,
    ("POST", "/api/admin/consistency/verifyAndRepair/{workflowId}"): OPERATE,
    ("GET", "/api/admin/queues"): READ,
    # maintenance: removing executions or overwriting every definition is for admins; a
    # requeue only pushes messages that should exist; an export shows what viewers can read
    ("POST", "/api/admin/purge"): ADMIN_ONLY,
    ("POST", "/api/admin/requeue"): OPERATE,
    ("POST", "/api/admin/requeue/{taskType}"): OPERATE,
    ("GET", "/api/admin/export"): READ,
    ("POST", "/api/admin/import"): ADMIN_ONLY,
    # The audit trail names keys and what each did: for those who run the system.
    ("GET", "/api/audit"): OPERATE,
    # event handlers
    ("POST", "/api/event"): OPERATE,
    ("PUT", "/api/event"): OPERATE,
    ("GET", "/api/event"): READ,
    ("DELETE", "/api/event/{name}"): OPERATE,
    ("GET", "/api/event/{event:path}"): READ,
    # workflow schedules: operators manage them, viewers read them and their runs
    ("POST", "/api/scheduler/schedules"): OPERATE,
    ("GET", "/api/scheduler/schedules"): READ,
    ("GET", "/api/scheduler/schedules/{name}"): READ,
    ("DELETE", "/api/scheduler/schedules/{name}"): OPERATE,
    ("PUT", "/api/scheduler/schedules/{name}/pause"): OPERATE,
    ("PUT", "/api/scheduler/schedules/{name}/resume"): OPERATE,
    ("GET", "/api/scheduler/admin/pause"): OPERATE,
    ("GET", "/api/scheduler/admin/resume"): OPERATE,
    ("GET", "/api/scheduler/admin/requeue"): OPERATE,
    ("GET", "/api/scheduler/nextFewSchedules"): READ,
    ("GET", "/api/scheduler/search/executions"): READ,
    ("PUT", "/api/scheduler/schedules/{name}/tags"): OPERATE,
    ("GET", "/api/scheduler/schedules/{name}/tags"): READ,
    ("DELETE", "/api/scheduler/schedules/{name}/tags"): OPERATE,
}


class Declared(Protocol):
    """What :func:`rule_for` needs of an endpoint (``routing.Endpoint`` has it)."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...


def rule_for(endpoint: Declared) -> Rule:
    """The endpoint's rule; LookupError if it has none (the app then refuses to start)."""
    try:
        return POLICY[(endpoint.method, endpoint.path)]
    except KeyError:
        raise LookupError(
            f"{endpoint.method} {endpoint.path} has no access rule: add it to "
            "api_gateway.access.POLICY"
        ) from None


def check_policy(endpoints: Iterable[Declared]) -> None:
    """Every endpoint has a rule and every rule an endpoint (no stale permissions)."""
    declared = set()
    for e in endpoints:
        rule_for(e)
        declared.add((e.method, e.path))
    stale = sorted(set(POLICY) - declared)
    if stale:
        raise LookupError(f"access rules for endpoints that do not exist: {stale}")


async def _task_type_of_task(gateway: Gateway, task_id: str) -> str:
    try:
        task = await gateway.store.executions.get_task(task_id)
    except NotFound:
        raise NotFound(f"Task not found for taskId: {task_id}", taskId=task_id) from None
    return str(task.get("taskType") or "")


async def task_types(source: TaskTypeFrom, request: Request, gateway: Gateway) -> list[str]:
    """The task types a request acts on, as the store knows them where it names a task.

    Bad input raises InvalidArgument (400) and a task that does not exist NotFound (404), as
    the handler itself would: nothing has been done yet.
    """
    if source.kind == "path":
        return [path(request, source.name)]
    if source.kind == "query":
        value = q_str(request, source.name)
        return [value] if value else []
    if source.kind == "query_list":
        return q_list(request, source.name)
    if source.kind == "body_task":
        result = checks.task_result(await body_json(request))
        return [await _task_type_of_task(gateway, str(result["taskId"]))]
    if source.kind == "path_task":
        return [await _task_type_of_task(gateway, path(request, "taskId"))]
    workflow_id, ref = path(request, "workflowId"), path(request, "taskRefName")
    try:
        wf = await gateway.store.executions.get_workflow(workflow_id, include_tasks=True)
    except NotFound:
        raise NotFound(
            f"No such workflow found by id: {workflow_id}", workflowId=workflow_id
        ) from None
    found = {
        str(t.get("taskType") or "")
        for t in wf.get("tasks") or []
        if ref in (t.get("referenceTaskName"), _base_ref(str(t.get("referenceTaskName") or "")))
    }
    if not found:
        raise NotFound(f"Found no task {ref} in workflow {workflow_id}")
    return sorted(found)


async def refusal(rule: Rule, request: Request, gateway: Gateway) -> Response | None:
    """A 401/403 envelope when the caller's key may not make this request; None to go on."""
    if rule.public or not gateway.settings.auth.enabled:
        return None
    state = request.scope.get("state") or {}
    grant = state.get("grant")
    key_id = str(state.get("key_id") or "")
    if not isinstance(grant, Grant):
        # AuthGate lets no request without a valid token this far; this is a second lock.
        return error_response(
            401, "Missing X-Authorization token", extra={"error": "INVALID_TOKEN"}
        )
    if any(grant.has(role) for role in rule.roles if role != WORKER or rule.task_types is None):
        return None
    what = f"{request.method} {request.url.path}"
    if rule.task_types is not None and grant.has(WORKER):
        types = await task_types(rule.task_types, request, gateway)
        if not types:
            raise InvalidArgument(
                f"A worker key must name the task type: {rule.task_types.describe()}"
            )
        denied = [t for t in types if not grant.may_work_on(t)]
        if not denied:
            return None
        return error_response(
            403,
            f"Key {key_id} may not work on task type {denied[0]}: its worker task types are "
            f"{'|'.join(grant.task_types)} ({what})",
            extra={"error": "FORBIDDEN"},
        )
    return error_response(
        403,
        f"Key {key_id} has the role {'+'.join(grant.roles)}; {what} needs the role "
        f"{' or '.join(rule.roles)}",
        extra={"error": "FORBIDDEN"},
    )
