"""The tests' local single-node Cassandra (``cassandra_node`` in tests/conftest.py): whether it
can start on this machine, how a node is secured (a login and TLS, as in production), and the
store configuration and driver sessions that reach it."""

from __future__ import annotations

import dataclasses
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podium.store import StoreConfig

if TYPE_CHECKING:
    from podium.launch.cassandra import CassandraNode, CassandraRing, NodeTls

#: A local Cassandra node (``podium.launch.cassandra``) needs a JVM and Maven for its jars.
HAVE_JVM = shutil.which("java") is not None and shutil.which("mvn") is not None

#: The role the tests log in as (never the default superuser).
ROLE = "podium"


def node_tls(folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> NodeTls:
    """TLS for a node from a CA made in ``folder``; the node requires client certificates."""
    from podium.devcerts import make_certs
    from podium.launch.cassandra import NodeTls

    return NodeTls.from_certs(make_certs(folder, hosts=hosts), require_client_auth=True)


def secured_node(folder: Path, **options: Any) -> CassandraNode:
    """A (not yet started) node that takes only the ``ROLE`` login, with a fresh password,
    over TLS with client certificates; certificates in ``folder``/certs."""
    from podium.launch.cassandra import CassandraNode

    return CassandraNode(
        login=(ROLE, secrets.token_urlsafe(16)), tls=node_tls(folder / "certs"), **options
    )


def cassandra_store_config(node: CassandraNode, keyspace: str, **overrides: Any) -> StoreConfig:
    """The StoreConfig of one keyspace on a local Cassandra node (its login and TLS included)."""
    config = StoreConfig.from_env(node.store_env())
    return dataclasses.replace(config, cassandra_keyspace=keyspace, **overrides)


@contextmanager
def cql(target: CassandraNode | CassandraRing, **profile: Any) -> Iterator[Any]:
    """A driver session on a node or ring (with its login and TLS), its default execution
    profile set by ``profile``."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile

    cluster = Cluster(
        list(target.contact_points),
        port=target.port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(**profile)},
        **target.driver_options(),
    )
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()
