"""The Redis backend: the embedded default for one machine and for development."""

from __future__ import annotations

from redis.asyncio import Redis

from podium.redis_conn import connect, redact_url
from podium.redis_pipe import RedisPipe
from podium.store.api import Store
from podium.store.config import StoreConfig
from podium.store.redis_backend.audit import RedisAudit
from podium.store.redis_backend.executions import RedisExecutions
from podium.store.redis_backend.keys import Keys
from podium.store.redis_backend.metadata import RedisMetadata
from podium.store.redis_backend.replies import redis_errors
from podium.store.redis_backend.schedules import RedisSchedules
from podium.store.redis_backend.scripts import Scripts

#: A script call not answered in this time ends its connection and fails as Unavailable (the
#: longest script, a purge, handles at most 1,000 workflows).
SCRIPT_TIMEOUT_S = 10.0


class RedisStore(Store):
    """Both interfaces over one Redis client; build it with :meth:`open`."""

    def __init__(self, client: Redis, config: StoreConfig) -> None:
        keys = Keys(config.key_prefix)
        #: the scripts' calls (every read and commit of executions) share one pipelined connection
        self._pipe = RedisPipe(client, timeout_s=SCRIPT_TIMEOUT_S)
        scripts = Scripts.register(client, self._pipe)
        self._client = client
        self._closed = False
        self.metadata = RedisMetadata(client, keys, scripts, config, self._pipe)
        self.executions = RedisExecutions(client, keys, scripts, config)
        self.audit = RedisAudit(client, keys, scripts, config)
        self.schedules = RedisSchedules(client, config)

    @classmethod
    async def open(cls, config: StoreConfig) -> RedisStore:
        """Connect and check that the server answers."""
        client = connect(
            config.redis_url,
            sentinels=config.redis_sentinels,
            variable="PODIUM_STORE_REDIS_URL",
            decode_responses=False,
        )
        try:
            with redis_errors(f"connect to {redact_url(config.redis_url)}"):
                await client.ping()
        except BaseException:
            await client.aclose()
            raise
        return cls(client, config)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pipe.aclose()
            await self._client.aclose()


__all__ = ["RedisStore"]
