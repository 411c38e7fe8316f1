"""Start and stop local redis-server processes (for tests, benchmarks and ``podium up``).

Each server listens on loopback only, keeps its files in its own folder, and is stopped with
SHUTDOWN (so an append-only file is flushed) or, failing that, a signal. A server can be the
replica of another (``replica_of``), and :class:`SentinelServer` runs a Redis Sentinel (the
same binary with ``--sentinel``) that watches primaries and fails them over to a replica.
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
    """

    port: int = 0
    host: str = "127.0.0.1"
    appendonly: bool = False
    data_dir: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    #: ``(host, port)`` of the primary this server replicates.
    replica_of: tuple[str, int] | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _own_dir: bool = field(default=False, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
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
            if _ping(self.host, self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise Unavailable(f"redis-server on port {self.port} did not answer within {timeout_s}s")

    def _command(self, data_dir: Path) -> list[str]:
        replica = ["--replicaof", *map(str, self.replica_of)] if self.replica_of else []
        return [
            redis_server_binary(),
            "--bind",
            self.host,
            "--port",
            str(self.port),
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
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=1) as s,
            ):
                s.sendall(b"SHUTDOWN\r\n")
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._proc = None

    def cleanup(self) -> None:
        """Stop and remove the data folder if this object created it."""
        self.stop()
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


@dataclass
class SentinelServer(RedisServer):
    """A Redis Sentinel on loopback watching ``monitors``: ``(name, host, port)`` primaries.

    ``quorum`` Sentinels must agree a primary is down (after ``down_after_ms`` of silence)
    before one of them promotes a replica; run three with a quorum of two.
    """

    monitors: list[tuple[str, str, int]] = field(default_factory=list)
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000

    def _command(self, data_dir: Path) -> list[str]:
        # Sentinel rewrites its configuration file as it learns the topology, so each start
        # after the first keeps what it knew (a restarted Sentinel must not forget a failover).
        conf = data_dir / "sentinel.conf"
        if not conf.exists():
            lines = [
                f"port {self.port}",
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
            conf.write_text("\n".join(lines) + "\n")
        return [redis_server_binary(), str(conf), "--sentinel", *self.extra_args]
