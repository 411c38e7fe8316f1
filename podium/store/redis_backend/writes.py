"""Writes of executions in Redis: each conditional change is one Lua script.

Every key a script touches is passed in KEYS. When the set of keys depends on stored state
(all tasks of a workflow, for expiry or removal), the caller reads that state first and the
script checks it is still current, answering "call again" if not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast

import msgpack
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from podium.aio import MERGED_IN_FLIGHT, Merged
from podium.errors import Conflict, NotFound, PodiumError, Unavailable
from podium.redis_conn import run_replicated
from podium.store.codec import decode
from podium.store.config import StoreConfig
from podium.store.errors import DuplicateTask, VersionConflict
from podium.store.model import (
    Record,
    day_of,
    task_index_time,
    task_unique_key,
    workflow_index_time,
)
from podium.store.prepare import PreparedCommit, missing_removed
from podium.store.redis_backend.keys import Keys
from podium.store.redis_backend.replies import redis_errors, text
from podium.store.redis_backend.scripts import Scripts

log = logging.getLogger(__name__)
# A script that asks to be called again (its view of the tasks was stale) gets this many tries.
_MAX_TRIES = 8
# Expired workflows whose index entries one terminal commit purges on the side.
_PURGE_ON_COMMIT = 16
# Running workflows whose last committed input a writer remembers (see RedisWriter._inputs).
_KNOWN_INPUTS = 10_000


@dataclass(frozen=True)
class Footprint:
    """Where a workflow's entries in shared keys live: enough to remove them later."""

    name: str
    day: int
    correlation_id: str
    tasks: tuple[tuple[str, str, int], ...]  # (task id, task type, day)

    def pack(self) -> bytes:
        return bytes(msgpack.packb([self.name, self.day, self.correlation_id, self.tasks]))

    @classmethod
    def unpack(cls, blob: bytes) -> Footprint:
        name, day, corr, tasks = msgpack.unpackb(blob, raw=False)
        return cls(name, day, corr, tuple((t, ty, d) for t, ty, d in tasks))

    @classmethod
    def of(cls, wf: Record, tasks: list[Record]) -> Footprint:
        return cls(
            str(wf["workflowName"]),
            day_of(workflow_index_time(wf)),
            str(wf.get("correlationId") or ""),
            tuple(
                (str(t["taskId"]), str(t["taskType"]), day_of(task_index_time(t))) for t in tasks
            ),
        )

    def shared_keys(self, k: Keys) -> list[str]:
        """Running hash, the two workflow index days and the correlation set."""
        return [
            k.running(self.name),
            k.index("workflow", None, self.day),
            k.index("workflow", self.name, self.day),
            k.correlation(self.name, self.correlation_id),
        ]


