"""The Cassandra backend: executions and definitions for production deployments."""

from __future__ import annotations

import asyncio

from podium.store.api import Store
from podium.store.cassandra_backend.audit import CassandraAudit
from podium.store.cassandra_backend.executions import CassandraExecutions
from podium.store.cassandra_backend.metadata import CassandraMetadata
from podium.store.cassandra_backend.schedules import CassandraSchedules
from podium.store.cassandra_backend.schema import migrate
from podium.store.cassandra_backend.session import CassandraSession
from podium.store.cassandra_backend.statements import Statements
from podium.store.config import StoreConfig


class CassandraStore(Store):
    """Both interfaces over one driver session; build it with :meth:`open`."""

    def __init__(self, db: CassandraSession, statements: Statements, config: StoreConfig) -> None:
        self._db = db
        self.metadata = CassandraMetadata(db, statements, config)
        self.executions = CassandraExecutions(db, statements, config)
        self.audit = CassandraAudit(db, statements, config)
        self.schedules = CassandraSchedules(db, config)

    @classmethod
    async def open(cls, config: StoreConfig) -> CassandraStore:
        """Connect, migrate the schema (unless switched off) and prepare the statements."""
        db = await CassandraSession.connect(config, None)
        try:
            if config.cassandra_migrate_on_open:
                await asyncio.to_thread(_migrate, db, config)
            statements = await asyncio.to_thread(
                Statements.prepare_all, db, config.cassandra_keyspace
            )
        except BaseException:
            await db.close()
            raise
        return cls(db, statements, config)

    async def close(self) -> None:
        await self._db.close()


def _migrate(db: CassandraSession, config: StoreConfig) -> None:
    # A session of its own: migrations USE the keyspace, the store's session never does.
    session = db.cluster.connect()
    try:
        migrate(session, config)
    finally:
        session.shutdown()


__all__ = ["CassandraStore"]
