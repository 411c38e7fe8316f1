"""The tests' local single-node Cassandra (``cassandra_node`` in tests/conftest.py): whether it
can start on this machine, and the store configuration of a keyspace on it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from podium.store import StoreConfig

if TYPE_CHECKING:
    from podium.launch.cassandra import CassandraNode

#: A local Cassandra node (``podium.launch.cassandra``) needs a JVM and Maven for its jars.
HAVE_JVM = shutil.which("java") is not None and shutil.which("mvn") is not None


def cassandra_store_config(node: CassandraNode, keyspace: str, **overrides: Any) -> StoreConfig:
    """The StoreConfig of one keyspace on a local Cassandra node."""
    return StoreConfig(
        backend="cassandra",
        cassandra_hosts=tuple(node.contact_points),
        cassandra_port=node.port,
        cassandra_keyspace=keyspace,
        **overrides,
    )


@contextmanager
def cql(hosts: Sequence[str], port: int, **profile: Any) -> Iterator[Any]:
    """A driver session on ``hosts``, its default execution profile set by ``profile``."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile

    cluster = Cluster(
        list(hosts),
        port=port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(**profile)},
    )
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()
