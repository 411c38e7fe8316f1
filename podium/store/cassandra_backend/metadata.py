"""Definitions and event handlers on Cassandra.

Each table is partitioned by name, so no single partition takes every write; listing all is a
paged scan of a small table. Every write to a definition row is a lightweight transaction
(create: IF NOT EXISTS, update: IF EXISTS, remove: IF EXISTS) so that LWT and plain writes
never mix on one row.
"""

from __future__ import annotations

from podium.errors import Conflict, NotFound, Unavailable
from podium.store.api import MetadataStore
from podium.store.cassandra_backend.session import CassandraSession, Row, gather_limited
from podium.store.cassandra_backend.statements import Statements
from podium.store.cassandra_backend.writes import APPLIED
from podium.store.codec import decode, encode
from podium.store.config import StoreConfig
from podium.store.model import Record, check_event_handler, check_task_def, check_workflow_def

_MAX_TRIES = 8


class CassandraMetadata(MetadataStore):
    """:class:`MetadataStore` on Cassandra."""

    def __init__(self, db: CassandraSession, st: Statements, config: StoreConfig) -> None:
        self._db = db
        self._st = st
        self._cfg = config

    async def _applied(self, stmt: object, params: tuple[object, ...]) -> Row:
        rows = await self._db.execute(stmt, params)
        return rows[0] if rows else {APPLIED: False}

    async def _upsert(
        self, insert: tuple[object, tuple[object, ...]], update: tuple[object, tuple[object, ...]]
    ) -> None:
        # Insert-if-absent, else update-if-present: both conditional, so a row is only ever
        # written through Paxos. A delete between the two makes us go round again.
        for _ in range(_MAX_TRIES):
            if (await self._applied(*insert)).get(APPLIED):
                return
            if (await self._applied(*update)).get(APPLIED):
                return
        raise Unavailable("definition kept changing under an upsert; try again")

    # -- task definitions ---------------------------------------------------------------

    async def create_task_def(self, task_def: Record) -> None:
        d = check_task_def(task_def)
        blob = encode(d, self._cfg.max_record_bytes, f"task definition {d['name']}")
        await self._upsert(
            (self._st.taskdef_insert, (d["name"], blob)),
            (self._st.taskdef_update, (blob, d["name"])),
        )

    async def update_task_def(self, task_def: Record) -> None:
        d = check_task_def(task_def)
        blob = encode(d, self._cfg.max_record_bytes, f"task definition {d['name']}")
        if not (await self._applied(self._st.taskdef_update, (blob, d["name"]))).get(APPLIED):
            raise NotFound(f"No such taskType found by name: {d['name']}", name=d["name"])

    async def get_task_def(self, name: str) -> Record:
        rows = await self._db.execute(self._st.taskdef_get, (name,))
        if not rows:
            raise NotFound(f"No such taskType found by name: {name}", name=name)
        return decode(rows[0]["payload"])

    async def list_task_defs(self) -> list[Record]:
        rows = await self._db.execute(self._st.taskdef_all)
        return [decode(r["payload"]) for r in sorted(rows, key=lambda r: str(r["name"]))]

    async def remove_task_def(self, name: str) -> None:
        if not (await self._applied(self._st.taskdef_delete, (name,))).get(APPLIED):
            raise NotFound(f"No such taskType found by name: {name}", name=name)

    # -- workflow definitions -----------------------------------------------------------

    def _encode_def(self, workflow_def: Record) -> tuple[str, int, bytes]:
        d = check_workflow_def(workflow_def)
        name, version = str(d["name"]), int(d["version"])
        blob = encode(d, self._cfg.max_record_bytes, f"workflow definition {name}/{version}")
        return name, version, blob

    async def create_workflow_def(self, workflow_def: Record) -> None:
        name, version, blob = self._encode_def(workflow_def)
        if not (await self._applied(self._st.wfdef_insert, (name, version, blob))).get(APPLIED):
            raise Conflict(
                f"Workflow with {name}.{version} already exists!", name=name, version=version
            )

    async def update_workflow_def(self, workflow_def: Record) -> None:
        name, version, blob = self._encode_def(workflow_def)
        await self._upsert(
            (self._st.wfdef_insert, (name, version, blob)),
            (self._st.wfdef_update, (blob, name, version)),
        )

    async def get_workflow_def(self, name: str, version: int | None = None) -> Record:
        if version is None:
            rows = await self._db.execute(self._st.wfdef_latest, (name,))
        else:
            rows = await self._db.execute(self._st.wfdef_get, (name, version))
        if not rows:
            suffix = "" if version is None else f" and version: {version}"
            raise NotFound(
                f"No such workflow definition found by name: {name}{suffix}",
                name=name,
                version=version,
            )
        return decode(rows[0]["payload"])

    async def _all_defs(self) -> list[Row]:
        rows = await self._db.execute(self._st.wfdef_all)
        return sorted(rows, key=lambda r: (str(r["name"]), int(r["version"])))

    async def list_workflow_defs(self) -> list[Record]:
        return [decode(r["payload"]) for r in await self._all_defs()]

    async def list_latest_workflow_defs(self) -> list[Record]:
        latest: dict[str, Row] = {}
        for r in await self._all_defs():
            latest[r["name"]] = r  # sorted by version, so the last one wins
        return [decode(latest[n]["payload"]) for n in sorted(latest)]

    async def workflow_def_versions(self, name: str) -> list[int]:
        rows = await self._db.execute(self._st.wfdef_versions, (name,))
        return sorted(int(r["version"]) for r in rows)

    async def remove_workflow_def(self, name: str, version: int) -> None:
        if not (await self._applied(self._st.wfdef_delete, (name, version))).get(APPLIED):
            raise NotFound(
                f"No such workflow definition found by name: {name} and version: {version}",
                name=name,
                version=version,
            )

    # -- event handlers -----------------------------------------------------------------

    async def add_event_handler(self, handler: Record) -> None:
        d = check_event_handler(handler)
        name, event = str(d["name"]), str(d["event"])
        blob = encode(d, self._cfg.max_record_bytes, f"event handler {name}")
        # The by-event entry goes first; readers check it against the handler's own row.
        await self._db.execute(self._st.handler_event_put, (event, name))
        if not (await self._applied(self._st.handler_insert, (name, event, blob))).get(APPLIED):
            raise Conflict(f"EventHandler with name {name} already exists!", name=name)

    async def update_event_handler(self, handler: Record) -> None:
        d = check_event_handler(handler)
        name, event = str(d["name"]), str(d["event"])
        blob = encode(d, self._cfg.max_record_bytes, f"event handler {name}")
        await self._db.execute(self._st.handler_event_put, (event, name))
        for _ in range(_MAX_TRIES):
            old = await self._current_event(name)
            row = await self._applied(self._st.handler_update, (event, blob, name, old))
            if row.get(APPLIED):
                if old != event:
                    await self._db.execute(self._st.handler_event_delete, (old, name))
                return
        raise Unavailable(f"event handler {name!r} kept changing; try again")

    async def remove_event_handler(self, name: str) -> None:
        for _ in range(_MAX_TRIES):
            old = await self._current_event(name)
            if (await self._applied(self._st.handler_delete, (name, old))).get(APPLIED):
                await self._db.execute(self._st.handler_event_delete, (old, name))
                return
        raise Unavailable(f"event handler {name!r} kept changing; try again")

    async def _current_event(self, name: str) -> str:
        rows = await self._db.execute(self._st.handler_get, (name,))
        if not rows:
            raise NotFound(f"EventHandler with name {name} not found!", name=name)
        return str(rows[0]["event"])

    async def list_event_handlers(self) -> list[Record]:
        rows = await self._db.execute(self._st.handler_all)
        return [decode(r["payload"]) for r in sorted(rows, key=lambda r: str(r["name"]))]

    async def event_handlers_for_event(self, event: str, active_only: bool = True) -> list[Record]:
        names = sorted(
            r["name"] for r in await self._db.execute(self._st.handler_event_get, (event,))
        )
        found = await gather_limited(self._db.execute(self._st.handler_get, (n,)) for n in names)
        handlers = [
            decode(rows[0]["payload"])
            for rows in found
            if rows and rows[0]["event"] == event  # entries are candidates: check the row
        ]
        return [h for h in handlers if not active_only or h.get("active", False)]

    # -- access keys --------------------------------------------------------------------

    async def create_access_key(self, key: Record) -> None:
        key_id = str(key["keyId"])
        blob = encode(key, self._cfg.max_record_bytes, f"access key {key_id}")
        if not (await self._applied(self._st.key_insert, (key_id, blob))).get(APPLIED):
            raise Conflict(f"Key {key_id} already exists", keyId=key_id)

    async def get_access_key(self, key_id: str) -> Record:
        rows = await self._db.execute(self._st.key_get, (key_id,))
        if not rows:
            raise NotFound(f"No such key: {key_id}", keyId=key_id)
        return decode(rows[0]["payload"])

    async def list_access_keys(self) -> list[Record]:
        rows = await self._db.execute(self._st.key_all)
        return [decode(r["payload"]) for r in sorted(rows, key=lambda r: str(r["key_id"]))]

    async def remove_access_key(self, key_id: str) -> None:
        if not (await self._applied(self._st.key_delete, (key_id,))).get(APPLIED):
            raise NotFound(f"No such key: {key_id}", keyId=key_id)
