"""Fixtures for the store's contract tests: every test runs against Redis and Cassandra.

Both servers are real and shared by the session. Tests keep apart by data, not by wiping the
servers: each test draws fresh names (``ns``) and ids, so one Cassandra keyspace serves the
whole session (TRUNCATE costs most of a second per table).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from podium.launch.redis import RedisServer
from podium.store import Store, StoreConfig, open_store
from tests.local_cassandra import cassandra_store_config

BACKENDS = ["redis", "cassandra"]
CASSANDRA_TIMEOUT_S = 240
MakeStore = Callable[..., Awaitable[Store]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: starts servers of its own (tens of seconds)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The first Cassandra test also starts the node (its setup counts against the timeout), and
    # a loaded machine can take minutes for that: give every Cassandra test room for it.
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_cassandra = callspec is not None and callspec.params.get("backend") == "cassandra"
        if on_cassandra or "cassandra_node" in getattr(item, "fixturenames", ()):
            marker = item.get_closest_marker("timeout")
            if marker is None or float(marker.args[0]) < CASSANDRA_TIMEOUT_S:
                item.add_marker(pytest.mark.timeout(CASSANDRA_TIMEOUT_S), append=False)


def redis_config(server: RedisServer, **overrides: Any) -> StoreConfig:
    return StoreConfig(
        backend="redis", redis_url=server.url, key_prefix="podium:store:", **overrides
    )


@pytest.fixture(scope="session")
async def _store_cache() -> AsyncIterator[dict[Any, Store]]:
    cache: dict[Any, Store] = {}
    yield cache
    for s in cache.values():
        await s.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def base_config(backend: str, request: pytest.FixtureRequest) -> StoreConfig:
    """The configuration of the test's backend (Redis flushed before the test)."""
    if backend == "redis":
        return redis_config(request.getfixturevalue("redis_server"))
    return cassandra_store_config(request.getfixturevalue("cassandra_node"), "podium_test")


@pytest.fixture
def make_store(base_config: StoreConfig, _store_cache: dict[Any, Store]) -> MakeStore:
    """``await make_store(**config_overrides)``: a connected store (shared per config)."""

    async def make(**overrides: Any) -> Store:
        config = dataclasses.replace(base_config, **overrides)
        if config not in _store_cache:
            _store_cache[config] = await open_store(config)
        return _store_cache[config]

    return make


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    return await make_store()


@pytest.fixture
async def other_store(base_config: StoreConfig) -> AsyncIterator[Store]:
    """A second, separately connected store on the same data (another process, in effect)."""
    s = await open_store(base_config)
    yield s
    await s.close()


@pytest.fixture
def ns() -> str:
    """A fresh suffix for the names a test creates."""
    return uuid.uuid4().hex[:10]
