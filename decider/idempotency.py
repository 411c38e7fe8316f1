"""Idempotent starts: a StartWorkflowRequest with an ``idempotencyKey`` runs its work once.

The key is scoped by workflow name and bound to one workflow id in the store, atomically
(:meth:`~podium.store.ExecutionStore.bind_idempotency_key`), before that workflow is created:
of concurrent starts with one key exactly one binds it and creates a workflow. Another start
with the key then follows ``idempotencyStrategy``:

* ``FAIL`` (the default): 409, the key is taken.
* ``RETURN_EXISTING``: the id of the workflow the key is bound to.
* ``FAIL_ON_RUNNING``: 409 while that workflow is RUNNING or PAUSED; once it has ended, the key
  is bound to a new workflow, which starts.

A binding whose workflow does not exist is either a start still under way (its binding is
recent: the answer waits a little for the workflow, then is a retryable 503) or one that never
happened (its binding is older than :data:`PENDING_START_MS`, or the workflow was removed): the
key is then bound afresh. A start that fails before anything is written (a bad request, an
unknown definition) unbinds its key at once, and so does one whose workflow's timer could not be
set (the queues unreachable: nothing is written yet); one that fails with another retryable
error (the store unreachable) keeps it, since its workflow may have been written all the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from podium.errors import Conflict, InvalidArgument, NotFound, PodiumError, Unavailable
from podium.store import ExecutionStore

log = logging.getLogger("podium.decider")

STRATEGIES = frozenset({"FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING"})


class NothingWritten(Unavailable):
    """A start that failed, retryably, before it wrote its workflow (the queues were down).

    Its key is released at once, so the client's retry starts the workflow as soon as the
    queues are back instead of being told "in progress" until the binding is stale.
    """


#: How long a binding whose workflow does not exist yet counts as a start under way.
PENDING_START_MS = 30_000
#: How long a start waits for the workflow of a start under way before answering 503.
WAIT_FOR_PENDING_S = 2.0
_ACTIVE = frozenset({"RUNNING", "PAUSED"})
_MAX_ROUNDS = 8


def strategy_of(request: Mapping[str, Any]) -> str:
    strategy = request.get("idempotencyStrategy") or "FAIL"
    if strategy not in STRATEGIES:
        raise InvalidArgument(
            f"idempotencyStrategy must be one of {', '.join(sorted(STRATEGIES))}, not {strategy!r}",
            field="idempotencyStrategy",
        )
    return str(strategy)


async def start_once(
    store: ExecutionStore,
    workflow_name: str,
    request: Mapping[str, Any],
    new_id: str,
    begin: Callable[[str], Awaitable[str]],
    clock: Callable[[], int],
) -> str:
    """Start the workflow ``new_id`` with ``begin`` unless the request's key says otherwise."""
    key = str(request["idempotencyKey"])
    strategy = strategy_of(request)
    replacing = ""
    for _ in range(_MAX_ROUNDS):
        bound = await store.bind_idempotency_key(workflow_name, key, new_id, replacing=replacing)
        if bound.workflow_id == new_id:
            break
        replacing = bound.workflow_id
        if not replacing:
            continue  # the binding went away meanwhile: bind afresh
        status = await _status(store, replacing)
        if status is None and clock() - bound.bound_at_ms < PENDING_START_MS:
            status = await _wait_for(store, replacing)
            if status is None:
                raise Unavailable(
                    f"A start of {workflow_name} with idempotencyKey {key} is in progress "
                    f"(workflow {replacing}); try again",
                    workflowId=replacing,
                    idempotencyKey=key,
                )
        if status is None:
            log.info("idempotency key %s: workflow %s never started", key, replacing)
            continue
        if strategy == "RETURN_EXISTING":
            return replacing
        if strategy == "FAIL_ON_RUNNING" and status not in _ACTIVE:
            continue
        raise Conflict(
            f"Workflow with idempotencyKey {key} already exists for {workflow_name}: "
            f"{replacing} is {status}",
            workflowId=replacing,
            idempotencyKey=key,
        )
    else:
        raise Unavailable(f"idempotency key {key} of {workflow_name} is contended; try again")
    try:
        return await begin(new_id)
    except PodiumError as exc:
        if not exc.retryable or isinstance(exc, NothingWritten):
            await _release(store, workflow_name, key, new_id)
        raise


async def _status(store: ExecutionStore, workflow_id: str) -> str | None:
    try:
        wf = await store.get_workflow(workflow_id, include_tasks=False)
    except NotFound:
        return None
    return str(wf.get("status"))


async def _wait_for(store: ExecutionStore, workflow_id: str) -> str | None:
    """The workflow's status once it exists, or None if it does not appear in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_FOR_PENDING_S
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        status = await _status(store, workflow_id)
        if status is not None:
            return status
    return None


async def _release(store: ExecutionStore, workflow_name: str, key: str, workflow_id: str) -> None:
    try:
        await store.release_idempotency_key(workflow_name, key, workflow_id)
    except PodiumError as exc:
        # The binding then stands until it is old enough to be taken over.
        log.warning("idempotency key %s of %s not released: %s", key, workflow_name, exc.message)
