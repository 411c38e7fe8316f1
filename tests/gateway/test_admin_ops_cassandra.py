"""The admin purge and the export/import round trip on a Cassandra store (the same HTTP calls
as ``test_admin_ops.py`` runs on Redis): the purge walks Cassandra's day buckets of the search
and removes through the decider, and an import writes through Cassandra's metadata store."""

from __future__ import annotations

import uuid

import pytest

from podium.launch.cassandra import CassandraNode
from podium.launch.redis import RedisServer
from tests.local_cassandra import cassandra_store_config
from tests.polling import eventually
from tests.stack import running_stack

from .api_calls import register, simple_workflow, start
from .conftest import Names, serve_gateway
from .test_admin_ops import (
    by_key,
    clock_after,
    definitions_of,
    exists,
    purge,
    search_ids,
    terminate,
)


@pytest.mark.timeout(300)
async def test_purge_and_export_import_on_cassandra(
    gateway_redis: RedisServer, cassandra_node: CassandraNode, names: Names
) -> None:
    tag = uuid.uuid4().hex[:10]
    config = cassandra_store_config(cassandra_node, f"podium_admin_{tag}")
    async with (
        running_stack(gateway_redis, f"podium:admincass:{tag}:", store_config=config) as stack,
        serve_gateway(stack.gateway_settings()) as g,
    ):
        client = g.client
        wf, t = names("purged"), names("purged_t")
        await register(client, simple_workflow(wf, t))
        old = [await start(client, wf, {"x": i}) for i in range(2)]
        running = await start(client, wf, {"x": "running"})
        cutoff = max([await terminate(client, w) for w in old]) + 1
        await eventually(
            lambda: clock_after(cutoff), timeout_s=5, what="the clock passed the cutoff"
        )

        params = {"endTimeBefore": str(cutoff), "startedAfter": str(cutoff - 3_600_000)}
        answer = await purge(client, batchSize=1, workflowName=wf, **params)
        removed, calls = answer["removed"], 1
        while answer["more"]:
            answer = await purge(
                client, batchSize=1, workflowName=wf, continueToken=answer["continueToken"],
                **params,
            )  # fmt: skip
            removed, calls = removed + answer["removed"], calls + 1
            assert calls < 10
        assert removed == 2
        assert not any([await exists(client, w) for w in old])
        assert await exists(client, running)
        assert await search_ids(client, wf) == {running}

        workflows, task_def, handler, schedule = definitions_of(names)
        for d in workflows:
            await register(client, d)
        assert (await client.post("/api/metadata/taskdefs", json=[task_def])).status_code == 200
        assert (await client.post("/api/event", json=handler)).status_code == 200
        assert (await client.post("/api/scheduler/schedules", json=schedule)).status_code == 200
        doc = (await client.get("/api/admin/export")).json()

        empty = cassandra_store_config(cassandra_node, f"podium_admin_import_{tag}")
        async with serve_gateway(stack.gateway_settings(store=empty)) as other:
            r = await other.client.post("/api/admin/import", json=doc)
            assert r.status_code == 200, r.text
            assert r.json()["workflowDefs"] == {"created": len(doc["workflowDefs"]), "updated": 0}
            again = (await other.client.get("/api/admin/export")).json()
            assert by_key(again) == by_key(doc)
