"""Start and stop local redis-server processes (for tests, benchmarks and ``podium up``).

Each server listens on loopback only, keeps its files in its own folder, and is stopped with
SHUTDOWN (so an append-only file is flushed) or, failing that, a signal. A server can be the
replica of another (``replica_of``), and :class:`SentinelServer` runs a Redis Sentinel (the
same binary with ``--sentinel``) that watches primaries and fails them over to a replica.

A server can also demand credentials (an ACL user, or a bare ``requirepass`` password) and
speak TLS alone (``tls``: certificates from podium/devcerts.py); its :attr:`RedisServer.url`
then carries what a client needs, in the forms docs/persistence.md describes.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import quote, urlencode

import redis

from podium.devcerts import CertPaths
from podium.errors import ConfigError, Unavailable


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise ConfigError(
            "redis-server is not installed; run scripts/bootstrap.sh or "
            "'apt-get install redis-server'"
        )
    return found


def _ping(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """One redis-server process on loopback.

    ``appendonly`` switches on append-only persistence (fsync every second), which the
    store uses; the queue shards may run with or without it.

    Security is off unless asked for. ``username`` and ``password`` make an ACL user allowed
    ``acl`` (every key, channel and command unless narrowed) and switch the ``default`` user
    off; ``password`` alone sets ``requirepass`` (the ``default`` user's password). ``tls``
    serves TLS alone on :attr:`port` (no plain port); ``tls_auth_clients`` says whether a client
    must show a certificate the CA signed. These settings go to a ``security.conf`` file (mode
    0600) in the data folder, so no password shows on the process's command line.
    """

    port: int = 0
    host: str = "127.0.0.1"
    appendonly: bool = False
    data_dir: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    #: ``(host, port)`` of the primary this server replicates.
    replica_of: tuple[str, int] | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: What the ACL user may do (keys, channels, commands), in ACL SETUSER's rule syntax.
    acl: str = "~* &* +@all"
    tls: CertPaths | None = None
    tls_auth_clients: Literal["yes", "optional", "no"] = "no"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _own_dir: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.username is not None and self.password is None:
            raise ConfigError(f"the Redis ACL user {self.username!r} needs a password")

    @property
    def secured(self) -> bool:
        """Whether a client needs more than the address: credentials or TLS."""
        return self.password is not None or self.tls is not None

    @property
    def url(self) -> str:
        """How a client reaches this server: ``redis://host:port/0``, with the user and password
        and, over TLS, ``rediss://`` and the CA and client certificate as query parameters."""
        scheme = "rediss" if self.tls is not None else "redis"
        auth = _userinfo(self.username, self.password)
        query = ""
        if self.tls is not None:
            query = "?" + urlencode(
                {
                    "ssl_ca_certs": str(self.tls.ca),
                    "ssl_certfile": str(self.tls.client_cert),
                    "ssl_keyfile": str(self.tls.client_key),
                }
            )
        return f"{scheme}://{auth}{self.host}:{self.port}/0{query}"

    def client(self, timeout_s: float = 1.0) -> redis.Redis:
        """A synchronous client of this server, with its credentials and TLS (for setup,
        checks and shutdown; services connect through podium/redis_conn.py)."""
        return redis.Redis.from_url(
            self.url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> Self:
        if self._proc is not None and self._proc.poll() is None:
            return self
        if self.port == 0:
            self.port = free_port(self.host)
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix=f"podium-redis-{self.port}-"))
            self._own_dir = True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(self._command(self.data_dir), stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log = (self.data_dir / "redis.log").read_text(errors="replace")[-2000:]
                raise Unavailable(f"redis-server on port {self.port} exited at start: {log}")
            if self._answers():
                return self
            time.sleep(0.02)
        self.stop()
        raise Unavailable(f"redis-server on port {self.port} did not answer within {timeout_s}s")

    def _answers(self) -> bool:
        if not self.secured:
            return _ping(self.host, self.port)
        try:
            with self.client(timeout_s=0.2) as r:
                return bool(r.ping())
        except (OSError, redis.RedisError):
            return False

    def _tls_lines(self) -> list[str]:
        """Directives for TLS alone: the plain port is off and :attr:`port` is the TLS port.

        ``tls-replication`` makes a replica reach its primary, and a Sentinel its servers and
        peers, over TLS as well (the server certificate doubles as the client one)."""
        if self.tls is None:
            return []
        return [
            "port 0",
            f"tls-port {self.port}",
            f"tls-cert-file {self.tls.server_cert}",
            f"tls-key-file {self.tls.server_key}",
            f"tls-ca-cert-file {self.tls.ca}",
            f"tls-auth-clients {self.tls_auth_clients}",
            "tls-replication yes",
        ]

    def _security_conf(self, data_dir: Path) -> list[str]:
        """Write the ACL, password and TLS directives to a file only the owner can read; the
        file's name (redis-server takes a configuration file as its first argument)."""
        lines: list[str] = []
        if self.username is not None:
            lines += ["user default off", f"user {self.username} on >{self.password} {self.acl}"]
        elif self.password is not None:
            lines.append(f"requirepass {self.password}")
        if self.password is not None:
            # what this server shows its primary as a replica (now, or after a failover)
            lines.append(f"masterauth {self.password}")
            if self.username is not None:
                lines.append(f"masteruser {self.username}")
        lines += self._tls_lines()
        if not lines:
            return []
        conf = data_dir / "security.conf"
        _write_private(conf, lines)
        return [str(conf)]

    def _command(self, data_dir: Path) -> list[str]:
        replica = ["--replicaof", *map(str, self.replica_of)] if self.replica_of else []
        # with TLS, ``security.conf`` turns the plain port off and serves TLS on ``port``
        port = [] if self.tls is not None else ["--port", str(self.port)]
        return [
            redis_server_binary(),
            *self._security_conf(data_dir),
            "--bind",
            self.host,
            *port,
            "--dir",
            str(data_dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            # a replica that (re)connects syncs at once, not after the default 5 s of waiting
            "--repl-diskless-sync-delay",
            "0",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(data_dir / "redis.log"),
            *replica,
            *self.extra_args,
        ]

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def exit_code(self) -> int | None:
        """The process's return code once it has ended (negative: the signal), else None."""
        return None if self._proc is None else self._proc.poll()

    def kill(self) -> None:
        """Kill -9: no SHUTDOWN, no final flush (for failure tests)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop gracefully (SHUTDOWN flushes the append-only file); idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._send_shutdown()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._proc = None

    def _send_shutdown(self) -> None:
        if self.secured:
            # SIGTERM shuts Redis down as SHUTDOWN does (the append-only file flushed), and
            # needs no login: the ACL user may lack the right to SHUTDOWN (-@dangerous)
            if self._proc is not None:
                self._proc.terminate()
            return
        with (
            contextlib.suppress(OSError),
            socket.create_connection((self.host, self.port), timeout=1) as s,
        ):
            s.sendall(b"SHUTDOWN\r\n")

    def cleanup(self) -> None:
        """Stop and remove the data folder if this object created it."""
        self.stop()
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


#: Sentinel's down-after-milliseconds for the local launcher (see SentinelServer).
DOWN_AFTER_MS = 2000


@dataclass
class SentinelServer(RedisServer):
    """A Redis Sentinel on loopback watching ``monitors``: ``(name, host, port)`` primaries.

    ``quorum`` Sentinels must agree a primary is down (after ``down_after_ms`` of silence)
    before one of them promotes a replica; run three with a quorum of two.

    ``down_after_ms`` must be well above Sentinel's one-second ping period: at 1000, a Sentinel
    that follows another's failover can take the new primary for down before its first ping is
    answered and, counting its peers' votes about the old primary, fail over a second time,
    away from a live primary whose latest acknowledged writes the promoted replica lacks
    (seen in the fault suite: docs/reliability.md).
    """

    monitors: list[tuple[str, str, int]] = field(default_factory=list)
    quorum: int = 2
    down_after_ms: int = DOWN_AFTER_MS
    failover_timeout_ms: int = 5000
    #: The ACL user and password the watched servers demand (the Sentinel's own port asks for
    #: none). With ``tls``, the Sentinel serves TLS alone and reaches the servers over TLS.
    data_username: str | None = None
    data_password: str | None = field(default=None, repr=False)

    def _command(self, data_dir: Path) -> list[str]:
        # Sentinel rewrites its configuration file as it learns the topology, so each start
        # after the first keeps what it knew (a restarted Sentinel must not forget a failover).
        conf = data_dir / "sentinel.conf"
        if not conf.exists():
            listen = self._tls_lines() or [f"port {self.port}"]
            lines = [
                *listen,
                f"bind {self.host}",
                "daemonize no",
                f"dir {data_dir}",
                f"logfile {data_dir / 'redis.log'}",
                "loglevel warning",
            ]
            for name, host, port in self.monitors:
                lines += [
                    f"sentinel monitor {name} {host} {port} {self.quorum}",
                    f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
                    f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
                    f"sentinel parallel-syncs {name} 1",
                ]
                if self.data_password is not None:
                    lines.append(f"sentinel auth-pass {name} {self.data_password}")
                if self.data_username is not None:
                    lines.append(f"sentinel auth-user {name} {self.data_username}")
            _write_private(conf, lines)
        return [redis_server_binary(), str(conf), "--sentinel", *self.extra_args]


@dataclass
class ReplicatedRedis:
    """Primaries, each with ``replicas`` replicas (``replicas_of`` overrides it per name),
    watched by ``sentinel_count`` Sentinels.

    Clients reach primary ``name`` as ``sentinel://name`` with :attr:`sentinel_addresses`
    (podium/redis_conn.py; :meth:`url_of` gives the whole URL). ``data_root`` keeps every
    server's files (one folder each). ``username``, ``password``, ``tls`` and
    ``tls_auth_clients`` secure every data server as in :class:`RedisServer`; the Sentinels
    then serve TLS alone too and log in to the servers with the same user.
    """

    names: list[str]
    replicas: int = 1
    replicas_of: dict[str, int] = field(default_factory=dict)
    sentinel_count: int = 3
    appendonly: bool = False
    #: Primaries (and their replicas) that run append-only even if ``appendonly`` is off.
    persistent: frozenset[str] = frozenset()
    data_root: Path | None = None
    down_after_ms: int = DOWN_AFTER_MS
    failover_timeout_ms: int = 5000
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: CertPaths | None = None
    tls_auth_clients: Literal["yes", "optional", "no"] = "no"
    primaries: dict[str, RedisServer] = field(default_factory=dict)
    replica_servers: dict[str, list[RedisServer]] = field(default_factory=dict)
    sentinels: list[SentinelServer] = field(default_factory=list)

    def _dir(self, name: str) -> Path | None:
        return None if self.data_root is None else self.data_root / name

    def start(self) -> ReplicatedRedis:
        try:
            for name in self.names:
                aof = self.appendonly or name in self.persistent
                primary = RedisServer(appendonly=aof, data_dir=self._dir(name), **self._security())
                self.primaries[name] = primary.start()
                self.replica_servers[name] = [
                    RedisServer(
                        appendonly=aof,
                        data_dir=self._dir(f"{name}-replica-{i}"),
                        replica_of=(primary.host, primary.port),
                        **self._security(),
                    ).start()
                    for i in range(self.replica_count(name))
                ]
            monitors = [(n, p.host, p.port) for n, p in self.primaries.items()]
            quorum = self.sentinel_count // 2 + 1
            for i in range(self.sentinel_count):
                sentinel = SentinelServer(
                    monitors=monitors,
                    quorum=quorum,
                    down_after_ms=self.down_after_ms,
                    failover_timeout_ms=self.failover_timeout_ms,
                    data_dir=self._dir(f"sentinel-{i}"),
                    data_username=self.username,
                    data_password=self.password,
                    tls=self.tls,
                    tls_auth_clients=self.tls_auth_clients,
                )
                self.sentinels.append(sentinel.start())
        except BaseException:
            self.cleanup()
            raise
        return self

    def _security(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "password": self.password,
            "tls": self.tls,
            "tls_auth_clients": self.tls_auth_clients,
        }

    def replica_count(self, name: str) -> int:
        return self.replicas_of.get(name, self.replicas)

    def url_of(self, name: str) -> str:
        """``sentinel://[user:password@]name/0``, with ``ssl=true`` and the CA and client
        certificate in the query when the servers speak TLS (podium/redis_conn.py)."""
        auth = _userinfo(self.username, self.password)
        query = ""
        if self.tls is not None:
            query = "?" + urlencode(
                {
                    "ssl": "true",
                    "ssl_ca_certs": str(self.tls.ca),
                    "ssl_certfile": str(self.tls.client_cert),
                    "ssl_keyfile": str(self.tls.client_key),
                }
            )
        return f"sentinel://{auth}{name}/0{query}"

    @property
    def sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        return tuple((s.host, s.port) for s in self.sentinels)

    @property
    def sentinel_list(self) -> str:
        """``host:port,...``, the form of ``PODIUM_*_SENTINELS``."""
        return ",".join(f"{h}:{p}" for h, p in self.sentinel_addresses)

    def group_of(self, server: RedisServer) -> str | None:
        """The primary name whose data ``server`` holds (None for a Sentinel)."""
        for name, primary in self.primaries.items():
            if server is primary or any(server is r for r in self.replica_servers[name]):
                return name
        return None

    def servers(self) -> list[tuple[str, RedisServer]]:
        """Every data server and Sentinel, named (``s0``, ``s0-replica-0``, ``sentinel-0``)."""
        out: list[tuple[str, RedisServer]] = []
        for name, primary in self.primaries.items():
            out.append((name, primary))
            out += [(f"{name}-replica-{i}", r) for i, r in enumerate(self.replica_servers[name])]
        out += [(f"sentinel-{i}", s) for i, s in enumerate(self.sentinels)]
        return out

    def _sentinel_call(self, *args: str) -> object:
        for sentinel in self.sentinels:
            if sentinel.is_running():
                with contextlib.suppress(OSError, redis.RedisError), sentinel.client() as r:
                    return r.execute_command(*args)
        raise Unavailable("no Sentinel answers")

    def primary_address(self, name: str) -> tuple[str, int]:
        """Where the Sentinels say primary ``name`` is now."""
        reply = self._sentinel_call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
        if not isinstance(reply, list | tuple) or len(reply) != 2:
            raise Unavailable(f"the Sentinels do not know {name!r}: {reply!r}")
        host, port = reply
        return (host.decode() if isinstance(host, bytes) else str(host)), int(port)

    def agreed_primary(self, name: str) -> tuple[str, int] | None:
        """The primary of ``name`` that every Sentinel now names, or None while they differ
        (one has not yet followed a failover) or one does not answer."""
        seen = set()
        for sentinel in self.sentinels:
            try:
                with sentinel.client() as r:
                    reply = r.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
            except (OSError, redis.RedisError):
                return None
            if not isinstance(reply, list | tuple) or len(reply) != 2:
                return None
            host, port = reply
            seen.add(((host.decode() if isinstance(host, bytes) else str(host)), int(port)))
        return seen.pop() if len(seen) == 1 else None

    def ready(self) -> bool:
        """Whether every Sentinel knows the others and every replica is in sync."""
        for name in self.names:
            for sentinel in self.sentinels:
                with sentinel.client() as r:
                    raw = r.execute_command("SENTINEL", "MASTER", name)
                info = _pairs(raw)
                if int(info.get("num-other-sentinels", 0)) != len(self.sentinels) - 1:
                    return False
                if int(info.get("num-slaves", 0)) != self.replica_count(name):
                    return False
            for replica in self.replica_servers[name]:
                with replica.client() as r:
                    if r.info("replication").get("master_link_status") != "up":
                        return False
        return True

    def wait_ready(self, timeout_s: float = 30.0) -> ReplicatedRedis:
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if time.monotonic() > deadline:
                raise Unavailable(f"Sentinels and replicas not in place within {timeout_s}s")
            time.sleep(0.1)
        return self

    def cleanup(self) -> None:
        for _, server in reversed(self.servers()):
            server.cleanup()


def _userinfo(username: str | None, password: str | None) -> str:
    """The ``user:password@`` part of a URL (empty without a password), percent-encoded."""
    if password is None:
        return ""
    return f"{quote(username or '', safe='')}:{quote(password, safe='')}@"


def _write_private(path: Path, lines: list[str]) -> None:
    """Write a configuration file that may hold passwords: readable by its owner alone."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")


def _pairs(raw: object) -> dict[str, str]:
    """A Redis reply of alternating keys and values (or a map) as text."""

    def text(x: object) -> str:
        return x.decode() if isinstance(x, bytes) else str(x)

    if isinstance(raw, dict):
        return {text(k): text(v) for k, v in raw.items()}
    items = list(raw) if isinstance(raw, list | tuple) else []
    return {text(k): text(v) for k, v in zip(items[::2], items[1::2], strict=True)}
