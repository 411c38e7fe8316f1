"""The fault suite's load and its checks (``benchmarks/faults.py`` runs them around the kills).

* Five workflow shapes over three SIMPLE task types: ``seq`` (three tasks in a row), ``fork``
  (FORK_JOIN of three, JOIN, one more), ``sub`` (a task, a SUB_WORKFLOW of two, a task),
  ``wait`` (a task, WAIT 1 s, a task) and ``http`` (a task, an HTTP task calling
  :class:`Endpoint`, a task). Every task after the first reads its predecessors' ``nonce``
  outputs (``prev_<ref>`` inputs), so a completion overwritten after its successors were
  scheduled shows as a mismatch in the final workflow.
* :class:`Workers`: external workers over the Conductor API of every gateway. Each execution
  gets a fresh nonce as its output and is logged (taskId, workflowId, ref, attempt, nonce);
  each update answer is logged too (its status, 0 when no answer came).
* :class:`Load`: starts at a fixed rate, round-robin over the shapes and the gateways, each with
  an ``idempotencyKey`` (RETURN_EXISTING) so that a start retried after an error or no answer
  creates one workflow; the acknowledged id and time are logged.
* :func:`check`: every workflow (and sub-workflow) read back at the end against the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from benchmarks.http_lite import ERRORS, Pool

JSON = dict[str, Any]
SHAPES = ("seq", "fork", "sub", "wait", "http")
TASK_TYPES = ("flt_a", "flt_b", "flt_c")
#: SIMPLE tasks a workflow of each shape runs (its sub-workflow's included)
SIMPLE_PER_SHAPE = {"seq": 3, "fork": 4, "sub": 4, "wait": 2, "http": 2}
WORKFLOW_PREFIX = "faults_"
ERRORS_ALL = (*ERRORS, ValueError)


def task_defs() -> list[JSON]:
    """Generous retries, short response timeouts: a task whose update was lost comes back in
    3 s as a new attempt."""
    return [
        {
            "name": name,
            "retryCount": 50,
            "retryLogic": "FIXED",
            "retryDelaySeconds": 0,
            "responseTimeoutSeconds": 3,
            "timeoutSeconds": 0,
            "timeoutPolicy": "RETRY",
        }
        for name in (*TASK_TYPES, "flt_http")
    ]


def _simple(type_: str, ref: str, *prev: str) -> JSON:
    return {
        "name": type_,
        "taskReferenceName": ref,
        "type": "SIMPLE",
        "inputParameters": {f"prev_{p}": f"${{{p}.output.nonce}}" for p in prev},
    }


def workflow_defs(endpoint_url: str) -> list[JSON]:
    a, b, c = TASK_TYPES
    shapes: dict[str, list[JSON]] = {
        "seq": [_simple(a, "a1"), _simple(b, "b1", "a1"), _simple(c, "c1", "b1")],
        "fork": [
            {
                "name": "fork",
                "taskReferenceName": "fork",
                "type": "FORK_JOIN",
                "forkTasks": [[_simple(a, "a1")], [_simple(b, "b1")], [_simple(c, "c1")]],
            },
            {
                "name": "join",
                "taskReferenceName": "join",
                "type": "JOIN",
                "joinOn": ["a1", "b1", "c1"],
            },
            _simple(a, "d1", "a1", "b1", "c1"),
        ],
        "child": [_simple(b, "a1"), _simple(c, "b1", "a1")],
        "sub": [
            _simple(a, "a1"),
            {
                "name": "sub",
                "taskReferenceName": "s1",
                "type": "SUB_WORKFLOW",
                "subWorkflowParam": {"name": f"{WORKFLOW_PREFIX}child", "version": 1},
            },
            _simple(c, "c1", "a1"),
        ],
        "wait": [
            _simple(a, "a1"),
            {
                "name": "wait",
                "taskReferenceName": "w1",
                "type": "WAIT",
                "inputParameters": {"duration": "1s"},
            },
            _simple(b, "b1", "a1"),
        ],
        "http": [
            _simple(a, "a1"),
            {
                "name": "flt_http",
                "taskReferenceName": "h1",
                "type": "HTTP",
                "inputParameters": {
                    "http_request": {
                        "uri": f"{endpoint_url}/echo?wf=${{workflow.workflowId}}",
                        "method": "GET",
                        "connectionTimeOut": 2000,
                        "readTimeOut": 2000,
                    }
                },
            },
            _simple(c, "c1", "a1"),
        ],
    }
    return [
        {
            "name": f"{WORKFLOW_PREFIX}{shape}",
            "version": 1,
            "schemaVersion": 2,
            "tasks": tasks,
            "timeoutSeconds": 0,
        }
        for shape, tasks in shapes.items()
    ]


class Endpoint:
    """The HTTP tasks' target: a keep-alive HTTP/1.1 server answering ``{"ok": true}`` and
    counting calls per workflow (an HTTP task is called at least once)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Endpoint:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = b'{"ok": true}'
        with contextlib.suppress(*ERRORS):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                self.calls[parse_qs(urlsplit(target).query).get("wf", ["?"])[0]] += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@dataclass
