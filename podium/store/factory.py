"""Open the store that the configuration names."""

from __future__ import annotations

from podium.store.api import Store
from podium.store.config import StoreConfig


async def open_store(config: StoreConfig) -> Store:
    """Connect to the configured backend (and, for Cassandra, migrate the schema if asked)."""
    if config.backend == "redis":
        from podium.store.redis_backend import RedisStore

        return await RedisStore.open(config)
    # Imported here so that a Redis-only deployment never loads the Cassandra driver.
    from podium.store.cassandra_backend import CassandraStore

    return await CassandraStore.open(config)
