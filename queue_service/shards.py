"""Redis shards: connections, the Lua scripts, key names, and failure mapping.

Each shard is one Redis server, or a primary with replicas that Redis Sentinel fails over
(``sentinel://name`` URLs, ``podium/redis_conn.py``). A queue's keys on a shard share one hash
tag, ``{queue|shard}``, so every script touches keys of one slot (and would run unchanged on a
Redis Cluster that holds several shards). With ``wait_replicas`` set, a push is acknowledged
only once that many replicas hold it (``WAIT``), so losing the primary loses no message its
producer was told is queued.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from podium.errors import ConfigError, InternalError, Unavailable
from podium.redis_conn import SCHEMES, connect, redact_url, run_replicated
from podium.redis_pipe import PipedScript, RedisPipe

SCRIPT_NAMES = (
    "push",
    "pop",
    "ack",
    "remove",
    "unack",
    "postpone",
    "get",
    "requeue",
    "schedule",
)
#: Scripts that create messages: with ``wait_replicas``, their result waits for the replicas.
DURABLE_SCRIPTS = frozenset({"push", "schedule"})
NOTIFY_CHANNEL = "pq:notify"
REGISTRY_KEY = "pq:registry"


@dataclass(frozen=True)
class ShardSpec:
    """A shard's stable name, its Redis URL, and how its writes are made durable.

    The URL may hold a password, so the repr shows it redacted (:func:`redact_url`)."""

    name: str
    url: str = field(repr=False)
    #: Sentinels' addresses, for a ``sentinel://master`` URL.
    sentinels: tuple[tuple[str, int], ...] = ()
    #: Replicas that must hold a push before it is acknowledged (0: the primary alone).
    wait_replicas: int = 0
    wait_timeout_ms: int = 1000

    def __repr__(self) -> str:
        return (
            f"ShardSpec(name={self.name!r}, url={redact_url(self.url)!r}, "
            f"sentinels={self.sentinels!r}, wait_replicas={self.wait_replicas!r}, "
            f"wait_timeout_ms={self.wait_timeout_ms!r})"
        )


def parse_shards(
    spec: str | Sequence[str],
    *,
    sentinels: tuple[tuple[str, int], ...] = (),
    wait_replicas: int = 0,
    wait_timeout_ms: int = 1000,
) -> list[ShardSpec]:
    """Parse ``"s0=redis://h:p/0,redis://h2:p2"``; unnamed shards are named by position.

    A ``sentinel://master/db`` shard uses ``sentinels``, which must then be given."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    shards: list[ShardSpec] = []
    for i, item in enumerate(x for x in items if x):
        name, sep, url = item.partition("=")
        # an unnamed URL may hold "=" in its query (rediss://...?ssl_ca_certs=...)
        if not sep or "://" in name:
            name, sep, url = f"s{i}", "", item
        shown = f"{name}={redact_url(url)}" if sep else redact_url(url)
        if not url.startswith(tuple(f"{scheme}://" for scheme in SCHEMES)):
            raise ConfigError(
                f"shard {shown!r} is not a redis:// URL", variable="PODIUM_QUEUE_SHARDS"
            )
        if url.startswith("sentinel://") and not sentinels:
            raise ConfigError(
                f"shard {shown!r} is a sentinel:// URL: set PODIUM_QUEUE_SENTINELS to the "
                "Sentinels' host:port list",
                variable="PODIUM_QUEUE_SENTINELS",
            )
        if not name or any(c in name for c in "{}|,= "):
            raise ConfigError(f"shard name {name!r} is not valid", variable="PODIUM_QUEUE_SHARDS")
        shards.append(ShardSpec(name, url, sentinels, wait_replicas, wait_timeout_ms))
    if not shards:
        raise ConfigError("no queue shards configured", variable="PODIUM_QUEUE_SHARDS")
    names = [s.name for s in shards]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate shard names in {names}", variable="PODIUM_QUEUE_SHARDS")
    return shards


def shard_index(msg_id: str, count: int) -> int:
    """Which of a queue's ``count`` shards holds ``msg_id`` (CRC-32, stable across languages)."""
    return zlib.crc32(msg_id.encode()) % count


def _load_script(name: str) -> str:
    return resources.files("queue_service").joinpath(f"scripts/{name}.lua").read_text()


_SCRIPT_SOURCES = {name: _load_script(name) for name in SCRIPT_NAMES}


class QueueKeys:
    """The four keys of one queue on one shard."""

    __slots__ = ("bodies", "delayed", "leased", "ready")

    def __init__(self, queue: str, shard: str) -> None:
        tag = f"pq:{{{queue}|{shard}}}"
        self.ready = f"{tag}:r"
        self.delayed = f"{tag}:d"
        self.leased = f"{tag}:l"
        self.bodies = f"{tag}:b"

    @property
    def all(self) -> list[str]:
        return [self.ready, self.delayed, self.leased, self.bodies]


class Shard:
    """One Redis server holding a part of every queue that uses it."""

    def __init__(self, spec: ShardSpec, *, socket_timeout_s: float = 5.0) -> None:
        self.spec = spec
        self.name = spec.name
        # A blocking pool: a burst of calls waits for a free connection instead of failing
        # with "too many connections" (which would read as a dead shard).
        self.redis: aioredis.Redis = connect(
            spec.url,
            sentinels=spec.sentinels,
            variable="PODIUM_QUEUE_SHARDS",
            blocking_pool=True,
            max_connections=64,
            timeout=socket_timeout_s,
            socket_connect_timeout=1.0,
            socket_timeout=socket_timeout_s,
        )
        #: the scripts' calls, pipelined over one connection of their own (podium/redis_pipe.py)
        self.pipe = RedisPipe(self.redis, timeout_s=socket_timeout_s)
        self.scripts: dict[str, PipedScript] = {
            name: PipedScript(self.redis, self.pipe, src) for name, src in _SCRIPT_SOURCES.items()
        }
        self._keys: dict[str, QueueKeys] = {}

    def keys(self, queue: str) -> QueueKeys:
        k = self._keys.get(queue)
        if k is None:
            if len(self._keys) > 100_000:  # bound the cache; names are cheap to rebuild
                self._keys.clear()
            k = self._keys[queue] = QueueKeys(queue, self.name)
        return k

    async def run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run one script; Redis failures become Unavailable naming this shard."""
        try:
            if self.spec.wait_replicas and script in DURABLE_SCRIPTS:
                return await run_replicated(
                    self.redis, self.scripts[script], keys, args,
                    replicas=self.spec.wait_replicas, timeout_ms=self.spec.wait_timeout_ms,
                    what=f"queue shard {self.name}",
                )  # fmt: skip
            return await self.scripts[script](keys=keys, args=args)
        except (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError) as exc:
            raise self.unavailable(exc) from None
        except RedisError as exc:
            raise InternalError(f"queue shard {self.name}: {exc}", shard=self.name) from None

    async def pipeline(self, build: Any) -> list[Any]:
        """Run ``build(pipe)`` then execute the pipeline (no MULTI), mapping failures."""
        try:
            pipe: Pipeline = self.redis.pipeline(transaction=False)
            build(pipe)
            return list(await pipe.execute())
        except (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError) as exc:
            raise self.unavailable(exc) from None
        except RedisError as exc:
            raise InternalError(f"queue shard {self.name}: {exc}", shard=self.name) from None

    def unavailable(self, exc: BaseException) -> Unavailable:
        return Unavailable(
            f"queue shard {self.name} ({redact_url(self.spec.url)}) is unavailable: {exc}",
            shard=self.name,
        )

    async def close(self) -> None:
        await self.pipe.aclose()
        await self.redis.aclose()