class RedisWriter:
    """create / commit / remove / purge of workflows in Redis."""

    def __init__(self, client: Redis, keys: Keys, scripts: Scripts, config: StoreConfig) -> None:
        self._r = client
        self._k = keys
        self._s = scripts
        self._retention_ms = config.retention_ms
        self._wait_replicas = config.redis_wait_replicas
        self._wait_timeout_ms = config.redis_wait_timeout_ms
        #: commits of several workflows made together go in one pipeline (and one WAIT)
        self._commits: Merged[tuple[list[str], list[Any]], Any] = Merged(
            self._send_commits, max_in_flight=MERGED_IN_FLIGHT, max_items=64, name="store-commits"
        )
        #: workflow id -> (version, input object) of this writer's last commit of it: a commit
        #: at that version whose record holds the very same input leaves the stored one as it
        #: is (the decider shares a workflow's input between its decisions, never changing it)
        self._inputs: OrderedDict[str, tuple[int, object]] = OrderedDict()

    async def commit(self, prep: PreparedCommit, expected: int) -> int:
        """Run commit.lua; ``expected`` 0 creates. See ExecutionStore.commit."""
        # When expiry starts, every key of the workflow must be in KEYS: read its tasks first.
        # Otherwise try without them; the script answers 3 if it needs them after all.
        full = prep.terminal and self._retention_ms > 0
        known = self._inputs.pop(prep.workflow_id, None)
        same = known is not None and known[0] == expected and known[1] is prep.input
        input_arg = b"=" if same else prep.input_blob()
        for _ in range(_MAX_TRIES):
            others, removed = await self._stored_tasks(prep, expected, full)
            keys, args = self._commit_call(prep, expected, others if full else None, removed)
            args.append(input_arg)
            with redis_errors("commit"):
                reply = await self._commits((keys, args))
            code = int(reply[0])
            if code == 1:
                if not prep.terminal:
                    self._inputs[prep.workflow_id] = (int(reply[1]), prep.input)
                    if len(self._inputs) > _KNOWN_INPUTS:
                        self._inputs.popitem(last=False)
                if prep.terminal and self._retention_ms > 0:
                    await self._purge_on_the_side()
                return int(reply[1])
            if code == 0:
                raise _version_error(prep.workflow_id, expected, int(reply[1]))
            if code == 2:
                key, owner = text(reply[1]), text(reply[2])
                raise DuplicateTask(
                    f"workflow {prep.workflow_id!r} already has task {owner!r} for {key}",
                    workflowId=prep.workflow_id, uniqueKey=key, ownerTaskId=owner,
                )  # fmt: skip
            if code == 4:
                raise missing_removed(prep.workflow_id, [text(reply[1])])
            full = True
        raise Unavailable(f"commit of {prep.workflow_id!r} kept racing; try again")

    async def _send_commits(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Run commit.lua for each call in one round trip; one reply (or error) per call.

        With ``redis_wait_replicas`` one WAIT follows them all. A commit refused there may
        be on the primary: the caller's retry is fenced by the version, so it cannot apply
        twice."""
        if not self._wait_replicas:  # pipelined on the scripts' connection: one write
            return list(
                await asyncio.gather(
                    *(self._s.commit(keys=keys, args=args) for keys, args in calls),
                    return_exceptions=True,
                )
            )
        if len(calls) == 1:
            keys, args = calls[0]
            return [await run_replicated(
                self._r, self._s.commit, keys, args,
                replicas=self._wait_replicas, timeout_ms=self._wait_timeout_ms,
                what="commit",
            )]  # fmt: skip
        pipe = self._r.pipeline(transaction=False)
        sha = self._s.commit.sha
        for keys, args in calls:
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        if self._wait_replicas:
            pipe.execute_command("WAIT", self._wait_replicas, self._wait_timeout_ms)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        if self._wait_replicas:
            acked = replies.pop()
            if isinstance(acked, BaseException) or int(acked) < self._wait_replicas:
                refused = Unavailable(
                    f"commit: {acked} of {self._wait_replicas} replicas confirmed the write "
                    f"within {self._wait_timeout_ms} ms"
                )
                return [refused] * len(calls)
        out: list[Any] = []
        for (keys, args), reply in zip(calls, replies, strict=True):
            if isinstance(reply, NoScriptError):  # a restarted server: load it, one by one
                reply = (await self._send_commits([(keys, args)]))[0]
            out.append(reply)
        return out

    async def _stored_tasks(
        self, prep: PreparedCommit, expected: int, full: bool
    ) -> tuple[list[Record], list[Record]]:
        """(other stored tasks if ``full``, the tasks to remove), read at one instant."""
        if not full and not prep.removed:
            return [], []
        wid = prep.workflow_id
        with redis_errors("commit"):
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hget(self._k.workflow(wid), "ver")
                if full:
                    pipe.hvals(self._k.workflow_tasks(wid))
                else:
                    pipe.hmget(self._k.workflow_tasks(wid), list(prep.removed))
                ver, blobs = await pipe.execute()
        if int(ver or 0) != expected:
            return [], []  # the script will report the version conflict
        stored = {t["taskId"]: t for t in (decode(b) for b in blobs if b is not None)}
        missing = [tid for tid in prep.removed if tid not in stored]
        if missing:
            raise missing_removed(wid, missing)
        skip = {t.task_id for t in prep.tasks} | set(prep.removed)
        others = [t for tid, t in stored.items() if tid not in skip]
        return others, [stored[tid] for tid in prep.removed]

    def _commit_call(
        self,
        prep: PreparedCommit,
        expected: int,
        others: list[Record] | None,
        removed: list[Record],
    ) -> tuple[list[str], list[Any]]:
        k, wid = self._k, prep.workflow_id
        footprint = b""
        if others is not None:
            everything = [t.record for t in prep.tasks] + others
            footprint = Footprint.of(prep.record, everything).pack()
        fp = Footprint.of(prep.record, [])
        keys = [k.workflow(wid), k.workflow_tasks(wid), k.workflow_unique(wid)]
        keys += [*fp.shared_keys(k), k.expiry_ledger(), k.expiry_footprints()]
        args: list[Any] = [
            expected, prep.blob, wid, prep.def_version, int(prep.terminal), prep.index_time,
            self._retention_ms, int(others is not None), int(prep.correlation_id is not None),
            int(time.time() * 1000), footprint, len(prep.tasks),
        ]  # fmt: skip
        for t in prep.tasks:
            keys += _task_keys(k, t.task_id, t.task_type, day_of(t.index_time))
            args += [t.task_id, t.blob, t.unique_key, int(t.terminal), t.index_time]
        args.append(len(others or ()))
        for other in others or ():
            tid = str(other["taskId"])
            keys += [k.task_lookup(tid), k.task_log(tid)]
            args.append(tid)
        args.append(len(removed))
        for gone in removed:
            tid = str(gone["taskId"])
            keys += _task_keys(k, tid, str(gone["taskType"]), day_of(task_index_time(gone)))
            args += [tid, task_unique_key(gone)]
        return keys, args

    async def remove(self, wf: Record, version: int) -> bool:
        """Run remove.lua for ``wf`` (read with its tasks at ``version``); False: read again."""
        k, wid = self._k, str(wf["workflowId"])
        tasks = list(wf.get("tasks", []))
        fp = Footprint.of(wf, tasks)
        keys = [k.workflow(wid), k.workflow_tasks(wid), k.workflow_unique(wid)]
        keys += [*fp.shared_keys(k), k.expiry_ledger(), k.expiry_footprints()]
        args: list[Any] = [version, wid, len(tasks)]
        for tid, ttype, tday in fp.tasks:
            keys += _task_keys(k, tid, ttype, tday)
            args.append(tid)
        with redis_errors("remove"):
            reply = await self._s.remove(keys=keys, args=args)
        return int(reply[0]) == 1

    async def purge_expired(self, limit: int) -> int:
        """Remove the index entries of up to ``limit`` workflows whose retention ran out."""
        k, now = self._k, int(time.time() * 1000)
        with redis_errors("purge"):
            found = await self._r.zrangebyscore(k.expiry_ledger(), "-inf", now, start=0, num=limit)
            due = [text(w) for w in cast(list[bytes], found)]
            if not due:
                return 0
            blobs = await self._r.hmget(k.expiry_footprints(), due)
        purged = 0
        for wid, blob in zip(due, blobs, strict=True):
            fp = Footprint.unpack(blob) if isinstance(blob, bytes) else Footprint("", 0, "", ())
            keys = [k.workflow(wid), k.expiry_ledger(), k.expiry_footprints()]
            keys += fp.shared_keys(k)
            args: list[Any] = [wid, now, len(fp.tasks)]
            for tid, ttype, tday in fp.tasks:
                keys += [
                    k.pending(ttype),
                    k.index("task", None, tday),
                    k.index("task", ttype, tday),
                ]
                args.append(tid)
            with redis_errors("purge"):
                purged += int(await self._s.purge(keys=keys, args=args) == 1)
        return purged

    async def _purge_on_the_side(self) -> None:
        # Keeps pace with expiries without a background task: each finishing workflow cleans
        # up after a few that finished a retention ago. Its own commit has already succeeded.
        try:
            await self.purge_expired(_PURGE_ON_COMMIT)
        except PodiumError as exc:
            log.warning("purge of expired workflows failed (will retry later): %s", exc)


def _task_keys(k: Keys, tid: str, task_type: str, day: int) -> list[str]:
    """The keys of one task outside its workflow's hashes, in the scripts' order."""
    return [
        k.task_lookup(tid), k.pending(task_type), k.index("task", None, day),
        k.index("task", task_type, day), k.task_log(tid),
    ]  # fmt: skip


def _version_error(wid: str, expected: int, stored: int) -> PodiumError:
    if expected == 0:
        return Conflict(f"workflow {wid!r} already exists", workflowId=wid)
    if stored == 0:
        return NotFound(f"No such workflow found by id: {wid}", workflowId=wid)
    return VersionConflict(
        f"workflow {wid!r} is at version {stored}, not {expected}",
        workflowId=wid, expected=expected, actual=stored,
    )  # fmt: skip
