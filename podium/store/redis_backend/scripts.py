"""The Lua scripts of the Redis backend, read from ``podium/store/scripts``.

Each is called by its SHA over the store's pipelined connection (``podium/redis_pipe.py``),
which loads the source again after a NOSCRIPT reply (a restarted server has an empty script
cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis

from podium.redis_pipe import PipedScript, RedisPipe


def _source(name: str) -> str:
    return resources.files("podium.store").joinpath("scripts", f"{name}.lua").read_text()


@dataclass(frozen=True)
class Scripts:
    read: PipedScript
    commit: PipedScript
    remove: PipedScript
    add_logs: PipedScript
    def_put: PipedScript
    def_remove: PipedScript
    handler_put: PipedScript
    purge: PipedScript
    idempotency: PipedScript
    audit_append: PipedScript

    @classmethod
    def register(cls, client: Redis, pipe: RedisPipe) -> Scripts:
        """Wrap every script for ``client``, called through ``pipe`` (no I/O: sources load
        on first use)."""
        return cls(
            **{
                name: PipedScript(client, pipe, _source(name))
                for name in (
                    "read",
                    "commit",
                    "remove",
                    "add_logs",
                    "def_put",
                    "def_remove",
                    "handler_put",
                    "purge",
                    "idempotency",
                    "audit_append",
                )
            }
        )
