"""A task popped by a gateway that dies before the claim comes back after its response timeout.

The gateway pops a worker's task and then asks the decider to claim it; if the gateway dies in
between, only the lease of the popped message brings the task back. That lease is capped by
the task's ``responseTimeoutSeconds``. The test runs the gateway's own pop step and then
never claims, as a gateway that died right after it.
"""

from __future__ import annotations

import time

import httpx

from api_gateway.context import CLAIM_LEASE_MS
from api_gateway.polling import pop_for_claim

from .api_calls import poll_one, register, simple_workflow, start
from .conftest import Names, RunningGateway

RESPONSE_TIMEOUT_S = 1


async def test_a_task_popped_and_never_claimed_is_handed_out_after_its_response_timeout(
    running_gateway: RunningGateway, names: Names
) -> None:
    client: httpx.AsyncClient = running_gateway.client
    wf, task_type = names("lease"), names("quick")
    r = await client.post(
        "/api/metadata/taskdefs",
        json=[
            {
                "name": task_type,
                "ownerEmail": "a@b.c",
                "responseTimeoutSeconds": RESPONSE_TIMEOUT_S,
                "timeoutSeconds": 60,
            }
        ],
    )
    assert r.status_code == 200, r.text
    await register(client, simple_workflow(wf, task_type))
    workflow_id = await start(client, wf)

    [popped] = await pop_for_claim(running_gateway.gateway, task_type, task_type, 1, 1000)
    popped_at = time.monotonic()
    # The gateway dies here: no claim, no release. Another worker's polls (for up to 10 s,
    # a third of CLAIM_LEASE_MS) get the task once the lease ends.
    task = await poll_one(client, task_type, worker="w2")
    waited_s = time.monotonic() - popped_at

    assert task["taskId"] == popped.id and task["workflowInstanceId"] == workflow_id
    assert task["pollCount"] == 1 and task["workerId"] == "w2"
    assert RESPONSE_TIMEOUT_S - 0.1 <= waited_s < RESPONSE_TIMEOUT_S + 3, waited_s


async def test_without_a_shorter_response_timeout_the_lease_is_the_claim_lease(
    running_gateway: RunningGateway, names: Names
) -> None:
    leases = running_gateway.gateway.claim_leases
    assert await leases.lease_ms(names("no_task_def")) == CLAIM_LEASE_MS
    task_type = names("slow")
    r = await running_gateway.client.post(
        "/api/metadata/taskdefs",
        json=[{"name": task_type, "ownerEmail": "a@b.c", "responseTimeoutSeconds": 3600}],
    )
    assert r.status_code == 200, r.text
    assert await leases.lease_ms(task_type) == CLAIM_LEASE_MS
