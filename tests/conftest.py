"""Session-wide real servers for the test suite.

Redis servers are started once per session on free loopback ports and flushed before each
test that uses them. A single-node Cassandra is started on first use and shared by the
session (tests keep apart by keyspace or by data); it requires a login and TLS, as a
production cluster should. Nothing here is a mock: every test talks to a real redis-server
or Cassandra.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import redis

from podium.launch.redis import RedisServer
from tests.local_cassandra import HAVE_JVM, secured_node

if TYPE_CHECKING:
    from podium.launch.cassandra import CassandraNode


@pytest.fixture(scope="session")
def redis_pool() -> Iterator[list[RedisServer]]:
    """Three redis-server processes, shared by the session (tests use the first 1, 2 or 3)."""
    servers = [RedisServer().start() for _ in range(3)]
    try:
        yield servers
    finally:
        for s in servers:
            s.cleanup()


def _flush(servers: list[RedisServer]) -> None:
    for s in servers:
        if not s.is_running():
            s.start()
        with redis.Redis(host=s.host, port=s.port) as r:
            r.flushall()


@pytest.fixture
def redis_server(redis_pool: list[RedisServer]) -> RedisServer:
    """One clean Redis server."""
    _flush(redis_pool[:1])
    return redis_pool[0]


@pytest.fixture
def redis_shards(redis_pool: list[RedisServer]) -> list[RedisServer]:
    """Three clean Redis servers, to be used as queue shards."""
    _flush(redis_pool)
    return redis_pool


@pytest.fixture(scope="session")
def cassandra_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CassandraNode]:
    """One single-node Cassandra for the session (started on first use). As in production, it
    takes only a login (the role ``podium``, not the default superuser) over TLS with client
    certificates, from a CA made for the session."""
    if not HAVE_JVM:
        pytest.skip("Cassandra needs java and mvn (scripts/bootstrap.sh installs them)")

    node = secured_node(tmp_path_factory.mktemp("cassandra")).start()
    try:
        yield node
    finally:
        node.cleanup()
