"""A whole Podium cluster on this machine, as separate processes (what ``podium up`` runs).

Redis shards and the store are redis-server processes (the store with append-only
persistence), or the store is a local Cassandra node; each service replica is its own Python
process, configured by ``PODIUM_*`` variables exactly as in a deployment, with its own RPC
and health ports. Everything listens on loopback, and the RPC ports answer only callers
holding a secret made for this cluster (:meth:`LocalCluster.rpc_client` makes such a
caller). Services start in dependency order and each must answer ``/ready`` before the next
group starts; with ``supervise`` on (as in ``podium up``) a process that dies is restarted
(``podium/supervisor.py``); everything is stopped (SIGTERM, then SIGKILL after a bound) when
the cluster stops, restarted processes included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import redis.asyncio as aioredis

from podium.aio import OwnedTasks
from podium.config import rpc_security
from podium.errors import ConfigError, Unavailable
from podium.launch.redis import RedisServer, ReplicatedRedis, free_port
from podium.rpc import RpcClient
from podium.rpc_security import RpcSecurity
from podium.supervisor import Supervisor, processes_of, state_file_for

if TYPE_CHECKING:
    from podium.launch.cassandra import NodeTls

Progress = Callable[[str], None]


@dataclass
class ServiceProcess:
    """One replica of one service."""

    name: str
    module: str
    env: dict[str, str]
    health_port: int
    log_path: Path
    address: str = ""
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the launcher, which stops us in order
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    async def restart(self) -> None:
        """Start again on the same ports, and wait until it is ready."""
        self.start()
        await self.wait_ready()

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        """kill -9, for failure tests."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.health_port}/ready"
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                if not self.alive():
                    raise Unavailable(f"{self.name} exited at start:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise Unavailable(
                        f"{self.name} was not ready within {timeout_s:.0f}s:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.05)


@dataclass
class RedisProcess:
    """A Redis server of the cluster, as the supervisor sees it."""

    name: str
    server: RedisServer

    def alive(self) -> bool:
        return self.server.is_running()

    def exit_code(self) -> int | None:
        return self.server.exit_code()

    def pid(self) -> int | None:
        return self.server.pid

    async def restart(self) -> None:
        await asyncio.to_thread(self.server.start)


@dataclass
class ReplicatedRedisProcess(RedisProcess):
    """A data server of a Sentinel-watched group: it never comes back as a second primary.

    Restarted at once, a primary without persistence would return empty, be taken for the
    primary still, and its replicas would copy the empty data set. So a dead server restarts
    only as a replica of the primary every Sentinel names, after they have failed over if it
    was the primary itself (``failover_wait_s``; past it the supervisor tries again later). It
    comes back with ``replica-priority 0``, which no Sentinel promotes, and is made eligible
    again only once its first sync with the primary is done: a replica promoted before it has
    the primary's data would drop every write the primary acknowledged.
    """

    topology: ReplicatedRedis
    group: str
    failover_wait_s: float = 30.0
    sync_wait_s: float = 60.0

    async def restart(self) -> None:
        own = (self.server.host, self.server.port)
        deadline = time.monotonic() + self.failover_wait_s
        while True:
            primary = await asyncio.to_thread(self.topology.agreed_primary, self.group)
            if primary is not None and primary != own:
                break
            if time.monotonic() > deadline:
                raise Unavailable(f"the Sentinels do not agree on a new primary of {self.group}")
            await asyncio.sleep(0.2)
        self.server.replica_of = primary
        if "--replica-priority" not in self.server.extra_args:
            self.server.extra_args += ["--replica-priority", "0"]
        await asyncio.to_thread(self.server.start)
        await self._eligible_once_synced()

    async def _eligible_once_synced(self) -> None:
        deadline = time.monotonic() + self.sync_wait_s
        client = aioredis.Redis(host=self.server.host, port=self.server.port, socket_timeout=2)
        try:
            while True:
                info = await client.info("replication")
                if info.get("master_link_status") == "up" and not info.get(
                    "master_sync_in_progress"
                ):
                    await client.config_set("replica-priority", 100)
                    return
                if time.monotonic() > deadline:
                    raise Unavailable(f"{self.name} did not sync with its primary in time")
                await asyncio.sleep(0.1)
        finally:
            await client.aclose()


def _migrate_cassandra(env: dict[str, str]) -> None:
    """Create the keyspace and apply the schema migrations (``podium db migrate``)."""
    from podium.store.cassandra_backend.schema import migrate_cluster
    from podium.store.config import StoreConfig

    migrate_cluster(StoreConfig.from_env(env))


@dataclass
class ClusterSpec:
    """How many of each part to run."""

    shards: int = 2
    queue_services: int = 1
    deciders: int = 1
    gateways: int = 1
    sweepers: int = 1
    store: str = "redis"  # or "cassandra"
    cassandra_hosts: str = ""  # an existing cluster; empty starts a local node
    #: local Cassandra nodes to start (with cassandra_hosts empty): more than one makes a ring
    #: on 127.0.0.x with replication factor min(3, nodes)
    cassandra_nodes: int = 1
    #: the local Cassandra node serves CQL over TLS and takes only a login of its own (a ring:
    #: TLS only), with certificates and a password kept in the work folder
    cassandra_secure: bool = False
    gateway_port: int = 8080
    #: PODIUM_HTTP_ALLOW_HOSTS of the sweepers: private addresses HTTP tasks may call (none by
    #: default: everything here listens on loopback, the API unauthenticated)
    allow_http_hosts: str = ""
    work_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    supervise: bool = False  # restart what dies (podium up); off for tests that kill on purpose
    #: Replicas of each queue shard and of the store's Redis, failed over by three Sentinels;
    #: a write is acknowledged once one replica holds it (docs/reliability.md).
    shard_replicas: int = 0
    store_replicas: int = 0
    #: The services' RPC takes only callers holding a random secret made for this cluster
    #: (``PODIUM_RPC_SECRET``; ``rpc-secret`` in the work folder); off leaves it open.
    rpc_secret: bool = True
    #: Mutual TLS on the services' RPC too, with a CA and certificates made in the work folder.
    rpc_tls: bool = False


@dataclass
class LocalCluster:
    """Starts and stops the Redis servers, the store and every service replica."""

    spec: ClusterSpec = field(default_factory=ClusterSpec)
    progress: Progress = print
    redis: list[RedisServer] = field(default_factory=list)
    store_redis: RedisServer | None = None
    replicated: ReplicatedRedis | None = None  # primaries, replicas and Sentinels, if any
    cassandra: object | None = None
    services: list[ServiceProcess] = field(default_factory=list)
    work_dir: Path = field(default_factory=Path)
    store_env: dict[str, str] = field(default_factory=dict)
    supervisor: Supervisor | None = None
    events: Progress | None = None  # the supervisor's lines (default: progress)
    #: the ``PODIUM_RPC_*`` variables given to every service
    rpc_env: dict[str, str] = field(default_factory=dict)
    #: what a client needs to call this cluster's services (:meth:`rpc_client`)
    rpc_security: RpcSecurity = field(default_factory=RpcSecurity)
    _background: OwnedTasks = field(default_factory=lambda: OwnedTasks("cluster"))

    def of(self, module: str) -> list[ServiceProcess]:
        return [s for s in self.services if s.module == module]

    @property
    def queue_addresses(self) -> list[str]:
        return [s.address for s in self.of("queue_service.server")]

    @property
    def decider_addresses(self) -> list[str]:
        return [s.address for s in self.of("decider.server")]

    def rpc_client(self, addresses: Sequence[str], **kwargs: Any) -> RpcClient:
        """An RPC client of some of this cluster's services, with the cluster's credentials."""
        return RpcClient(addresses, security=self.rpc_security, **kwargs)

    def _prepare_rpc_security(self) -> None:
        """Make the cluster's RPC secret and certificates (as the spec asks) in the work folder.

        Variables in ``extra_env`` (or already in the environment) win, as they do for the
        services, so the clients here always hold what the services were given.
        """
        env: dict[str, str] = {}
        if self.spec.rpc_secret:
            path = self.work_dir / "rpc-secret"
            path.unlink(missing_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            env["PODIUM_RPC_SECRET_FILE"] = str(path)
            env["PODIUM_RPC_SECRET"] = ""  # a secret in the launcher's environment is not used
        if self.spec.rpc_tls:
            from podium.devcerts import make_certs

            certs = make_certs(self.work_dir / "rpc-certs")
            env["PODIUM_RPC_TLS_CERT"] = str(certs.server_cert)
            env["PODIUM_RPC_TLS_KEY"] = str(certs.server_key)
            env["PODIUM_RPC_TLS_CA"] = str(certs.ca)
        self.rpc_env = env
        self.rpc_security = rpc_security({**os.environ, **env, **self.spec.extra_env})
        where = ""
        if self.spec.rpc_secret:
            where = f" (the secret is in {env['PODIUM_RPC_SECRET_FILE']})"
        self.progress(f"rpc: {self.rpc_security.describe()}{where}")

    @property
    def gateway_urls(self) -> list[str]:
        return [f"http://{s.address}/api" for s in self.of("api_gateway.server")]

    @property
    def shard_urls(self) -> str:
        if self.spec.shard_replicas:
            return ",".join(f"s{i}=sentinel://s{i}/0" for i in range(self.spec.shards))
        return ",".join(f"s{i}={r.url}" for i, r in enumerate(self.redis))

    def _queue_durability_env(self) -> dict[str, str]:
        if not self.spec.shard_replicas or self.replicated is None:
            return {}
        return {
            "PODIUM_QUEUE_SENTINELS": self.replicated.sentinel_list,
            "PODIUM_QUEUE_WAIT_REPLICAS": "1",
        }

    async def start(self) -> LocalCluster:
        self.work_dir = self.spec.work_dir or Path(tempfile.mkdtemp(prefix="podium-up-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_rpc_security()
        try:
            await self._start_storage()
            await self._start_group(
                "queue-service", "queue_service.server", self.spec.queue_services
            )
            await self._start_group("decider", "decider.server", self.spec.deciders)
            await self._start_group("gateway", "api_gateway.server", self.spec.gateways)
            await self._start_group("sweeper", "sweeper.server", self.spec.sweepers)
        except BaseException:
            await self.stop()
            raise
        if self.spec.supervise:
            self._supervise()
        return self

    def _state_file(self) -> Path | None:
        """Where `podium status` finds this cluster's processes: keyed by the first API port."""
        gateways = self.of("api_gateway.server")
        return state_file_for(int(gateways[0].address.rsplit(":", 1)[1])) if gateways else None

    def _supervise(self) -> None:
        state_file = self._state_file()
        if state_file is not None:
            state_file.parent.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(
            lambda: processes_of(self), say=self.events or self.progress, state_file=state_file
        )
        self._background.spawn(self.supervisor.run(), name="supervisor")

    async def _start_storage(self) -> None:
        replicated = [f"s{i}" for i in range(self.spec.shards)] if self.spec.shard_replicas else []
        if self.spec.store == "redis" and self.spec.store_replicas:
            replicated.append("store")
        if replicated:
            topology = ReplicatedRedis(
                replicated,
                replicas=self.spec.shard_replicas,
                replicas_of={"store": self.spec.store_replicas},
                persistent=frozenset({"store"}),
                data_root=self.work_dir / "redis",
            )
            self.replicated = topology
            await asyncio.to_thread(lambda: topology.start().wait_ready())
            for name, server in topology.servers():
                self.progress(f"redis {name} on {server.address}")
        if not self.spec.shard_replicas:
            for i in range(self.spec.shards):
                server = RedisServer(data_dir=self.work_dir / f"redis-shard-{i}")
                self.redis.append(await asyncio.to_thread(server.start))
                self.progress(f"redis queue shard s{i} on {server.address}")
        if self.spec.store == "redis" and self.spec.store_replicas and self.replicated:
            self.store_env = {
                "PODIUM_STORE": "redis",
                "PODIUM_STORE_REDIS_URL": "sentinel://store/0",
                "PODIUM_STORE_REDIS_SENTINELS": self.replicated.sentinel_list,
                "PODIUM_STORE_REDIS_WAIT_REPLICAS": "1",
            }
        elif self.spec.store == "redis":
            self.store_redis = RedisServer(appendonly=True, data_dir=self.work_dir / "redis-store")
            await asyncio.to_thread(self.store_redis.start)
            self.store_env = {
                "PODIUM_STORE": "redis",
                "PODIUM_STORE_REDIS_URL": self.store_redis.url,
            }
            self.progress(f"redis store (append-only) on {self.store_redis.address}")
        elif self.spec.store == "cassandra":
            hosts = self.spec.cassandra_hosts
            port = "9042"
            replication = 1
            if not hosts and self.spec.cassandra_nodes > 1:
                from podium.launch.cassandra import CassandraRing

                n = self.spec.cassandra_nodes
                self.progress(f"starting a local ring of {n} Cassandra nodes")
                ring = CassandraRing(
                    n, data_root=self.work_dir / "cassandra", tls=self._cassandra_tls(ring_of=n)
                )
                self.cassandra = ring
                await asyncio.to_thread(ring.start)
                hosts, port, replication = ",".join(ring.hosts), str(ring.port), min(3, n)
                self.progress(f"cassandra ring on {hosts} port {port}")
            elif not hosts:
                from podium.launch.cassandra import CassandraNode

                self.progress("starting a local Cassandra node (first run fetches its jars)")
                node = CassandraNode(
                    data_dir=self.work_dir / "cassandra",
                    login=self._cassandra_login(),
                    tls=self._cassandra_tls(ring_of=1),
                )
                await asyncio.to_thread(node.start)
                self.cassandra = node
                hosts, port = node.host, str(node.port)
                self.progress(f"cassandra on {node.host}:{node.port}")
            self.store_env = {
                "PODIUM_STORE": "cassandra",
                "PODIUM_CASSANDRA_HOSTS": hosts,
                "PODIUM_CASSANDRA_PORT": port,
            }
            if self.cassandra is not None:
                # the local node's login and TLS files (nothing when it has neither); the
                # password is read from its file, so it is not in the services' environment
                self.store_env |= self.cassandra.store_env()  # type: ignore[attr-defined]
                if self.store_env.pop("PODIUM_CASSANDRA_PASSWORD", None) is not None:
                    password_file = str(self.work_dir / "cassandra-password")
                    self.store_env["PODIUM_CASSANDRA_PASSWORD_FILE"] = password_file
            if replication > 1:
                self.store_env["PODIUM_CASSANDRA_REPLICATION_FACTOR"] = str(replication)
            # The schema is made once, here, before the services start: schema changes sent at
            # the same moment through different nodes of a ring can disagree.
            await asyncio.to_thread(_migrate_cassandra, {**self.store_env, **self.spec.extra_env})
            self.store_env["PODIUM_CASSANDRA_MIGRATE"] = "0"
        else:
            raise ConfigError(f"unknown store {self.spec.store!r} (use redis or cassandra)")

    def _cassandra_tls(self, ring_of: int) -> NodeTls | None:
        """With ``cassandra_secure``: TLS for the local node(s), from a CA made for them."""
        if not self.spec.cassandra_secure:
            return None
        from podium.devcerts import make_certs
        from podium.launch.cassandra import NodeTls

        hosts = [f"127.0.0.{i + 1}" for i in range(ring_of)] + ["localhost"]
        return NodeTls.from_certs(make_certs(self.work_dir / "cassandra-certs", hosts=hosts))

    def _cassandra_login(self) -> tuple[str, str] | None:
        """With ``cassandra_secure``: the role the services log in as. Its password is made
        once and kept (mode 0600) in the work folder, since the node keeps the role in its
        data across runs."""
        if not self.spec.cassandra_secure:
            return None
        path = self.work_dir / "cassandra-password"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
        return ("podium", path.read_text().strip())

    def _env(self, module: str, port: int, health_port: int) -> dict[str, str]:
        common = {
            **self.rpc_env,
            **self.store_env,
            "PODIUM_QUEUE_ADDRESSES": ",".join(self.queue_addresses),
            "PODIUM_DECIDER_ADDRESSES": ",".join(self.decider_addresses),
            **self.spec.extra_env,
        }
        if module == "queue_service.server":
            return {
                **self.rpc_env,
                **self._queue_durability_env(),
                "PODIUM_QUEUE_SHARDS": self.shard_urls,
                "PODIUM_QUEUE_PORT": str(port),
                "PODIUM_QUEUE_HEALTH_PORT": str(health_port),
                **self.spec.extra_env,
            }
        if module == "decider.server":
            return {
                **common,
                "PODIUM_DECIDER_PORT": str(port),
                "PODIUM_DECIDER_HEALTH_PORT": str(health_port),
            }
        if module == "api_gateway.server":
            return {
                **common,
                "PODIUM_GATEWAY_PORT": str(port),
                "PODIUM_GATEWAY_HEALTH_PORT": str(health_port),
            }
        return {
            **common,
            "PODIUM_SWEEPER_HEALTH_PORT": str(health_port),
            "PODIUM_HTTP_ALLOW_HOSTS": self.spec.allow_http_hosts,
        }

    def new_replica(self, kind: str, module: str) -> ServiceProcess:
        n = len(self.of(module))
        if module == "api_gateway.server" and n == 0 and self.spec.gateway_port:
            port = self.spec.gateway_port
        else:
            port = free_port()
        health = free_port()
        svc = ServiceProcess(
            name=f"{kind}-{n}",
            module=module,
            env=self._env(module, port, health),
            health_port=health,
            log_path=self.work_dir / f"{kind}-{n}.log",
            address=f"127.0.0.1:{port}",
        )
        self.services.append(svc)
        return svc

    async def _start_group(self, kind: str, module: str, count: int) -> None:
        group = [self.new_replica(kind, module) for _ in range(count)]
        for svc in group:
            svc.start()
        for svc in group:
            await svc.wait_ready()
            self.progress(f"{svc.name} on {svc.address} (health {svc.health_port})")

    async def restart(self, svc: ServiceProcess) -> None:
        """Start a stopped or killed replica again with the same ports."""
        svc.start()
        await svc.wait_ready()

    async def stop(self) -> None:
        """Stop services first (they hand back their work), then storage. Idempotent."""
        await self._background.cancel_all()  # nothing is restarted while the cluster stops
        state_file = self._state_file() if self.supervisor is not None else None
        if state_file is not None:
            state_file.unlink(missing_ok=True)
        self.supervisor = None
        order = ["api_gateway.server", "sweeper.server", "decider.server", "queue_service.server"]
        for module in order:
            group = self.of(module)
            await asyncio.gather(*(asyncio.to_thread(s.stop) for s in group))
        for server in [*self.redis, *([self.store_redis] if self.store_redis else [])]:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(server.stop)
        if self.replicated is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.replicated.cleanup)
            self.replicated = None
        if self.cassandra is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.cassandra.stop)  # type: ignore[attr-defined]
        self.services.clear()
        self.redis.clear()
        self.store_redis = None
        self.cassandra = None
        if self.spec.work_dir is None:
            self._forget_credentials()

    def _forget_credentials(self) -> None:
        """Delete the secrets a cluster in a temporary folder made for itself (its RPC secret,
        certificates and Cassandra password): they guard nothing once it has stopped, and the
        folder stays behind with the logs. A folder the spec named keeps them for the next
        start, whose Cassandra node still knows the password."""
        for name in ("rpc-secret", "cassandra-password"):
            (self.work_dir / name).unlink(missing_ok=True)
        for name in ("rpc-certs", "cassandra-certs"):
            shutil.rmtree(self.work_dir / name, ignore_errors=True)
