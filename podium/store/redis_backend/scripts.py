"""The Lua scripts of the Redis backend, read from ``podium/store/scripts``.

redis-py's Script objects call by SHA and load the source again after a NOSCRIPT reply (a
restarted server has an empty script cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def _source(name: str) -> str:
    return resources.files("podium.store").joinpath("scripts", f"{name}.lua").read_text()


@dataclass(frozen=True)
class Scripts:
    read: AsyncScript
    commit: AsyncScript
    remove: AsyncScript
    add_logs: AsyncScript
    def_put: AsyncScript
    def_remove: AsyncScript
    handler_put: AsyncScript
    purge: AsyncScript
    idempotency: AsyncScript
    audit_append: AsyncScript

    @classmethod
    def register(cls, client: Redis) -> Scripts:
        """Wrap every script for ``client`` (no I/O: sources load on first use)."""
        return cls(
            **{
                name: client.register_script(_source(name))
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
