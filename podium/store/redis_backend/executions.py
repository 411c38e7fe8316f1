"""Executions in Redis: one Lua script per conditional change, hashes and sorted sets."""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgpack
from redis.asyncio import Redis

from podium.errors import NotFound, Unavailable
from podium.store.api import ExecutionStore, IdempotencyBinding, WorkflowSnapshot
from podium.store.codec import decode, encode, with_input
from podium.store.config import StoreConfig
from podium.store.model import Record, workflow_index_time
from podium.store.prepare import check_expected_version, prepare_commit, sort_tasks
from podium.store.redis_backend.keys import Keys
from podium.store.redis_backend.replies import redis_errors, text
from podium.store.redis_backend.scripts import Scripts
from podium.store.redis_backend.search_source import RedisSearchSource
from podium.store.redis_backend.writes import RedisWriter
from podium.store.search import IndexedSearch
from podium.store.tasklogs import check_logs

# A removal that keeps racing with commits gives up after this many reads.
_MAX_TRIES = 8


class RedisExecutions(IndexedSearch, ExecutionStore):
    """:class:`ExecutionStore` on one Redis server (see docs/persistence.md for the keys)."""

    def __init__(self, client: Redis, keys: Keys, scripts: Scripts, config: StoreConfig) -> None:
        self._r = client
        self._k = keys
        self._s = scripts
        self._cfg = config
        self._search: RedisSearchSource = RedisSearchSource(client, keys, config.search_max_scan)
        self._writer = RedisWriter(client, keys, scripts, config)

    # -- writes -------------------------------------------------------------------------

    async def create_workflow(self, workflow: Record, tasks: Sequence[Record] = ()) -> int:
        prep = prepare_commit(workflow, tasks, self._cfg.max_record_bytes, split_input=True)
        return await self._writer.commit(prep, 0)

    async def commit(
        self,
        workflow: Record,
        tasks: Sequence[Record],
        expected_version: int,
        *,
        removed_task_ids: Sequence[str] = (),
    ) -> int:
        check_expected_version(expected_version)
        prep = prepare_commit(
            workflow, tasks, self._cfg.max_record_bytes, removed_task_ids, split_input=True
        )
        return await self._writer.commit(prep, expected_version)

    async def remove_workflow(self, workflow_id: str) -> None:
        for _ in range(_MAX_TRIES):
            snap = await self.read_workflow(workflow_id, include_tasks=True)
            if await self._writer.remove(snap.workflow, snap.version):
                return
        raise Unavailable(f"remove of {workflow_id!r} kept racing with writers; try again")

    async def purge_expired(self, limit: int = 1000) -> int:
        return await self._writer.purge_expired(limit)

    # -- reads --------------------------------------------------------------------------

    async def read_workflow(self, workflow_id: str, include_tasks: bool = True) -> WorkflowSnapshot:
        keys = [self._k.workflow(workflow_id), self._k.workflow_tasks(workflow_id)]
        with redis_errors("read"):
            reply = await self._s.read(keys=keys, args=["1" if include_tasks else "0"])
        if reply is None:
            raise NotFound(f"No such workflow found by id: {workflow_id}", workflowId=workflow_id)
        wf = with_input(decode(reply[0]), reply[3])
        if include_tasks:
            wf["tasks"] = sort_tasks([decode(b) for b in reply[2]])
        return WorkflowSnapshot(wf, int(reply[1]))

    async def get_task(self, task_id: str) -> Record:
        with redis_errors("read"):
            wid = await self._r.get(self._k.task_lookup(task_id))
            blob = None
            if wid is not None:
                blob = await self._r.hget(self._k.workflow_tasks(text(wid)), task_id)
        if blob is None:
            raise NotFound(f"No such task found by id: {task_id}", taskId=task_id)
        return decode(blob)

    async def get_tasks(self, workflow_id: str) -> list[Record]:
        return list((await self.read_workflow(workflow_id)).workflow["tasks"])

    async def pending_tasks_by_type(self, task_type: str) -> list[Record]:
        with redis_errors("read"):
            owners = await self._r.hgetall(self._k.pending(task_type))
            async with self._r.pipeline(transaction=False) as pipe:
                for tid, wid in owners.items():
                    pipe.hget(self._k.workflow_tasks(text(wid)), tid)
                blobs = await pipe.execute()
        out, gone = [], []
        for tid, blob in zip(owners, blobs, strict=True):
            if blob is None:
                gone.append(tid)  # the workflow expired while this task was not finished
            else:
                out.append(decode(blob))
        if gone:
            with redis_errors("read"):
                await self._r.hdel(self._k.pending(task_type), *gone)
        return out

    async def running_workflow_ids(
        self, workflow_name: str, version: int | None = None
    ) -> list[str]:
        with redis_errors("read"):
            found = await self._r.hgetall(self._k.running(workflow_name))
        return sorted(
            text(wid) for wid, ver in found.items() if version is None or int(ver) == version
        )

    async def workflows_by_correlation_id(
        self,
        workflow_name: str,
        correlation_id: str,
        include_closed: bool = False,
        include_tasks: bool = False,
    ) -> list[Record]:
        key = self._k.correlation(workflow_name, correlation_id)
        with redis_errors("read"):
            ids = sorted(text(m) for m in await self._r.smembers(key))
        records = await self._search.load_workflows(ids)
        stale = [
            wid
            for wid, wf in zip(ids, records, strict=True)
            if wf is None or wf.get("correlationId") != correlation_id
        ]
        if stale:
            with redis_errors("read"):
                await self._r.srem(key, *stale)
        out = [
            wf
            for wf in records
            if wf is not None
            and wf.get("correlationId") == correlation_id
            and (include_closed or wf.get("status") in ("RUNNING", "PAUSED"))
        ]
        if include_tasks:
            out = [await self.get_workflow(str(wf["workflowId"])) for wf in out]
        return sorted(out, key=workflow_index_time, reverse=True)

    # -- idempotency keys ---------------------------------------------------------------

    async def bind_idempotency_key(
        self, workflow_name: str, key: str, workflow_id: str, *, replacing: str = ""
    ) -> IdempotencyBinding:
        return await self._idempotency(workflow_name, key, workflow_id, replacing)

    async def release_idempotency_key(self, workflow_name: str, key: str, workflow_id: str) -> None:
        await self._idempotency(workflow_name, key, "", workflow_id)

    async def _idempotency(
        self, workflow_name: str, key: str, workflow_id: str, expected: str
    ) -> IdempotencyBinding:
        now = int(time.time() * 1000)
        with redis_errors("idempotency key"):
            holder, bound_at = await self._s.idempotency(
                keys=[self._k.idempotency(workflow_name, key)], args=[workflow_id, expected, now]
            )
        return IdempotencyBinding(text(holder), int(bound_at))

    # -- poll data and logs -------------------------------------------------------------

    async def update_poll_data(
        self, queue_name: str, domain: str | None, worker_id: str, last_poll_time_ms: int
    ) -> None:
        poll = {
            "queueName": queue_name,
            "domain": domain,
            "workerId": worker_id,
            "lastPollTime": int(last_poll_time_ms),
        }
        field = msgpack.packb([domain or "", worker_id])
        with redis_errors("poll data"):
            await self._r.hset(self._k.poll_data(queue_name), field, msgpack.packb(poll))

    async def get_poll_data(self, task_type: str) -> list[Record]:
        with redis_errors("poll data"):
            blobs = await self._r.hvals(self._k.poll_data(task_type))
        polls = [decode(b) for b in blobs]
        return sorted(polls, key=lambda p: (p.get("domain") or "", p["workerId"]))

    async def add_task_logs(self, task_id: str, logs: Sequence[Record]) -> None:
        entries = check_logs(task_id, logs, int(time.time() * 1000))
        blobs = [encode(e, self._cfg.max_record_bytes, "task log") for e in entries]
        if not blobs:
            return
        with redis_errors("task logs"):
            wid = await self._r.get(self._k.task_lookup(task_id))
            reply = [0]
            if wid is not None:
                reply = await self._s.add_logs(
                    keys=[
                        self._k.task_lookup(task_id),
                        self._k.task_log(task_id),
                        self._k.workflow(text(wid)),
                    ],
                    args=[wid, *blobs],
                )
        if int(reply[0]) != 1:
            raise NotFound(f"No such task found by id: {task_id}", taskId=task_id)

    async def get_task_logs(self, task_id: str) -> list[Record]:
        with redis_errors("task logs"):
            blobs = await self._r.lrange(self._k.task_log(task_id), 0, -1)
        return [decode(b) for b in blobs]
