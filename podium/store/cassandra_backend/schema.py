"""Versioned, idempotent schema migrations for the Cassandra backend.

Migrations are the files ``podium/store/cassandra_schema/NNNN_name.cql``, applied in order.
``schema_migrations`` records each applied version (written with IF NOT EXISTS, so two
processes migrating at once agree). Every statement in a file must itself be idempotent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources

from cassandra.cluster import NoHostAvailable, Session

from podium.errors import ConfigError
from podium.store.config import StoreConfig

log = logging.getLogger(__name__)
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.cql$")
#: How long one schema statement may take. A table or keyspace made on a busy node flushes
#: the schema tables first, which can take longer than the 10 s a query is given.
SCHEMA_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(cql: str) -> tuple[str, ...]:
    """The statements of a CQL file: ``--`` comments dropped, split on ``;``."""
    lines = [line.split("--", 1)[0] for line in cql.splitlines()]
    parts = (" ".join(p.split()) for p in "\n".join(lines).split(";"))
    return tuple(p for p in parts if p)


def migrations() -> list[Migration]:
    """All migrations shipped with the package, by version."""
    folder = resources.files("podium.store").joinpath("cassandra_schema")
    found = []
    for entry in folder.iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), match.group(2), split_statements(entry.read_text()))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"two schema migrations share a version: {versions}")
    return found


def keyspace_cql(config: StoreConfig) -> str:
    rf = config.cassandra_replication_factor
    if config.cassandra_local_dc:
        replication = f"{{'class': 'NetworkTopologyStrategy', '{config.cassandra_local_dc}': {rf}}}"
    else:
        replication = f"{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {config.cassandra_keyspace} "
        f"WITH replication = {replication} AND durable_writes = true"
    )


def migrate(session: Session, config: StoreConfig) -> list[int]:
    """Create the keyspace and apply the missing migrations (blocking); the versions applied.

    Safe to run at every start and from several processes at once. On a ring of nodes each
    statement waits for every node to agree on the schema: an ``IF NOT EXISTS`` that finds the
    keyspace (created by another process through another node) brings no schema-change
    event for the driver to wait on, and the next statement may reach a node that has not
    heard of it yet.
    """
    agreed = session.cluster.control_connection.wait_for_schema_agreement
    session.execute(keyspace_cql(config), timeout=SCHEMA_TIMEOUT_S)
    agreed()
    session.set_keyspace(config.cassandra_keyspace)
    session.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version int PRIMARY KEY, name text, applied_at timestamp)",
        timeout=SCHEMA_TIMEOUT_S,
    )
    agreed()
    applied = {row["version"] for row in session.execute("SELECT version FROM schema_migrations")}
    done = []
    for m in migrations():
        if m.version in applied:
            continue
        log.info("applying schema migration %04d_%s", m.version, m.name)
        for stmt in m.statements:
            session.execute(stmt, timeout=SCHEMA_TIMEOUT_S)
            agreed()
        session.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) "
            "VALUES (%s, %s, toTimestamp(now())) IF NOT EXISTS",
            (m.version, m.name),
        )
        done.append(m.version)
    agreed()
    return done


@contextmanager
def connected(config: StoreConfig) -> Iterator[Session]:
    """A session with ``config``'s settings, closed after; an unreachable cluster raises
    Unavailable, refused credentials or an untrusted certificate ConfigError."""
    from podium.store.cassandra_backend.session import build_cluster, connect_error

    cluster = build_cluster(config)
    try:
        yield cluster.connect()
    except NoHostAvailable as exc:
        raise connect_error(config, exc) from exc
    finally:
        cluster.shutdown()


def migrate_cluster(config: StoreConfig) -> list[int]:
    """:func:`migrate` through a session of its own (``podium db migrate``, and the local
    cluster before its services start); the versions applied."""
    with connected(config) as session:
        return migrate(session, config)


def current_version(session: Session) -> int:
    """The highest applied migration (0 if none)."""
    rows = session.execute("SELECT version FROM schema_migrations")
    return max((row["version"] for row in rows), default=0)