class Execution:
    t: float
    task_id: str
    workflow_id: str
    ref: str
    attempt: int  # the task's retryCount
    nonce: str


@dataclass
class Logs:
    """Everything the workers and the load generator saw, with wall-clock times."""

    executions: list[Execution] = field(default_factory=list)
    #: (time, taskId, nonce, HTTP status or 0 for no answer)
    updates: list[tuple[float, str, str, int]] = field(default_factory=list)
    starts: list[Start] = field(default_factory=list)
    poll_errors: int = 0


@dataclass
class Start:
    key: str
    shape: str
    sent: float
    workflow_id: str = ""
    acked: float = 0.0
    attempts: int = 0
    statuses: list[int] = field(default_factory=list)  # of every failed attempt (0: no answer)
    refused: str = ""  # a 4xx that is not retried


class Workers:
    """``pollers`` batch-polling loops per task type per gateway; updates retried on any
    gateway until one answers (a 4xx or 200 ends them)."""

    def __init__(self, urls: list[str], logs: Logs, batch: int = 8, pollers: int = 1) -> None:
        self.pools = [Pool(u) for u in urls]
        self.logs, self.batch, self.pollers = logs, batch, pollers
        self.stop_event = asyncio.Event()
        self._updates: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            await asyncio.gather(
                *(
                    self._poll_loop(i, t)
                    for t in TASK_TYPES
                    for i in range(len(self.pools))
                    for _ in range(self.pollers)
                )
            )
            if self._updates:
                await asyncio.wait(self._updates, timeout=20)
        finally:
            for pool in self.pools:
                pool.close()

    async def _poll_loop(self, index: int, task_type: str) -> None:
        pool, errors = self.pools[index], 0
        query = urlencode({"count": self.batch, "timeout": 200, "workerid": f"faults-{index}"})
        while not self.stop_event.is_set():
            try:
                status, body = await pool.request(
                    "GET", f"/tasks/poll/batch/{task_type}?{query}", timeout_s=10
                )
                tasks = json.loads(body) if status == 200 and body else []
                if status >= 500:
                    raise ValueError(status)
                errors = 0
            except ERRORS_ALL:
                self.logs.poll_errors += 1
                errors += 1
                await asyncio.sleep(min(1.0, 0.05 * 2**errors))
                continue
            for task in tasks:
                nonce = uuid.uuid4().hex[:12]
                self.logs.executions.append(
                    Execution(
                        time.time(),
                        task["taskId"],
                        task["workflowInstanceId"],
                        task["referenceTaskName"],
                        int(task.get("retryCount") or 0),
                        nonce,
                    )
                )
                job = asyncio.ensure_future(self._update(index, task, nonce))
                self._updates.add(job)
                job.add_done_callback(self._updates.discard)

    async def _update(self, index: int, task: JSON, nonce: str) -> None:
        result = {
            "workflowInstanceId": task["workflowInstanceId"],
            "taskId": task["taskId"],
            "workerId": f"faults-{index}",
            "status": "COMPLETED",
            "outputData": {"nonce": nonce},
        }
        for attempt in range(30):
            pool = self.pools[(index + attempt) % len(self.pools)]
            try:
                status, _ = await pool.request("POST", "/tasks", result, timeout_s=10)
            except ERRORS:
                status = 0
            self.logs.updates.append((time.time(), task["taskId"], nonce, status))
            if 0 < status < 500:
                return
            await asyncio.sleep(min(1.0, 0.05 * 2**attempt))


