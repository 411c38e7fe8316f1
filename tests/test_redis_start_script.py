"""deploy/redis/start-replicated.sh, run for real: a restarted primary waits for the failover.

The script starts the data servers of a Sentinel-watched Redis group in the deployment files.
Here it runs redis-server on loopback beside three real Sentinels: the first start makes a
primary and a replica; after kill -9 of the primary, the restarted primary does not serve as
a second primary (its replica holds what was acknowledged) but waits for the Sentinels and
comes back as the new primary's replica, with the data.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from podium.launch.redis import SentinelServer, free_port
from tests.polling import eventually_sync

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "redis" / "start-replicated.sh"


class Server:
    """One data server started through the script."""

    def __init__(self, port: int, first: int, sentinels: str, data: Path) -> None:
        self.port, self.first, self.sentinels, self.data = port, first, sentinels, data
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        self.data.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "REDIS_GROUP": "g",
            "REDIS_SENTINELS": self.sentinels,
            "REDIS_SELF": f"127.0.0.1:{self.port}",
            "REDIS_FIRST_PRIMARY": f"127.0.0.1:{self.first}",
        }
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", str(self.data), "--repl-diskless-sync-delay", "0",
                "--logfile", str(self.data / "redis.log")]  # fmt: skip
        self.proc = subprocess.Popen(["sh", str(SCRIPT), *args], env=env, stderr=subprocess.PIPE)
        return self

    def replication(self) -> dict[str, object] | None:
        try:
            with redis.Redis("127.0.0.1", self.port, socket_timeout=1) as r:
                return dict(r.info("replication"))
        except redis.RedisError:
            return None

    def priority(self) -> str | None:
        """The server's replica-priority (0 while it may not be promoted)."""
        try:
            with redis.Redis("127.0.0.1", self.port, socket_timeout=1) as r:
                return str(r.config_get("replica-priority")["replica-priority"])
        except redis.RedisError:
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[tuple[Server, Server, list[SentinelServer]]]:
    p1, p2 = free_port(), free_port()
    sentinels = [
        SentinelServer(monitors=[("g", "127.0.0.1", p1)], down_after_ms=500,
                       failover_timeout_ms=2000).start()
        for _ in range(3)
    ]  # fmt: skip
    addresses = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
    one = Server(p1, p1, addresses, tmp_path / "one")
    two = Server(p2, p1, addresses, tmp_path / "two")
    try:
        yield one, two, sentinels
    finally:
        for s in (one, two):
            s.kill()
        for sentinel in sentinels:
            sentinel.cleanup()


@pytest.mark.timeout(60)
def test_a_restarted_primary_comes_back_as_the_replica_of_the_promoted_one(
    group: tuple[Server, Server, list[SentinelServer]],
) -> None:
    one, two, sentinels = group
    one.start()
    eventually_sync(
        lambda: (one.replication() or {}).get("role") == "master",
        timeout_s=10, what="first primary", interval_s=0.1,
    )  # fmt: skip
    two.start()
    eventually_sync(
        lambda: (two.replication() or {}).get("master_link_status") == "up",
        timeout_s=10, what="replica", interval_s=0.1,
    )  # fmt: skip

    def sentinels_know_the_replica() -> bool:
        for s in sentinels:
            with redis.Redis(s.host, s.port) as r:
                info = r.execute_command("SENTINEL", "MASTER", "g")
            if isinstance(info, list):
                info = dict(zip(info[::2], info[1::2], strict=True))
            pairs = {(k.decode() if isinstance(k, bytes) else k): v for k, v in info.items()}
            if int(pairs["num-slaves"]) != 1 or int(pairs["num-other-sentinels"]) != 2:
                return False
        return True

    eventually_sync(
        sentinels_know_the_replica, timeout_s=20, what="the Sentinels see the replica",
        interval_s=0.1,
    )  # fmt: skip
    # A replica is promotable only once its first sync is done (replica-priority 0 before).
    eventually_sync(
        lambda: two.priority() == "100", timeout_s=10, what="the synced replica eligible",
        interval_s=0.1,
    )  # fmt: skip
    with redis.Redis("127.0.0.1", one.port) as r:
        for i in range(100):
            r.set(f"k{i}", i)
        assert r.execute_command("WAIT", 1, 1000) == 1

    one.kill()
    one.start()  # as a container restarts: at once, before any failover
    # It must not answer as a primary meanwhile (it would be an empty one).
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        info = one.replication()
        assert info is None or info.get("role") != "master", "came back as a second primary"
        time.sleep(0.05)

    eventually_sync(
        lambda: (two.replication() or {}).get("role") == "master",
        timeout_s=30, what="failover to two", interval_s=0.1,
    )  # fmt: skip
    eventually_sync(
        lambda: (one.replication() or {}).get("master_port") == two.port
        and (one.replication() or {}).get("master_link_status") == "up",
        timeout_s=30, what="one back as two's replica", interval_s=0.1,
    )  # fmt: skip
    with redis.Redis("127.0.0.1", one.port) as r:
        assert r.dbsize() == 100
    eventually_sync(
        lambda: one.priority() == "100", timeout_s=10, what="the rejoined replica eligible",
        interval_s=0.1,
    )  # fmt: skip
