"""A client that retries a start with an idempotencyKey runs the work once, through the SDK.

What answers a start with a retryable 5xx although the workflow was (or will be) created?
Since a committed start always answers its id, one real case is left: the gateway stops
waiting for the decider (its RPC deadline, 10 s) while the decider still goes on and commits.
The first test makes that happen by freezing the decider (SIGSTOP) while the start is sent on
the gateway's open connection and thawing it (SIGCONT) after the gateway has answered 504: the
decider then reads the request and commits the workflow (the test waits until it exists). The
client's retries with the same key return that workflow's id (a retry racing the commit would
get a 503 "in progress"), and the key's one workflow runs its task once.

The second test is a 503 that created nothing: the decider is down (killed). The retry after it
comes back creates the workflow, and a further retry returns the same id (RETURN_EXISTING) or
a 409 (FAIL).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest
from conductor.client.http.models.start_workflow_request import StartWorkflowRequest
from conductor.client.http.rest import ApiException
from conductor.client.workflow.conductor_workflow import ConductorWorkflow

from podium.cluster import ServiceProcess
from tests.polling import eventually_sync

from .conftest import E2E, _run
from .test_workflows import simple

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")


def _echo_workflow(e2e: E2E, base: str) -> str:
    wf = ConductorWorkflow(executor=e2e.executor, name=e2e.name(base), version=1)
    wf >> simple(e2e, "echo", "echo", text="${workflow.input.text}")
    wf.register(overwrite=True)
    return str(wf.name)


def _request(name: str, key: str, strategy: str, correlation_id: str) -> StartWorkflowRequest:
    return StartWorkflowRequest(
        name=name,
        version=1,
        input={"text": key},
        correlation_id=correlation_id,
        idempotency_key=key,
        idempotency_strategy=strategy,
    )


def _start_until_accepted(e2e: E2E, request: StartWorkflowRequest, timeout_s: float) -> str:
    """What a careful client does: retry on a retryable 5xx, with a deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return str(e2e.workflows.start_workflow(request))
        except ApiException as exc:
            if exc.status not in (503, 504) or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _workflows_with(e2e: E2E, name: str, correlation_id: str) -> list[str]:
    found = e2e.workflows.get_by_correlation_ids(name, [correlation_id], include_completed=True)
    return sorted(str(wf.workflow_id) for wf in found.get(correlation_id) or [])


@pytest.fixture
def decider(e2e: E2E) -> Iterator[ServiceProcess]:
    """The cluster's decider, running again (and thawed) after the test."""
    [svc] = e2e.cluster.of("decider.server")
    yield svc
    if svc.alive() and svc.proc is not None:
        os.kill(svc.proc.pid, signal.SIGCONT)
    else:
        _run(e2e.cluster.restart(svc))


def _signal(svc: ServiceProcess, sig: signal.Signals) -> None:
    assert svc.proc is not None
    os.kill(svc.proc.pid, sig)


@pytest.mark.timeout(90, func_only=True)
def test_a_start_the_gateway_gave_up_on_is_committed_once_and_retries_return_it(
    e2e: E2E, decider: ServiceProcess
) -> None:
    name = _echo_workflow(e2e, "idem_timeout")
    key, corr = f"order-{uuid.uuid4().hex[:8]}", f"c-{uuid.uuid4().hex[:8]}"
    request = _request(name, key, "RETURN_EXISTING", corr)
    # The gateway's connections to the decider (two, taken in turn) are open and authenticated
    # before the freeze, so the start is sent and the decider reads it when thawed (a
    # connection opened during the freeze would fail its handshake: a 503 that sent nothing).
    for _ in range(4):
        e2e.workflows.start_workflow(
            StartWorkflowRequest(name=name, version=1, input={"text": "-"})
        )

    _signal(decider, signal.SIGSTOP)
    try:
        with pytest.raises(ApiException) as first:
            e2e.workflows.start_workflow(request)
    finally:
        _signal(decider, signal.SIGCONT)
    # The gateway gave up waiting: a retryable answer, nothing known about the outcome.
    assert first.value.status == 504, first.value.body
    assert '"retryable":true' in str(first.value.body).replace(" ", "")

    # Thawed, the decider reads the request and commits the workflow on its own.
    [committed] = eventually_sync(
        lambda: _workflows_with(e2e, name, corr), timeout_s=30, what="the abandoned start commits"
    )

    workflow_id = _start_until_accepted(e2e, request, timeout_s=30)
    assert workflow_id == committed
    assert _start_until_accepted(e2e, request, timeout_s=30) == workflow_id
    assert _workflows_with(e2e, name, corr) == [workflow_id]
    done = e2e.wait_status(workflow_id, "COMPLETED")
    assert [t.reference_task_name for t in done.tasks] == ["echo"]  # its work ran once


@pytest.mark.timeout(90, func_only=True)
def test_a_start_refused_while_the_decider_is_down_is_created_once_by_the_retry(
    e2e: E2E, decider: ServiceProcess
) -> None:
    name = _echo_workflow(e2e, "idem_down")
    key, corr = f"order-{uuid.uuid4().hex[:8]}", f"c-{uuid.uuid4().hex[:8]}"
    request = _request(name, key, "RETURN_EXISTING", corr)

    decider.kill()
    with pytest.raises(ApiException) as refused:
        e2e.workflows.start_workflow(request)
    assert refused.value.status == 503, refused.value.body
    assert _workflows_with(e2e, name, corr) == []  # a 503 here created nothing
    _run(e2e.cluster.restart(decider))

    workflow_id = _start_until_accepted(e2e, request, timeout_s=30)
    assert _start_until_accepted(e2e, request, timeout_s=30) == workflow_id
    with pytest.raises(ApiException) as conflict:
        e2e.workflows.start_workflow(_request(name, key, "FAIL", corr))
    assert conflict.value.status == 409
    assert key in str(conflict.value.body)
    assert _workflows_with(e2e, name, corr) == [workflow_id]
    e2e.wait_status(workflow_id, "COMPLETED")