class Load:
    """Starts ``rate`` workflows per second until ``stop()``; each start retried (same key)
    until a gateway acknowledges it or ``give_up_s`` has passed."""

    def __init__(self, urls: list[str], logs: Logs, rate: float, give_up_s: float = 120) -> None:
        self.pools = [Pool(u) for u in urls]
        self.logs, self.rate, self.give_up_s = logs, rate, give_up_s
        self.run_id = uuid.uuid4().hex[:8]
        self.stop_event = asyncio.Event()
        self._starts: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        began, i = time.monotonic(), 0
        try:
            while not self.stop_event.is_set():
                delay = began + i / self.rate - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop_event.wait(), delay)
                    continue
                job = asyncio.ensure_future(self._start(i))
                self._starts.add(job)
                job.add_done_callback(self._starts.discard)
                i += 1
            if self._starts:
                await asyncio.wait(self._starts)
        finally:
            for pool in self.pools:
                pool.close()

    async def _start(self, i: int) -> None:
        shape = SHAPES[i % len(SHAPES)]
        start = Start(key=f"{self.run_id}-{i}", shape=shape, sent=time.time())
        self.logs.starts.append(start)
        body = {
            "name": f"{WORKFLOW_PREFIX}{shape}",
            "version": 1,
            "input": {"i": i},
            "correlationId": start.key,
            "idempotencyKey": start.key,
            "idempotencyStrategy": "RETURN_EXISTING",
        }
        deadline = time.monotonic() + self.give_up_s
        while True:
            start.attempts += 1
            pool = self.pools[(i + start.attempts) % len(self.pools)]
            try:
                status, raw = await pool.request("POST", "/workflow", body, timeout_s=15)
            except ERRORS:
                status, raw = 0, b""
            if status == 200:
                start.workflow_id, start.acked = raw.decode().strip().strip('"'), time.time()
                return
            if 400 <= status < 500 and status not in (408, 429):
                start.refused = f"{status} {raw[:200]!r}"
                return
            start.statuses.append(status)
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.2)


async def fetch_all(url: str, ids: list[str], concurrency: int = 16) -> dict[str, JSON | None]:
    """Each workflow with its tasks (None if the API says 404), read with retries."""
    pool = Pool(url)
    out: dict[str, JSON | None] = {}
    queue = list(ids)

    async def reader() -> None:
        while queue:
            wf_id = queue.pop()
            for attempt in range(20):
                try:
                    status, raw = await pool.request("GET", f"/workflow/{wf_id}", timeout_s=15)
                except ERRORS:
                    status, raw = 0, b""
                if status in (200, 404):
                    out[wf_id] = json.loads(raw) if status == 200 else None
                    break
                await asyncio.sleep(0.1 * (attempt + 1))
            else:
                raise RuntimeError(f"workflow {wf_id} could not be read: HTTP {status}")

    try:
        await asyncio.gather(*(reader() for _ in range(concurrency)))
    finally:
        pool.close()
    return out


