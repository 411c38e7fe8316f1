"""A local cluster's RPC answers only callers holding its credentials.

The cluster (separate processes, as ``podium up`` runs them) makes a random secret, and with
``rpc_tls`` certificates too; a workflow goes through the gateway, the queue service, the
decider and the sweeper, while callers without the credentials reach the decider and the
queue service and get no answer, each refusal a line in the service's log.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from podium.cluster import ClusterSpec, LocalCluster, ServiceProcess
from podium.devcerts import make_certs
from podium.errors import Unavailable
from podium.rpc import RpcClient
from podium.rpc_security import RpcSecurity, TlsFiles
from podium.types import JSON
from tests.polling import eventually

SPECS = {
    "secret": ClusterSpec(shards=1, gateway_port=0),
    "secret-and-mtls": ClusterSpec(shards=1, gateway_port=0, rpc_tls=True),
}


@pytest.fixture(params=list(SPECS), scope="module")
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[LocalCluster]:
    running = await LocalCluster(SPECS[request.param], progress=lambda _: None).start()
    try:
        yield running
    finally:
        await running.stop()


def workflow(name: str) -> JSON:
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {"name": f"{name}_work", "taskReferenceName": "work", "type": "SIMPLE"},
            {
                "name": "wait",
                "taskReferenceName": "wait",
                "type": "WAIT",
                "inputParameters": {"duration": "1 seconds"},  # the sweeper ends it
            },
        ],
    }


@pytest.mark.timeout(120)
async def test_a_workflow_completes_through_the_authenticated_cluster(
    cluster: LocalCluster,
) -> None:
    assert cluster.rpc_security.secret is not None
    assert (cluster.rpc_security.tls is not None) == cluster.spec.rpc_tls
    name = f"rpc_auth_{uuid.uuid4().hex[:6]}"
    api = cluster.gateway_urls[0]
    async with httpx.AsyncClient(timeout=30) as http:
        task_def = {"name": f"{name}_work", "retryCount": 0, "responseTimeoutSeconds": 60}
        assert (await http.post(f"{api}/metadata/taskdefs", json=[task_def])).status_code < 300
        assert (await http.put(f"{api}/metadata/workflow", json=[workflow(name)])).is_success
        wf_id = (await http.post(f"{api}/workflow/{name}", json={})).text

        async def poll() -> JSON | None:
            answer = await http.get(f"{api}/tasks/poll/{name}_work", params={"workerid": "w"})
            return answer.json() if answer.status_code == 200 and answer.content else None

        task = await eventually(poll, timeout_s=30, what="the SIMPLE task polled")
        done = {**task, "status": "COMPLETED", "outputData": {"ok": True}}
        assert (await http.post(f"{api}/tasks", json=done)).is_success

        async def status() -> JSON:
            wf: JSON = (await http.get(f"{api}/workflow/{wf_id}")).json()
            return wf

        final = await eventually(
            status, until=lambda wf: wf["status"] != "RUNNING", timeout_s=30, what="finished"
        )
    assert final["status"] == "COMPLETED"


def outsiders(cluster: LocalCluster, folder: Path) -> dict[str, RpcSecurity]:
    """Credentials a process outside the cluster might hold."""
    wrong_secret = RpcSecurity(secret=b"a-secret-of-another-cluster-0123456789", tls=None)
    if cluster.rpc_security.tls is None:
        return {"nothing": RpcSecurity(), "a wrong secret": wrong_secret}
    tls = cluster.rpc_security.tls
    other = make_certs(folder / "other-ca")
    return {
        "nothing (plain TCP to a TLS port)": RpcSecurity(),
        "the secret, a certificate of another CA": RpcSecurity(
            secret=cluster.rpc_security.secret,
            tls=TlsFiles(other.client_cert, other.client_key, tls.ca),
        ),
        "a certificate, a wrong secret": dataclasses.replace(
            wrong_secret, tls=TlsFiles(tls.cert, tls.key, tls.ca)
        ),
    }


REFUSAL = "refused RPC connection from 127.0.0.1:"


def refusal_lines(process: ServiceProcess) -> int:
    return process.log_tail(10_000_000).count(REFUSAL)


async def refusals_logged(process: ServiceProcess, count: int, where: str) -> None:
    async def read() -> int:
        return refusal_lines(process)

    await eventually(
        read, until=lambda n: n >= count, timeout_s=10, what=f"{count} refusal lines in {where}"
    )


@pytest.mark.timeout(120)
async def test_callers_without_the_credentials_get_no_answer(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    targets = {
        "decider": (cluster.decider_addresses, "decider.ping", cluster.of("decider.server")[0]),
        "queue service": (
            cluster.queue_addresses,
            "queue.list_queues",
            cluster.of("queue_service.server")[0],
        ),
    }
    for service, (addresses, method, process) in targets.items():
        before = refusal_lines(process)
        refused = 0
        for what, security in outsiders(cluster, tmp_path).items():
            async with RpcClient(addresses, security=security, connect_timeout_s=3) as client:
                with pytest.raises(Unavailable):
                    await client.call(method, {}, timeout_s=5)
                    pytest.fail(f"the {service} answered a caller holding {what}")
            refused += 1

        await refusals_logged(process, before + refused, f"the {service}'s log")
        async with cluster.rpc_client(addresses) as insider:
            assert await insider.call(method, {}) is not None


@pytest.mark.timeout(120)
async def test_a_stopped_cluster_leaves_no_credentials_in_its_temporary_folder() -> None:
    spec = ClusterSpec(shards=1, gateway_port=0, rpc_tls=True)
    running = await LocalCluster(spec, progress=lambda _: None).start()
    folder = running.work_dir
    assert (folder / "rpc-secret").is_file()
    assert (folder / "rpc-certs" / "server.key").is_file()
    await running.stop()
    assert not (folder / "rpc-secret").exists()
    assert not (folder / "rpc-certs").exists()
    assert list(folder.glob("*.log")), "the logs stay for a look after the stop"
