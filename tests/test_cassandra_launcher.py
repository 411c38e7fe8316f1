"""The Cassandra launcher: a real node from the Maven Central jars, on loopback.

One node serves the whole file (a start costs seconds); data must survive a graceful restart
and a SIGKILL followed by commit-log replay.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from podium.errors import Unavailable
from podium.launch.cassandra import CassandraNode
from tests.local_cassandra import cql as local_cql
from tests.local_cassandra import secured_node

pytestmark = pytest.mark.skipif(
    shutil.which("java") is None or shutil.which("mvn") is None,
    reason="Cassandra needs java and mvn (scripts/bootstrap.sh installs them)",
)


@contextmanager
def cql(node: CassandraNode) -> Iterator[Any]:
    from cassandra.policies import WhiteListRoundRobinPolicy

    policy = WhiteListRoundRobinPolicy(node.contact_points)
    with local_cql(node, load_balancing_policy=policy) as session:
        yield session


def _read(node: CassandraNode, key: str) -> str | None:
    with cql(node) as session:
        row = session.execute("SELECT body FROM podium_t.kv WHERE k = %s", (key,)).one()
        return None if row is None else str(row.body)


def _listen_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from Linux's /proc/net)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.rsplit(":", 1)
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


@pytest.mark.timeout(240)
def test_node_keeps_data_across_restart_and_kill(tmp_path: Path) -> None:
    # batch: a write is synced before it is acknowledged, so SIGKILL cannot lose it. The node
    # takes a login over TLS: the role made at the first start serves every later start.
    node = secured_node(tmp_path, heap_mb=512, commitlog_sync="batch")
    try:
        node.start(timeout_s=180)
        assert node.release_version is not None and node.release_version.startswith("5.0.")
        assert node.contact_points == ["127.0.0.1"]
        # 0100007F is 127.0.0.1 as /proc/net/tcp writes it.
        for p in (node.port, node.storage_port):
            assert _listen_addresses(p) == {"0100007F"}
        port, storage_port = node.port, node.storage_port

        with cql(node) as session:
            session.execute(
                "CREATE KEYSPACE podium_t WITH replication = "
                "{'class': 'SimpleStrategy', 'replication_factor': 1}"
            )
            session.execute("CREATE TABLE podium_t.kv (k text PRIMARY KEY, body text)")
            session.execute("INSERT INTO podium_t.kv (k, body) VALUES (%s, %s)", ("a", "one"))
        assert _read(node, "a") == "one"

        node.restart(timeout_s=180)
        assert (node.port, node.storage_port) == (port, storage_port)
        assert _read(node, "a") == "one"

        with cql(node) as session:
            session.execute("INSERT INTO podium_t.kv (k, body) VALUES (%s, %s)", ("b", "two"))
        node.kill()
        assert not node.is_running()
        node.start(timeout_s=180)
        assert _read(node, "a") == "one"
        assert _read(node, "b") == "two"

        node.stop()
        node.stop()  # idempotent
        assert not node.is_running()
    finally:
        data_dir = node.data_dir
        node.cleanup()
    assert data_dir is not None and not data_dir.exists()


@pytest.mark.timeout(60)
def test_early_exit_reports_the_log(tmp_path: Path) -> None:
    """A node that cannot start fails fast with Unavailable and the end of its log."""
    node = CassandraNode(
        data_dir=tmp_path, extra_jvm_args=["-Dcassandra.config=file:///nonexistent"]
    )
    with pytest.raises(Unavailable) as info:
        node.start(timeout_s=50)
    assert "exited at start" in info.value.message
    assert "nonexistent" in info.value.message
    assert not node.is_running()
    node.cleanup()
    assert tmp_path.exists()  # not ours to remove


@pytest.mark.timeout(10)
def test_the_jit_choice_reaches_the_command(tmp_path: Path) -> None:
    """C1 alone by default (CassandraNode.jit); "tiered" leaves the JVM's own choice."""
    (tmp_path / "jamm-0.4.0.jar").touch()

    def stop_level(node: CassandraNode) -> list[str]:
        cmd = node._command("java", tmp_path, tmp_path)
        return [a for a in cmd if a.startswith("-XX:TieredStopAtLevel")]

    assert stop_level(CassandraNode()) == ["-XX:TieredStopAtLevel=1"]
    assert stop_level(CassandraNode(jit="tiered")) == []
