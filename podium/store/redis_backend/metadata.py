"""Definitions and event handlers in Redis hashes, with small Lua scripts for conditions."""

from __future__ import annotations

from redis.asyncio import Redis

from podium.errors import Conflict, NotFound, Unavailable
from podium.redis_pipe import RedisPipe
from podium.store.api import MetadataStore
from podium.store.codec import decode, encode
from podium.store.config import StoreConfig
from podium.store.model import (
    Record,
    check_event_handler,
    check_task_def,
    check_workflow_def,
)
from podium.store.redis_backend.keys import Keys
from podium.store.redis_backend.replies import redis_errors, text
from podium.store.redis_backend.scripts import Scripts


class RedisMetadata(MetadataStore):
    """:class:`MetadataStore` on Redis: task defs in one hash, workflow defs in a hash per name."""

    def __init__(
        self, client: Redis, keys: Keys, scripts: Scripts, config: StoreConfig, pipe: RedisPipe
    ) -> None:
        self._r = client
        #: a start reads its workflow's definition: that read goes through the pipelined
        #: connection, as the executions' reads do
        self._pipe = pipe
        self._k = keys
        self._s = scripts
        self._cfg = config

    # -- task definitions ---------------------------------------------------------------

    async def _put_task_def(self, task_def: Record, mode: str) -> None:
        d = check_task_def(task_def)
        blob = encode(d, self._cfg.max_record_bytes, f"task definition {d['name']}")
        with redis_errors("metadata"):
            done = await self._s.def_put(
                keys=[self._k.task_defs(), self._k.task_def_names()],
                args=[mode, d["name"], blob, d["name"]],
            )
        if int(done) != 1:
            raise NotFound(f"No such taskType found by name: {d['name']}", name=d["name"])

    async def create_task_def(self, task_def: Record) -> None:
        await self._put_task_def(task_def, "upsert")

    async def update_task_def(self, task_def: Record) -> None:
        await self._put_task_def(task_def, "update")

    async def get_task_def(self, name: str) -> Record:
        with redis_errors("metadata"):
            blob = await self._r.hget(self._k.task_defs(), name)
        if blob is None:
            raise NotFound(f"No such taskType found by name: {name}", name=name)
        return decode(blob)

    async def list_task_defs(self) -> list[Record]:
        with redis_errors("metadata"):
            found = await self._r.hgetall(self._k.task_defs())
        return [decode(found[n]) for n in sorted(found, key=text)]

    async def remove_task_def(self, name: str) -> None:
        with redis_errors("metadata"):
            done = await self._s.def_remove(
                keys=[self._k.task_defs(), self._k.task_def_names()], args=[name, name]
            )
        if int(done) != 1:
            raise NotFound(f"No such taskType found by name: {name}", name=name)

    # -- workflow definitions -----------------------------------------------------------

    async def _put_workflow_def(self, workflow_def: Record, mode: str) -> int:
        d = check_workflow_def(workflow_def)
        name, version = str(d["name"]), int(d["version"])
        blob = encode(d, self._cfg.max_record_bytes, f"workflow definition {name}/{version}")
        with redis_errors("metadata"):
            return int(
                await self._s.def_put(
                    keys=[self._k.workflow_def(name), self._k.workflow_def_names()],
                    args=[mode, version, blob, name],
                )
            )

    async def create_workflow_def(self, workflow_def: Record) -> None:
        if await self._put_workflow_def(workflow_def, "create") != 1:
            name, version = workflow_def["name"], workflow_def["version"]
            raise Conflict(
                f"Workflow with {name}.{version} already exists!", name=name, version=version
            )

    async def update_workflow_def(self, workflow_def: Record) -> None:
        await self._put_workflow_def(workflow_def, "upsert")

    async def get_workflow_def(self, name: str, version: int | None = None) -> Record:
        with redis_errors("metadata"):
            key = self._k.workflow_def(name)
            if version is None:
                # A map under RESP3 (what redis-py asks for); a flat [version, blob, ...]
                # where the server only speaks RESP2 and redis-py fell back to it.
                reply = await self._pipe.execute("HGETALL", key)
                found = (
                    reply
                    if isinstance(reply, dict)
                    else dict(zip(reply[::2], reply[1::2], strict=True))
                )
                blob = found[max(found, key=int)] if found else None
            else:
                blob = await self._pipe.execute("HGET", key, version)
        if blob is None:
            suffix = "" if version is None else f" and version: {version}"
            raise NotFound(
                f"No such workflow definition found by name: {name}{suffix}",
                name=name,
                version=version,
            )
        return decode(blob)

    async def _all_versions(self) -> list[tuple[str, dict[bytes, bytes]]]:
        with redis_errors("metadata"):
            names = sorted(text(n) for n in await self._r.smembers(self._k.workflow_def_names()))
            async with self._r.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(self._k.workflow_def(name))
                found = await pipe.execute()
        return [(n, f) for n, f in zip(names, found, strict=True) if f]

    async def list_workflow_defs(self) -> list[Record]:
        return [
            decode(versions[v])
            for _, versions in await self._all_versions()
            for v in sorted(versions, key=int)
        ]

    async def list_latest_workflow_defs(self) -> list[Record]:
        return [
            decode(versions[max(versions, key=int)]) for _, versions in await self._all_versions()
        ]

    async def workflow_def_versions(self, name: str) -> list[int]:
        with redis_errors("metadata"):
            versions = await self._r.hkeys(self._k.workflow_def(name))
        return sorted(int(v) for v in versions)

    async def remove_workflow_def(self, name: str, version: int) -> None:
        with redis_errors("metadata"):
            done = await self._s.def_remove(
                keys=[self._k.workflow_def(name), self._k.workflow_def_names()],
                args=[version, name],
            )
        if int(done) != 1:
            raise NotFound(
                f"No such workflow definition found by name: {name} and version: {version}",
                name=name,
                version=version,
            )

    # -- event handlers -----------------------------------------------------------------

    async def _put_handler(self, name: str, mode: str, handler: Record | None) -> None:
        blob = b""
        event = ""
        if handler is not None:
            blob = encode(handler, self._cfg.max_record_bytes, f"event handler {name}")
            event = str(handler["event"])
        for _ in range(8):
            with redis_errors("metadata"):
                current = text(await self._r.hget(self._k.handler_events(), name) or b"")
                done = int(
                    await self._s.handler_put(
                        keys=[
                            self._k.handlers(),
                            self._k.handler_events(),
                            self._k.handlers_of_event(current),
                            self._k.handlers_of_event(event),
                        ],
                        args=[mode, name, current, blob, event],
                    )
                )
            if done == 1:
                return
            if done == 0:
                if mode == "create":
                    raise Conflict(f"EventHandler with name {name} already exists!", name=name)
                raise NotFound(f"EventHandler with name {name} not found!", name=name)
        raise Unavailable(f"event handler {name!r} kept changing; try again")

    async def add_event_handler(self, handler: Record) -> None:
        d = check_event_handler(handler)
        await self._put_handler(str(d["name"]), "create", d)

    async def update_event_handler(self, handler: Record) -> None:
        d = check_event_handler(handler)
        await self._put_handler(str(d["name"]), "update", d)

    async def remove_event_handler(self, name: str) -> None:
        await self._put_handler(name, "remove", None)

    async def list_event_handlers(self) -> list[Record]:
        with redis_errors("metadata"):
            found = await self._r.hgetall(self._k.handlers())
        return [decode(found[n]) for n in sorted(found, key=text)]

    async def event_handlers_for_event(self, event: str, active_only: bool = True) -> list[Record]:
        with redis_errors("metadata"):
            members = await self._r.smembers(self._k.handlers_of_event(event))
            names = sorted(text(n) for n in members)
            blobs = await self._r.hmget(self._k.handlers(), names) if names else []
        handlers = [decode(b) for b in blobs if b is not None]
        return [h for h in handlers if not active_only or h.get("active", False)]

    # -- access keys --------------------------------------------------------------------

    async def create_access_key(self, key: Record) -> None:
        key_id = str(key["keyId"])
        blob = encode(key, self._cfg.max_record_bytes, f"access key {key_id}")
        with redis_errors("metadata"):
            created = await self._r.hsetnx(self._k.access_keys(), key_id, blob)
        if not int(created):
            raise Conflict(f"Key {key_id} already exists", keyId=key_id)

    async def get_access_key(self, key_id: str) -> Record:
        with redis_errors("metadata"):
            blob = await self._r.hget(self._k.access_keys(), key_id)
        if blob is None:
            raise NotFound(f"No such key: {key_id}", keyId=key_id)
        return decode(blob)

    async def list_access_keys(self) -> list[Record]:
        with redis_errors("metadata"):
            found = await self._r.hgetall(self._k.access_keys())
        return [decode(found[k]) for k in sorted(found, key=text)]

    async def remove_access_key(self, key_id: str) -> None:
        with redis_errors("metadata"):
            removed = await self._r.hdel(self._k.access_keys(), key_id)
        if not int(removed):
            raise NotFound(f"No such key: {key_id}", keyId=key_id)
