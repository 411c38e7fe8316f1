"""The released Netflix/OSS Conductor server (Java) as a peer, backed by a local Redis.

The Spring Boot jar ``org.conductoross:conductor-server:<version>:boot`` is fetched from Maven
Central with Maven (``dependency:copy``) into ``~/.cache/podium/conductor/``. Maven Central holds
only 3.21.14 and 3.32.x of this artifact; 3.32.x is built for Java 21, so on Java 17 the version
is **3.21.14** (override with ``PODIUM_CONDUCTOR_VERSION`` or ``--version``).

Configuration (the jar's own ``application.properties`` ships ``conductor.db.type=memory``, an
in-JVM Redis mock): executions and metadata in Redis (``redis_standalone``), queues in the same
Redis (orkes-queues ``redis_standalone``), indexing off, the in-JVM ``local_only`` execution lock
(correct for one server node, no Redis round trips), sample data off. The Redis it starts has
append-only persistence with fsync every second, like Podium's store. The server listens on
127.0.0.1 only; ``stop()`` kills the JVM.

    python -m benchmarks.peers.conductor_server [--fetch-only] [--redis-url URL] [--seconds S]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from benchmarks.peers.procs import exit_on_sigterm, spawn, stop
from podium.launch.redis import RedisServer, free_port

GROUP, ARTIFACT, CLASSIFIER = "org.conductoross", "conductor-server", "boot"
DEFAULT_VERSION = os.environ.get("PODIUM_CONDUCTOR_VERSION", "3.21.14")
CACHE = Path(os.environ.get("PODIUM_CONDUCTOR_CACHE", Path.home() / ".cache/podium/conductor"))
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy"
#: SHA-256 of each boot jar this benchmark has run; a jar of a version listed here must match,
#: whether just downloaded or found in the cache (Maven also checks its own checksums).
JAR_SHA256 = {"3.21.14": "f0cfdf1cfd2eae1a925109a9d64ec328019af1dd57a0a209c41da0f320a7f31b"}
JAVA_FOR_VERSION = {"3.21": 17, "3.32": 21}  # Java release each line is built for


class ConductorUnavailable(RuntimeError):
    """The Conductor server cannot be fetched or run here; the message says why."""


def java_major() -> int:
    java = shutil.which("java")
    if java is None:
        raise ConductorUnavailable("no 'java' on PATH (Conductor needs a JDK/JRE 17+)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not found:
        raise ConductorUnavailable(f"cannot read the Java version from: {out.stderr.strip()!r}")
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def required_java(version: str) -> int:
    return JAVA_FOR_VERSION.get(".".join(version.split(".")[:2]), 21)


def fetch(version: str = DEFAULT_VERSION, cache: Path = CACHE, timeout_s: float = 900) -> Path:
    """The boot jar of ``version`` in ``cache``, downloaded with Maven if not there yet."""
    jar = cache / f"{ARTIFACT}-{version}-{CLASSIFIER}.jar"
    if jar.exists() and jar.stat().st_size > 1_000_000:
        verify_jar(jar, version)
        return jar
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConductorUnavailable("no 'mvn' on PATH to fetch the Conductor jar from Maven Central")
    cache.mkdir(parents=True, exist_ok=True)
    artifact = f"{GROUP}:{ARTIFACT}:{version}:jar:{CLASSIFIER}"
    cmd = [
        mvn,
        "-B",
        "-q",
        "--strict-checksums",
        DEPENDENCY_PLUGIN,
        f"-Dartifact={artifact}",
        f"-DoutputDirectory={cache}",
        "-Dmdep.overWriteReleases=true",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=cache)
    if done.returncode != 0 or not jar.exists():
        tail = (done.stdout + done.stderr)[-1500:]
        raise ConductorUnavailable(f"Maven could not fetch {artifact}: {tail}")
    verify_jar(jar, version)
    return jar


def verify_jar(jar: Path, version: str) -> None:
    """Refuse a jar whose SHA-256 differs from the one pinned for ``version`` (if pinned)."""
    pinned = JAR_SHA256.get(version)
    if pinned is None:
        return
    h = hashlib.sha256()
    with jar.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != pinned:
        jar.unlink()
        raise ConductorUnavailable(
            f"{jar.name} has sha256 {h.hexdigest()}, pinned {pinned}; removed it, fetch again"
        )


def properties(port: int, redis_host: str, redis_port: int) -> str:
    hosts = f"{redis_host}:{redis_port}:us-east-1c"
    return "\n".join(
        [
            f"server.port={port}",
            "server.address=127.0.0.1",
            "loadSample=false",
            "conductor.db.type=redis_standalone",
            "conductor.queue.type=redis_standalone",
            f"conductor.redis.hosts={hosts}",
            "conductor.redis.availabilityZone=us-east-1c",
            "conductor.redis.workflowNamespacePrefix=conductor",
            "conductor.redis.queueNamespacePrefix=conductor_queues",
            "conductor.indexing.enabled=false",
            "conductor.app.workflow-execution-lock-enabled=true",
            "conductor.workflow-execution-lock.type=local_only",
            "conductor.metrics-prometheus.enabled=false",
            "management.endpoints.web.exposure.include=health",
            "",
        ]
    )


@dataclass
class ConductorServer:
    """One Conductor JVM on a free loopback port, on ``redis_url`` or a Redis of its own."""

    version: str = DEFAULT_VERSION
    redis_url: str | None = None
    port: int = 0
    heap: str = "1g"
    start_timeout_s: float = 300.0
    workdir: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _redis: RedisServer | None = field(default=None, init=False, repr=False)
    _own_workdir: bool = field(default=False, init=False, repr=False)

    @property
    def url(self) -> str:
        """API base URL (includes ``/api``, as Conductor clients expect)."""
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def redis_pid(self) -> int | None:
        proc = self._redis._proc if self._redis is not None else None
        return proc.pid if proc is not None else None

    @property
    def log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "conductor.log"

    def start(self) -> ConductorServer:
        need, have = required_java(self.version), java_major()
        if have < need:
            raise ConductorUnavailable(
                f"conductor-server {self.version} is built for Java {need}, this machine has "
                f"Java {have}; use 3.21.14 (Java 17) or install JDK {need}"
            )
        jar = fetch(self.version)
        if self.redis_url is None:  # durability as Podium's store: append-only, fsync 1/s
            self._redis = RedisServer(appendonly=True).start()
            self.redis_url = self._redis.url
        parsed = urlparse(self.redis_url)
        self.port = self.port or free_port()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="podium-conductor-"))
            self._own_workdir = True
        config = self.workdir / "conductor.properties"
        host, redis_port = parsed.hostname or "127.0.0.1", parsed.port or 6379
        config.write_text(properties(self.port, host, redis_port))
        cmd = [
            "java",
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            f"-DCONDUCTOR_CONFIG_FILE={config}",
            "-jar",
            str(jar),
        ]
        try:
            self._proc = spawn(cmd, log=self.log)
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        health = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ConductorUnavailable(
                    f"the Conductor JVM exited with {self._proc.returncode} at start: "
                    f"{self.log.read_text(errors='replace')[-3000:]}"
                )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(health, timeout=2) as resp,
            ):
                if resp.status == 200 and b'"healthy":true' in resp.read():
                    return
            time.sleep(1.0)
        raise ConductorUnavailable(
            f"Conductor did not answer {health} within {self.start_timeout_s:.0f}s: "
            f"{self.log.read_text(errors='replace')[-2000:]}"
        )

    def stop(self) -> None:
        """Kill the JVM (and the Redis this object started), remove a workdir it made."""
        stop(self._proc, timeout_s=15)
        self._proc = None
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._own_workdir = False
        if self._redis is not None:
            self._redis.cleanup()
            self._redis = None

    def __enter__(self) -> ConductorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--version", default=DEFAULT_VERSION, help="conductor-server version")
    parser.add_argument("--fetch-only", action="store_true", help="download the jar and exit")
    parser.add_argument("--redis-url", default=None, help="use this Redis (default: start one)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=3600.0, help="stop after this long")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    try:
        if args.fetch_only:
            print(fetch(args.version))
            return 0
        server = ConductorServer(args.version, args.redis_url, args.port)
        started = time.monotonic()
        with server:
            print(
                f"Conductor {args.version} at {server.url} (pid {server.pid}, "
                f"redis {server.redis_url}, log {server.log}); Ctrl-C stops it",
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
    except ConductorUnavailable as exc:
        print(f"Conductor server unavailable: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
