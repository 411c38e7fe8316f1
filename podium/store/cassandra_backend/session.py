"""An asyncio face for the Cassandra driver: connect, prepare, execute with explicit levels.

The driver runs requests on its own event thread; each ResponseFuture is bridged to an asyncio
future with ``add_callbacks`` and ``loop.call_soon_threadsafe``. Every page of a result is
fetched before the coroutine returns.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import zlib
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypeVar

from cassandra import (
    AuthenticationFailed,
    ConsistencyLevel,
    DriverException,
    OperationTimedOut,
    ReadTimeout,
    WriteTimeout,
)
from cassandra import Unavailable as CassUnavailable
from cassandra.auth import PlainTextAuthProvider
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

from podium.errors import ConfigError, PodiumError, Unavailable
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


def retention_ttl_s(retention_ms: int) -> int:
    """The CQL TTL that keeps a row for at least ``retention_ms``.

    Cassandra counts a TTL in whole seconds from the second the write lands in, so a row of
    TTL n lives between n-1 and n seconds: rounded up, plus one second.
    """
    return -(-retention_ms // 1000) + 1


def shard_of(key: str, shards: int) -> int:
    """A stable shard number in [0, shards) for ``key``."""
    return zlib.crc32(key.encode()) % shards


def level(name: str) -> int:
    """The driver's consistency level called ``name`` (checked by StoreConfig)."""
    return int(getattr(ConsistencyLevel, name))


def tls_context(
    ca_file: str, cert_file: str = "", key_file: str = "", *, check_hostname: bool = True
) -> ssl.SSLContext:
    """A client TLS context that trusts ``ca_file`` (the system's CAs if empty) and presents
    ``cert_file``/``key_file`` when given. The node's certificate is always verified; with
    ``check_hostname`` it must also name the address it was reached at."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = check_hostname
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file or None)
    return ctx


def store_tls_context(config: StoreConfig) -> ssl.SSLContext | None:
    """The TLS context ``config`` asks for (None: plain connections); an unreadable or
    malformed file raises ConfigError naming its variable."""
    if not config.cassandra_tls_on:
        return None
    for var, path in (
        ("PODIUM_CASSANDRA_TLS_CA_FILE", config.cassandra_tls_ca_file),
        ("PODIUM_CASSANDRA_TLS_CERT_FILE", config.cassandra_tls_cert_file),
        ("PODIUM_CASSANDRA_TLS_KEY_FILE", config.cassandra_tls_key_file),
    ):
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"{var}={path!r} cannot be read", variable=var)
    try:
        return tls_context(
            config.cassandra_tls_ca_file,
            config.cassandra_tls_cert_file,
            config.cassandra_tls_key_file,
            check_hostname=config.cassandra_tls_check_hostname,
        )
    except ssl.SSLError as exc:
        raise ConfigError(
            f"the Cassandra TLS files (PODIUM_CASSANDRA_TLS_*_FILE) are not usable PEM: {exc}",
            variable="PODIUM_CASSANDRA_TLS_CA_FILE",
        ) from exc


def connect_error(config: StoreConfig, exc: NoHostAvailable) -> PodiumError:
    """What a failed first connection means: refused credentials or an untrusted certificate
    are configuration errors (retrying cannot help; the message names the setting), anything
    else is an outage (Unavailable)."""
    where = f"{','.join(config.cassandra_hosts)}:{config.cassandra_port}"
    found = getattr(exc, "errors", None)
    # host -> error, or a bare list when the driver never reached a host
    errors = list(found.items()) if isinstance(found, dict) else [(where, e) for e in found or ()]
    for endpoint, err in errors:
        if isinstance(err, AuthenticationFailed):
            if not config.cassandra_username:
                return ConfigError(
                    f"Cassandra at {endpoint} requires a login: set PODIUM_CASSANDRA_USERNAME "
                    "and PODIUM_CASSANDRA_PASSWORD",
                    variable="PODIUM_CASSANDRA_USERNAME",
                )
            return ConfigError(
                f"Cassandra refused user {config.cassandra_username!r} at {endpoint}: "
                "bad credentials (PODIUM_CASSANDRA_USERNAME, PODIUM_CASSANDRA_PASSWORD)",
                variable="PODIUM_CASSANDRA_PASSWORD",
            )
    for endpoint, err in errors:
        text = str(err)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            reason = text.rsplit("certificate verify failed:", 1)[-1].strip(" )")
            return ConfigError(
                f"Cassandra at {endpoint} presented a certificate this client does not trust "
                f"({reason}): check PODIUM_CASSANDRA_TLS_CA_FILE",
                variable="PODIUM_CASSANDRA_TLS_CA_FILE",
            )
    return Unavailable(f"cannot reach Cassandra at {where}: {exc}")


def build_cluster(config: StoreConfig) -> Cluster:
    """A Cluster with token-aware, DC-aware balancing, the configured levels, and the login
    and TLS the settings name (no I/O but reading the TLS files)."""
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
        auth_provider=(
            PlainTextAuthProvider(config.cassandra_username, config.cassandra_password)
            if config.cassandra_username
            else None
        ),
        ssl_context=store_tls_context(config),
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
        except NoHostAvailable as exc:
            await asyncio.to_thread(cluster.shutdown)
            raise connect_error(config, exc) from exc
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
        for group in chunks(calls, WRITE_GROUP):
            batch = self.batch(BatchType.UNLOGGED)
            for stmt, params in group:
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


def chunks(items: Sequence[_T], size: int) -> list[Sequence[_T]]:
    """``items`` in consecutive slices of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


async def gather_limited(coros: Iterable[Awaitable[_T]], limit: int = FANOUT) -> list[_T]:
    """``asyncio.gather`` with at most ``limit`` awaitables running at once."""
    gate = asyncio.Semaphore(limit)

    async def one(c: Awaitable[_T]) -> _T:
        async with gate:
            return await c

    return list(await asyncio.gather(*(one(c) for c in coros)))
