"""An asyncio worker client for Conductor's task API (Podium's or Conductor's own server).

For Python users who want more throughput than the official SDK's process-per-worker model:
one event loop runs many task types, each with a concurrency limit; polls are batched long
polls (``GET /api/tasks/poll/batch/{type}?count=<free slots>&timeout=<ms>``), and a result is
sent with ``POST /api/tasks/update-v2``, whose answer is the next task to run (no poll in
between). Servers without update-v2 (404/405) get ``POST /api/tasks`` instead.

Each task runs in a CONSUMER span ``process {taskType}`` of the tracer given (by default the
global OpenTelemetry one: nothing is recorded unless the application set up a provider),
linked to the span that scheduled the task (its ``traceParent``); the result is sent with that
span's ``traceparent``, so the server's handling of it is part of the worker's trace.

A handler is ``async def handler(task: dict) -> dict | InProgress | None``: the returned dict is
the task's output (COMPLETED); :class:`InProgress` asks to be called again later; an exception
fails the task (:class:`TerminalError` without retries). ``stop()`` stops polling, lets running
tasks finish for a grace period (their results are sent without taking new work), then cancels.

    runner = TaskRunner("http://localhost:8080", [Worker("greet", greet, concurrency=20)])
    await runner.run()          # until runner.stop() or cancellation
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry import propagate
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Tracer

from podium.telemetry import names as n
from podium.telemetry.workflow import consume
from podium.types import JSON

log = logging.getLogger("podium.worker")


@dataclass(frozen=True)
class InProgress:
    """Keep the task: make it pollable again after ``callback_after_seconds``."""

    callback_after_seconds: int = 0
    output: JSON = field(default_factory=dict)


class TerminalError(Exception):
    """Fail the task without retries (FAILED_WITH_TERMINAL_ERROR)."""


Handler = Callable[[JSON], Awaitable["JSON | InProgress | None"]]


@dataclass(frozen=True)
class Worker:
    """One task type: its handler and how many of its tasks may run at once."""

    task_type: str
    handler: Handler
    concurrency: int = 10
    domain: str | None = None
    #: Longest wait of one poll (Conductor allows at most 5000 ms).
    poll_timeout_ms: int = 1000


@dataclass
class RunnerStats:
    polls: int = 0
    tasks: int = 0
    completed: int = 0
    failed: int = 0
    in_progress: int = 0
    update_errors: int = 0
    poll_errors: int = 0


class AuthError(Exception):
    pass


class TaskRunner:
    """Runs workers against a Conductor-compatible server until stopped."""

    def __init__(
        self,
        server_url: str,
        workers: Sequence[Worker],
        *,
        worker_id: str | None = None,
        key_id: str | None = None,
        key_secret: str | None = None,
        http: httpx.AsyncClient | None = None,
        grace_s: float = 10.0,
        max_update_attempts: int = 5,
        tracer: Tracer | None = None,
    ) -> None:
        base = server_url.rstrip("/")
        self.api = base if base.endswith("/api") else base + "/api"
        self.workers = list(workers)
        self.worker_id = worker_id or socket.gethostname()
        self.key_id, self.key_secret = key_id, key_secret
        self.grace_s = grace_s
        self.max_update_attempts = max_update_attempts
        self.stats = RunnerStats()
        self.tracer = tracer or otel_trace.get_tracer("podium.worker")
        self._http = http
        self._own_http = http is None
        self._token: str | None = None
        self._v2 = True
        self._stopping = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._slots: dict[str, asyncio.Semaphore] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll and execute until :meth:`stop`; then drain running tasks and return."""
        if self._http is None:
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0), limits=limits)
        try:
            pollers = [asyncio.create_task(self._poll_loop(w)) for w in self.workers]
            try:
                await asyncio.gather(*pollers)
            finally:
                for p in pollers:
                    p.cancel()
                await asyncio.gather(*pollers, return_exceptions=True)
            await self._drain()
        finally:
            if self._own_http and self._http is not None:
                await self._http.aclose()
                self._http = None

    def stop(self) -> None:
        """Stop taking work; :meth:`run` returns once running tasks are done (or cancelled)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def _drain(self) -> None:
        if not self._running:
            return
        _, pending = await asyncio.wait(set(self._running), timeout=self.grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- HTTP ---------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        http = self._http
        if http is None:
            raise RuntimeError("the runner is not running")
        for attempt in range(2):
            headers = dict(kwargs.pop("headers", {}) or {})
            propagate.inject(headers)  # the current task's span, if one is recording
            if self.key_id and self.key_secret:
                if self._token is None:
                    await self._fetch_token(http)
                if self._token:
                    headers["X-Authorization"] = self._token
            response = await http.request(method, self.api + path, headers=headers, **kwargs)
            if response.status_code == 401 and attempt == 0 and self.key_id:
                self._token = None  # expired or revoked: fetch a new one, once
                continue
            return response
        return response

    async def _fetch_token(self, http: httpx.AsyncClient) -> None:
        r = await http.post(
            self.api + "/token", json={"keyId": self.key_id, "keySecret": self.key_secret}
        )
        if r.status_code == 404:
            self.key_id = self.key_secret = None  # the server runs without authentication
            return
        if r.status_code != 200:
            raise AuthError(f"token request refused: HTTP {r.status_code} {r.text[:200]}")
        self._token = str(r.json()["token"])

    # -- polling ------------------------------------------------------------------------------

    async def _poll_loop(self, worker: Worker) -> None:
        slots = self._slots.setdefault(worker.task_type, asyncio.Semaphore(worker.concurrency))
        backoff_s = 0.0
        while not self.stopping:
            # Wait for at least one free slot, then ask for as many tasks as slots are free.
            if not await self._acquire_unless_stopping(slots):
                break
            free = 1
            while free < worker.concurrency and not slots.locked():
                await slots.acquire()
                free += 1
            try:
                tasks = await self._poll(worker, free)
                backoff_s = 0.0
            except (httpx.HTTPError, AuthError, ValueError) as exc:
                tasks = []
                self.stats.poll_errors += 1
                backoff_s = min(10.0, backoff_s * 2 or 0.1)
                log.warning(
                    "poll for %s failed: %s; retry in %.1fs", worker.task_type, exc, backoff_s
                )
            for _ in range(free - len(tasks)):
                slots.release()
            for task in tasks:
                self._spawn(worker, task)
            if backoff_s:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff_s)

    async def _acquire_unless_stopping(self, slots: asyncio.Semaphore) -> bool:
        """Take a slot; False (and no slot taken) once the runner is stopping."""
        if self.stopping:
            return False
        if not slots.locked():
            await slots.acquire()
            return True
        acquire = asyncio.ensure_future(slots.acquire())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not acquire.done():
                acquire.cancel()
        if acquire.done() and not acquire.cancelled():
            if self.stopping:
                slots.release()
                return False
            return True
        return False

    async def _poll(self, worker: Worker, count: int) -> list[JSON]:
        params: dict[str, Any] = {
            "workerid": self.worker_id,
            "count": count,
            "timeout": worker.poll_timeout_ms,
        }
        if worker.domain:
            params["domain"] = worker.domain
        self.stats.polls += 1
        r = await self._request("GET", f"/tasks/poll/batch/{worker.task_type}", params=params)
        if r.status_code == 204 or not r.content:
            return []
        if r.status_code != 200:
            raise ValueError(f"HTTP {r.status_code}: {r.text[:200]}")
        tasks = r.json()
        return [t for t in tasks if isinstance(t, dict) and t.get("taskId")][:count]

    def _spawn(self, worker: Worker, task: JSON) -> None:
        job = asyncio.create_task(self._execute_chain(worker, task))
        self._running.add(job)
        job.add_done_callback(self._done)

    def _done(self, job: asyncio.Task[None]) -> None:
        self._running.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.error("worker task crashed", exc_info=job.exception())

    # -- executing ----------------------------------------------------------------------------

    async def _execute_chain(self, worker: Worker, first: JSON) -> None:
        slots = self._slots[worker.task_type]
        task: JSON | None = first
        try:
            while task is not None:
                self.stats.tasks += 1
                attributes = {
                    n.TASK_ID: str(task["taskId"]),
                    n.WORKFLOW_ID: str(task.get("workflowInstanceId")),
                    n.TASK_TYPE: str(task.get("taskType") or worker.task_type),
                }
                with consume(self.tracer, worker.task_type, attributes, task):
                    result = await self._execute(worker, task)
                    task = await self._send(result, want_next=not self.stopping)
        finally:
            slots.release()

    async def _execute(self, worker: Worker, task: JSON) -> JSON:
        result: JSON = {
            "workflowInstanceId": task.get("workflowInstanceId"),
            "taskId": task["taskId"],
            "workerId": self.worker_id,
        }
        try:
            outcome = await worker.handler(task)
        except asyncio.CancelledError:
            raise
        except TerminalError as exc:
            self.stats.failed += 1
            return {
                **result,
                "status": "FAILED_WITH_TERMINAL_ERROR",
                "reasonForIncompletion": str(exc)[:500],
            }
        except Exception as exc:
            self.stats.failed += 1
            trace = "".join(traceback.format_exception(exc))[-4000:]
            return {
                **result,
                "status": "FAILED",
                "reasonForIncompletion": f"{type(exc).__name__}: {exc}"[:500],
                "logs": [
                    {"log": trace, "taskId": task["taskId"], "createdTime": int(time.time() * 1000)}
                ],
            }
        if isinstance(outcome, InProgress):
            self.stats.in_progress += 1
            return {
                **result,
                "status": "IN_PROGRESS",
                "outputData": outcome.output,
                "callbackAfterSeconds": outcome.callback_after_seconds,
            }
        self.stats.completed += 1
        return {**result, "status": "COMPLETED", "outputData": outcome or {}}

    async def _send(self, result: JSON, *, want_next: bool) -> JSON | None:
        """Send a result; with update-v2 the answer is the next task to run (or None)."""
        delay_s = 0.2
        for attempt in range(self.max_update_attempts):
            try:
                v2 = want_next and self._v2
                if v2:
                    r = await self._request("POST", "/tasks/update-v2", json=result)
                    if r.status_code in (404, 405) and not _is_envelope_404(r):
                        self._v2 = False  # the server has no update-v2: use v1 from now on
                        continue
                else:
                    r = await self._request("POST", "/tasks", json=result)
                if r.status_code == 204 or (r.status_code == 200 and not v2):
                    return None  # v1 answers with the task id as text: nothing to run next
                if r.status_code == 200:
                    body = r.json() if r.content else None
                    if isinstance(body, dict) and body.get("taskId"):
                        return body
                    return None
                if 400 <= r.status_code < 500:
                    # The server refused it for good (unknown task or workflow, bad result).
                    self.stats.update_errors += 1
                    log.warning(
                        "result for %s refused: HTTP %d %s",
                        result["taskId"],
                        r.status_code,
                        r.text[:200],
                    )
                    return None
            except (httpx.HTTPError, AuthError, ValueError) as exc:
                log.warning("sending result for %s failed: %s", result["taskId"], exc)
            if attempt + 1 < self.max_update_attempts:
                await asyncio.sleep(delay_s)
                delay_s = min(5.0, delay_s * 2)
        self.stats.update_errors += 1
        log.error(
            "result for task %s lost after %d attempts", result["taskId"], self.max_update_attempts
        )
        return None


def _is_envelope_404(r: httpx.Response) -> bool:
    """A 404 about the task or workflow (an error envelope), not a missing endpoint."""
    if r.status_code != 404:
        return False
    try:
        body = r.json()
    except ValueError:
        return False
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    return "No such" in message or "not found" in message.lower()