@dataclass
class Check:
    """The verdict on every workflow, and on every task in it."""

    status: dict[str, str] = field(default_factory=dict)  # workflow id -> final status
    lost: list[str] = field(default_factory=list)  # acknowledged, absent at the end
    #: (workflow id, what) for each accepted completion too many
    duplicate_accepted: list[tuple[str, str]] = field(default_factory=list)
    #: workflow id -> epoch s of each COMPLETED task's end (the completions timeline)
    completion_times: list[float] = field(default_factory=list)
    simple_completions: int = 0
    task_completions: int = 0
    latency_s: dict[str, float] = field(default_factory=dict)  # workflow id -> end - start
    children: dict[str, str] = field(default_factory=dict)  # child id -> parent id
    foreign_results: list[tuple[str, str]] = field(default_factory=list)
    #: workflows that did not complete, as read at the end (for the report and a look into them)
    unfinished: dict[str, JSON] = field(default_factory=dict)


def _check_tasks(wf: JSON, nonces: dict[str, set[str]], check: Check) -> None:
    wf_id = wf["workflowId"]
    tasks = wf.get("tasks") or []
    per_attempt = Counter((t["referenceTaskName"], t.get("retryCount", 0)) for t in tasks)
    for (ref, attempt), n in per_attempt.items():
        if n > 1:
            check.duplicate_accepted.append((wf_id, f"{n} records of {ref} attempt {attempt}"))
    completed: dict[str, JSON] = {}
    for t in tasks:
        if t["status"] != "COMPLETED":
            continue
        ref = t["referenceTaskName"]
        if ref in completed:
            check.duplicate_accepted.append((wf_id, f"{ref} COMPLETED twice"))
        completed[ref] = t
        check.task_completions += 1
        check.completion_times.append((t.get("endTime") or 0) / 1000)
        if t.get("taskType") in TASK_TYPES:
            check.simple_completions += 1
            nonce = (t.get("outputData") or {}).get("nonce")
            if nonce not in nonces.get(t["taskId"], set()):
                check.foreign_results.append((wf_id, t["taskId"]))
        if t.get("taskType") == "SUB_WORKFLOW" and t.get("subWorkflowId"):
            check.children[t["subWorkflowId"]] = wf_id
    for t in tasks:
        for key, seen in (t.get("inputData") or {}).items():
            if not key.startswith("prev_"):
                continue
            upstream = completed.get(key[len("prev_") :])
            final = (upstream or {}).get("outputData", {}).get("nonce")
            if t["status"] == "COMPLETED" and seen != final:
                check.duplicate_accepted.append(
                    (wf_id, f"{t['referenceTaskName']} read {key}={seen}, final is {final}")
                )


async def check(url: str, logs: Logs) -> Check:
    """Read back every acknowledged workflow and every sub-workflow, and judge them."""
    nonces: dict[str, set[str]] = defaultdict(set)
    for e in logs.executions:
        nonces[e.task_id].add(e.nonce)
    result = Check()
    ids = [s.workflow_id for s in logs.starts if s.workflow_id]
    level = await fetch_all(url, ids)
    while level:
        next_ids: list[str] = []
        for wf_id, wf in level.items():
            if wf is None:
                result.lost.append(wf_id)
                continue
            result.status[wf_id] = wf["status"]
            if wf["status"] != "COMPLETED":
                result.unfinished[wf_id] = wf
            if wf.get("endTime") and wf.get("startTime"):
                result.latency_s[wf_id] = (wf["endTime"] - wf["startTime"]) / 1000
            before = set(result.children)
            _check_tasks(wf, nonces, result)
            next_ids += [c for c in result.children if c not in before]
        level = await fetch_all(url, next_ids) if next_ids else {}
    return result


async def running_count(url: str) -> int:
    """Workflows of the suite still RUNNING, by the store's search (-1 if it did not answer)."""
    pool = Pool(url)
    names = ",".join(f"{WORKFLOW_PREFIX}{s}" for s in (*SHAPES, "child"))
    query = urlencode({"query": f"workflowType IN ({names}) AND status IN (RUNNING)", "size": 1})
    try:
        status, raw = await pool.request("GET", f"/workflow/search?{query}", timeout_s=30)
        return int(json.loads(raw)["totalHits"]) if status == 200 else -1
    except (*ERRORS_ALL, KeyError):
        return -1
    finally:
        pool.close()
