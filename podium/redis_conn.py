"""Connections to a Redis server, direct or through Redis Sentinel, for the queue and the store.

A Redis address is a URL:

- ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS, ``unix://`` for a socket):
  one server;
- ``sentinel://master-name/db``: the primary of ``master-name`` as the Sentinels say, with
  the Sentinels' addresses given once beside it (``PODIUM_QUEUE_SENTINELS`` for the queue
  shards, ``PODIUM_STORE_REDIS_SENTINELS`` for the store). After a failover the client finds the
  new primary by itself; a user and password in the URL are the data servers' credentials.

``WAIT`` turns a write acknowledged by the primary into one held by ``replicas`` replicas too
(docs/reliability.md says what that does and does not promise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.sentinel import Sentinel
from redis.commands.core import AsyncScript

from podium.errors import ConfigError, Unavailable

SCHEMES = ("redis", "rediss", "unix", "sentinel")
#: Connections a non-blocking pool may open. redis-py's default, 100, refuses the next call
#: outright ("Too many connections"); calls that hold a connection while they wait (``WAIT``
#: for a replica) pass it in the burst after a failover or a replica's death.
MAX_CONNECTIONS = 1000


@dataclass(frozen=True)
class SentinelTarget:
    """``sentinel://master/db``, parsed."""

    master: str
    db: int
    username: str | None
    password: str | None


def parse_sentinel_url(url: str, variable: str) -> SentinelTarget:
    parts = urlsplit(url)
    if parts.scheme != "sentinel" or not parts.hostname:
        raise ConfigError(f"{url!r} is not a sentinel://master-name/db URL", variable=variable)
    path = parts.path.strip("/") or "0"
    if not path.isdigit():
        raise ConfigError(f"the database in {url!r} is not a number", variable=variable)
    return SentinelTarget(
        master=parts.hostname,
        db=int(path),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def parse_sentinels(value: str, variable: str) -> tuple[tuple[str, int], ...]:
    """``"h1:26379,h2:26379"`` as ``((h1, 26379), (h2, 26379))``."""
    out = []
    for item in (x.strip() for x in value.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"sentinel {item!r} is not host:port", variable=variable)
        out.append((host, int(port)))
    return tuple(out)


def connect(
    url: str,
    *,
    sentinels: tuple[tuple[str, int], ...] = (),
    variable: str,
    blocking_pool: bool = False,
    **options: Any,
) -> aioredis.Redis:
    """A client of the server that ``url`` names (nothing is sent until first use).

    ``options`` are redis-py connection settings (timeouts, ``max_connections``,
    ``decode_responses``). ``blocking_pool`` makes a burst of calls wait for a free
    connection instead of failing (direct connections only); other pools open up to
    :data:`MAX_CONNECTIONS`.
    """
    if urlsplit(url).scheme != "sentinel":
        if blocking_pool:
            pool = aioredis.BlockingConnectionPool.from_url(url, **options)
            return aioredis.Redis.from_pool(pool)
        return aioredis.Redis.from_url(url, **{"max_connections": MAX_CONNECTIONS, **options})
    target = parse_sentinel_url(url, variable)
    if not sentinels:
        raise ConfigError(f"{url!r} needs the Sentinels' addresses", variable=variable)
    options.pop("timeout", None)  # a BlockingConnectionPool setting
    options["max_connections"] = MAX_CONNECTIONS
    sentinel_options = {
        k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")
    }
    sentinel = Sentinel(list(sentinels), sentinel_kwargs=sentinel_options, **options)
    client: aioredis.Redis = sentinel.master_for(
        target.master,
        db=target.db,
        username=target.username,
        password=target.password,
    )
    return client


async def run_replicated(
    client: aioredis.Redis,
    script: AsyncScript,
    keys: list[Any],
    args: list[Any],
    *,
    replicas: int,
    timeout_ms: int,
    what: str,
) -> Any:
    """Run ``script``, then ``WAIT`` on the same connection (WAIT counts that connection's
    writes), in one round trip; raise ``Unavailable`` unless ``replicas`` replicas confirmed it.

    A refused write may still be on the primary: callers retry only writes that are safe to
    repeat (a queue push of the same id, a commit fenced by its version)."""
    pipe: Pipeline = client.pipeline(transaction=False)
    await script(keys=keys, args=args, client=pipe)
    pipe.execute_command("WAIT", replicas, timeout_ms)
    result, acked = await pipe.execute()
    if int(acked) < replicas:
        raise Unavailable(
            f"{what}: {acked} of {replicas} replicas confirmed the write within {timeout_ms} ms"
        )
    return result
