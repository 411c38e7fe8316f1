"""An asyncio face for the Cassandra driver: connect, prepare, execute with explicit levels.

The driver runs requests on its own event thread; each ResponseFuture is bridged to an asyncio
future with ``add_callbacks`` and ``loop.call_soon_threadsafe``. Every page of a result is
fetched before the coroutine returns.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypeVar

from cassandra import (
    ConsistencyLevel,
    DriverException,
    OperationTimedOut,
    ReadTimeout,
    WriteTimeout,
)
from cassandra import Unavailable as CassUnavailable
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType, PreparedStatement, dict_factory

from podium.errors import PodiumError, Unavailable
from podium.store.config import StoreConfig

Row = dict[str, Any]
_T = TypeVar("_T")
# How many requests one call fans out at once (reads of many partitions).
FANOUT = 64
# Rows per UNLOGGED batch of independent writes (Cassandra warns above 10 partitions).
WRITE_GROUP = 10

_RETRYABLE = (
    NoHostAvailable,
    OperationTimedOut,
    ReadTimeout,
    WriteTimeout,
    CassUnavailable,
    ConnectionException,
)


def shard_of(key: str, shards: int) -> int:
    """A stable shard number in [0, shards) for ``key``."""
    return zlib.crc32(key.encode()) % shards


def level(name: str) -> int:
    """The driver's consistency level called ``name`` (checked by StoreConfig)."""
    return int(getattr(ConsistencyLevel, name))


def build_cluster(config: StoreConfig) -> Cluster:
    """A Cluster with token-aware, DC-aware balancing and the configured levels (no I/O)."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=config.cassandra_local_dc)
        ),
        consistency_level=level(config.cassandra_consistency),
        serial_consistency_level=level(config.cassandra_serial_consistency),
        row_factory=dict_factory,
        request_timeout=10.0,
    )
    return Cluster(
        list(config.cassandra_hosts),
        port=config.cassandra_port,
        # v5 is what Cassandra 4.0+ speaks; naming it avoids a negotiation at every connect.
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=10.0,
    )


class CassandraSession:
    """One connected driver session, used from asyncio."""

    def __init__(self, cluster: Cluster, session: Session, config: StoreConfig) -> None:
        self.cluster = cluster
        self.session = session
        self.consistency = level(config.cassandra_consistency)
        self.serial_consistency = level(config.cassandra_serial_consistency)
        self._closed = False

    @classmethod
    async def connect(cls, config: StoreConfig, keyspace: str | None) -> CassandraSession:
        cluster = build_cluster(config)
        try:
            session = await asyncio.to_thread(cluster.connect, keyspace)
        except _RETRYABLE as exc:
            await asyncio.to_thread(cluster.shutdown)
            raise Unavailable(f"cannot reach Cassandra at {config.cassandra_hosts}: {exc}") from exc
        except BaseException:
            await asyncio.to_thread(cluster.shutdown)
            raise
        return cls(cluster, session, config)

    def prepare(self, cql: str, *, idempotent: bool = True) -> PreparedStatement:
        """Prepare (blocking: call from a thread at start-up) with this session's levels."""
        stmt = self.session.prepare(cql)
        stmt.consistency_level = self.consistency
        stmt.serial_consistency_level = self.serial_consistency
        # Idempotent statements may be retried by the driver; a conditional one may not.
        stmt.is_idempotent = idempotent
        return stmt

    def batch(self, batch_type: int = BatchType.LOGGED) -> BatchStatement:
        """A batch that carries the configured levels (a batch ignores its statements' own)."""
        return BatchStatement(
            batch_type=batch_type,
            consistency_level=self.consistency,
            serial_consistency_level=self.serial_consistency,
        )

    async def execute(self, statement: Any, params: Sequence[Any] | None = None) -> list[Row]:
        """Run one statement; all rows of every page."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Row]] = loop.create_future()
        rows: list[Row] = []
        try:
            rf: ResponseFuture = self.session.execute_async(statement, params)
        except _RETRYABLE as exc:
            raise Unavailable(f"Cassandra unavailable: {exc}") from exc

        def on_page(page: list[Row] | None) -> None:
            try:
                rows.extend(page or ())  # writes answer with no rows at all
                if rf.has_more_pages:
                    rf.start_fetching_next_page()  # calls on_page again with the next page
                    return
            except BaseException as exc:  # never let an error die in the driver's thread
                loop.call_soon_threadsafe(_settle, done, None, exc)
                return
            loop.call_soon_threadsafe(_settle, done, rows, None)

        def on_error(exc: BaseException) -> None:
            loop.call_soon_threadsafe(_settle, done, None, exc)

        rf.add_callbacks(on_page, on_error)
        try:
            return await done
        except _RETRYABLE as exc:
            raise Unavailable(f"Cassandra unavailable: {exc}") from exc
        except DriverException as exc:
            raise PodiumError(f"Cassandra refused a request: {exc}") from exc

    async def execute_all(
        self, calls: Iterable[tuple[Any, Sequence[Any] | None]]
    ) -> list[list[Row]]:
        """Run independent statements concurrently (at most FANOUT at a time), in order."""
        return await gather_limited(self.execute(s, p) for s, p in calls)

    async def write_many(self, calls: Sequence[tuple[Any, Sequence[Any] | None]]) -> None:
        """Apply independent plain writes, grouped into small UNLOGGED batches.

        One request per group instead of one per row costs the coordinator and this client
        far less. Groups stay under Cassandra's warning threshold for batches that span
        partitions (10); nothing here relies on the batch being atomic.
        """
        groups = []
        for start in range(0, len(calls), WRITE_GROUP):
            batch = self.batch(BatchType.UNLOGGED)
            for stmt, params in calls[start : start + WRITE_GROUP]:
                batch.add(stmt, params)
            groups.append(batch)
        await gather_limited(self.execute(b) for b in groups)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self.cluster.shutdown)


def _settle(
    fut: asyncio.Future[list[Row]], rows: list[Row] | None, exc: BaseException | None
) -> None:
    if fut.done():  # the caller was cancelled meanwhile
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(rows if rows is not None else [])


async def gather_limited(coros: Iterable[Awaitable[_T]], limit: int = FANOUT) -> list[_T]:
    """``asyncio.gather`` with at most ``limit`` awaitables running at once."""
    gate = asyncio.Semaphore(limit)

    async def one(c: Awaitable[_T]) -> _T:
        async with gate:
            return await c

    return list(await asyncio.gather(*(one(c) for c in coros)))
