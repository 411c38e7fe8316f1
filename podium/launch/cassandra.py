"""Start and stop a local Apache Cassandra node, or a ring of them (for development and tests).

The jars come from Maven Central (``org.apache.cassandra:cassandra-all`` and its dependencies),
resolved once by Maven with ``deploy/cassandra/pom.xml`` into a cache folder
(``~/.cache/podium/cassandra-<version>``, or ``$PODIUM_CASSANDRA_HOME``). Maven checks every
download against the repository's checksums (``--strict-checksums``), and the jars of a version
with a lock, ``deploy/cassandra/cassandra-<version>.sha256``, must be exactly the ones it names
with those SHA-256 digests (``--write-lock`` writes it after a deliberate upgrade). Only the
5.0 line runs on Java 17. Each node listens on loopback only, on free ports, keeps its files
in its own folder and runs ``CassandraDaemon`` in the foreground; start-up waits until CQL
answers.

A node may require a login (``login``: PasswordAuthenticator and CassandraAuthorizer; the
first start creates that role and replaces the default superuser's well-known password with a
random one) and TLS on its CQL port (``tls``: PEM files, e.g. from ``podium.devcerts``); the
defaults are neither, as for the benchmarks. ``store_env()`` is what a service needs to reach it.

    python -m podium.launch.cassandra [--port N] [--data-dir D]   # run one node until Ctrl-C
    python -m podium.launch.cassandra --fetch-only                # resolve the jars and exit
    python -m podium.launch.cassandra --fetch-only --write-lock   # ... and lock their digests
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Literal

from podium.devcerts import CertPaths
from podium.errors import ConfigError, Unavailable
from podium.launch.cassandra_jars import DEFAULT_VERSION, fetch_jars, jar_lock, write_jar_lock
from podium.launch.redis import free_port

#: Newest 5.0.x on Central when this was written; full Java 17 support since 5.0.5.
SUPPORTED_JAVA = (11, 17)
_POLL_S = 0.1

# From Cassandra's conf/jvm17-server.options (plus java.nio and jmx.remote.security, which
# cassandra-unit adds): without them the JVM dies during start-up on Java 17.
# fmt: off
_ADD_EXPORTS = (
    "java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.rmi/sun.rmi.registry", "java.rmi/sun.rmi.server", "java.sql/java.sql",
    "java.base/java.lang.ref", "jdk.unsupported/sun.misc", "jdk.compiler/com.sun.tools.javac.file",
    "jdk.attach/sun.tools.attach", "java.management/com.sun.jmx.remote.security",
)
_ADD_OPENS = (
    "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect", "java.base/jdk.internal.math",
    "java.base/jdk.internal.module", "java.base/jdk.internal.util.jar",
    "jdk.management/com.sun.management.internal", "java.base/sun.nio.ch", "java.base/java.io",
    "java.base/java.lang.reflect", "jdk.compiler/com.sun.tools.javac", "java.base/java.lang",
    "java.base/java.util", "java.base/java.nio",
)
# fmt: on
_JVM_FLAGS = (
    "-Djdk.attach.allowAttachSelf=true",
    *(f"--add-exports={p}=ALL-UNNAMED" for p in _ADD_EXPORTS),
    *(f"--add-opens={p}=ALL-UNNAMED" for p in _ADD_OPENS),
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
    "-Xss256k",
    "-XX:+UseG1GC",
    # A node that ran out of heap may have half-written state; better dead than wrong.
    "-XX:+ExitOnOutOfMemoryError",
)

# Shortcuts for a lone node, which has no ring to wait for and no peers to tell it is leaving:
# measured on 2 cores, a start takes ~8 s instead of ~13 s and a stop under 1 s instead of ~5 s.
_SINGLE_NODE_PROPS = (
    "-Dcassandra-foreground=yes",
    "-Dcassandra.ring_delay_ms=0",
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    "-Dcassandra.superuser_setup_delay_ms=0",
    "-Dcassandra.shutdown_announce_in_ms=0",
    "-Dcassandra.test.messagingService.nonGracefulShutdown=true",
    "-Djava.net.preferIPv4Stack=true",
)

_LOGBACK = """<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


def java_binary() -> str:
    """The ``java`` to run (``$JAVA_HOME`` first), checked to be a version 5.0 supports."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None or not Path(java).is_file():
        raise ConfigError(
            f"java is not installed (JAVA_HOME={java_home!r}); install openjdk-17-jre-headless"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(?:1\.)?(\d+)', out)
    major = int(match.group(1)) if match else 0
    if major not in SUPPORTED_JAVA:
        raise ConfigError(
            f"Cassandra 5.0 runs on Java {' or '.join(map(str, SUPPORTED_JAVA))}, "
            f"but {java} is Java {major or 'unknown'} (set JAVA_HOME)"
        )
    return java


def _render_yaml(node: CassandraNode, root: Path) -> str:
    def q(p: Path) -> str:
        return json.dumps(str(p))  # a JSON string is a valid YAML scalar, whatever the path

    if node.login is None:
        auth = "authenticator: AllowAllAuthenticator\nauthorizer: AllowAllAuthorizer"
    else:
        auth = (
            "authenticator: PasswordAuthenticator\nauthorizer: CassandraAuthorizer\n"
            "role_manager: CassandraRoleManager"
        )
    client_tls = ""
    if node.tls is not None:
        client_tls = f"""\
client_encryption_options:
  enabled: true
  optional: false
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: {q(root / "conf" / "node-keystore.pem")}
  truststore: {q(node.tls.ca.resolve())}
  require_client_auth: {str(node.tls.require_client_auth).lower()}
  protocol: TLS
  accepted_protocols: [TLSv1.2, TLSv1.3]
"""
    commitlog = (
        "commitlog_sync: batch"
        if node.commitlog_sync == "batch"
        else "commitlog_sync: periodic\ncommitlog_sync_period: 1000ms"
    )

    return f"""\
cluster_name: {json.dumps(node.cluster_name)}
num_tokens: 1
initial_token: {node.initial_token}
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{",".join(node.seeds) or f"{node.host}:{node.storage_port}"}"
listen_address: {node.host}
rpc_address: {node.host}
storage_port: {node.storage_port}
native_transport_port: {node.port}
auto_bootstrap: false
data_file_directories: [{q(root / "data")}]
commitlog_directory: {q(root / "commitlog")}
# hints, saved_caches and cdc_raw default to folders under -Dcassandra.storagedir.
{commitlog}
commitlog_segment_size: 8MiB
{auth}
{client_tls}storage_compatibility_mode: NONE
auto_snapshot: false
incremental_backups: false
hinted_handoff_enabled: false
dynamic_snitch: false
concurrent_compactors: 1
key_cache_size: 16MiB
memtable_heap_space: 64MiB
memtable_offheap_space: 64MiB
file_cache_size: 64MiB
materialized_views_enabled: true
sasi_indexes_enabled: true
# Paxos v2 (Cassandra 4.1+): fewer round trips per lightweight transaction, and it goes on
# with a quorum while a replica is dead but not yet marked down; v1 waits for that replica, so
# every conditional write timed out for the ~15 s after a node's kill (docs/reliability.md).
paxos_variant: v2
"""


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _release_version(host: str, port: int, timeout_s: float = 10.0, **driver: Any) -> str | None:
    """``release_version`` read over CQL, or None if the node does not answer yet (or refuses
    the login). ``driver`` adds options of the driver's ``Cluster`` (login, TLS)."""
    from cassandra import DriverException
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
    from cassandra.policies import WhiteListRoundRobinPolicy

    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([host]), request_timeout=timeout_s
    )
    cluster = Cluster(
        [host],
        port=port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=timeout_s,
        control_connection_timeout=timeout_s,
        **driver,
    )
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local").one()
        return str(row.release_version)
    except (DriverException, NoHostAvailable, OSError):
        return None
    finally:
        cluster.shutdown()


#: The superuser every fresh node with PasswordAuthenticator has (and everyone knows).
DEFAULT_SUPERUSER = ("cassandra", "cassandra")


@dataclass(frozen=True)
class NodeTls:
    """TLS on a node's CQL port, from PEM files.

    ``cert``/``key`` is the node's pair (it must name the node's address); ``ca`` signed it and,
    with ``require_client_auth``, the clients' certificates too. ``client_cert``/``client_key``
    is the pair the launcher's own connections present (needed with ``require_client_auth``).
    """

    cert: Path
    key: Path
    ca: Path
    require_client_auth: bool = False
    client_cert: Path | None = None
    client_key: Path | None = None

    @classmethod
    def from_certs(cls, certs: CertPaths, *, require_client_auth: bool = False) -> NodeTls:
        """The node serves ``certs``' server pair; clients present its client pair."""
        return cls(
            cert=certs.server_cert,
            key=certs.server_key,
            ca=certs.ca,
            require_client_auth=require_client_auth,
            client_cert=certs.client_cert,
            client_key=certs.client_key,
        )

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts ``ca``, checks the node's name and presents the
        client pair if there is one."""
        from podium.store.cassandra_backend.session import tls_context

        if self.client_cert is None or self.client_key is None:
            return tls_context(str(self.ca))
        return tls_context(str(self.ca), str(self.client_cert), str(self.client_key))


@dataclass
class CassandraNode:
    """One Cassandra process on loopback: ``port`` is CQL's, ``storage_port`` the internode one.

    Ports left at 0 are picked at the first start and kept, so that :meth:`restart` brings the
    node back at the same address on the same data.
    """

    port: int = 0
    host: str = "127.0.0.1"
    storage_port: int = 0
    data_dir: Path | None = None
    version: str = DEFAULT_VERSION
    heap_mb: int = 768
    cluster_name: str = "podium-dev"
    #: ``host:storage_port`` of the ring's seed nodes (empty: the node is its own seed)
    seeds: list[str] = field(default_factory=list)
    initial_token: int = 0  # the one token of the node (num_tokens 1) on the Murmur3 ring
    #: "periodic" acknowledges a write before its fsync, and the commit log replays only what
    #: was synced: after :meth:`kill` the last second of writes may be gone. "batch" syncs
    #: before it acknowledges (slower writes, nothing acknowledged is lost).
    commitlog_sync: Literal["periodic", "batch"] = "periodic"
    #: "c1" compiles with the JVM's quick compiler only; "tiered" adds C2, the optimizing one.
    #: On 2 cores C2 took about a third of the node's CPU all through a benchmark of a few
    #: thousand workflows (still compiling at the end), and the node served about a quarter
    #: more workflows per second with C1 alone (benchmarks/README.md). "tiered" suits a node
    #: that runs for days.
    jit: Literal["c1", "tiered"] = "c1"
    extra_jvm_args: list[str] = field(default_factory=list)
    #: ``(role, password)`` clients log in as; None runs the node without authentication.
    login: tuple[str, str] | None = field(default=None, repr=False)
    #: TLS on the CQL port; None serves plain CQL.
    tls: NodeTls | None = None
    release_version: str | None = field(default=None, init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)
    _own_dir: bool = field(default=False, init=False, repr=False)

    @property
    def contact_points(self) -> list[str]:
        return [self.host]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return None if self.data_dir is None else self.data_dir / "cassandra.log"

    def driver_options(self, login: tuple[str, str] | None = None) -> dict[str, Any]:
        """Options of the driver's ``Cluster`` that reach this node: its login (or ``login``)
        and its TLS."""
        from cassandra.auth import PlainTextAuthProvider

        login = login or self.login
        return {
            "auth_provider": None if login is None else PlainTextAuthProvider(*login),
            "ssl_context": None if self.tls is None else self.tls.client_context(),
        }

    def store_env(self) -> dict[str, str]:
        """The ``PODIUM_CASSANDRA_*`` variables of a service that uses this node."""
        env = {
            "PODIUM_STORE": "cassandra",
            "PODIUM_CASSANDRA_HOSTS": ",".join(self.contact_points),
            "PODIUM_CASSANDRA_PORT": str(self.port),
        }
        if self.login is not None:
            env["PODIUM_CASSANDRA_USERNAME"], env["PODIUM_CASSANDRA_PASSWORD"] = self.login
        if self.tls is not None:
            env["PODIUM_CASSANDRA_TLS_CA_FILE"] = str(self.tls.ca)
            if self.tls.client_cert is not None and self.tls.client_key is not None:
                env["PODIUM_CASSANDRA_TLS_CERT_FILE"] = str(self.tls.client_cert)
                env["PODIUM_CASSANDRA_TLS_KEY_FILE"] = str(self.tls.client_key)
        return env

    def start(self, timeout_s: float = 180.0) -> CassandraNode:
        """Start the node (resolving the jars first if needed); return when CQL answers."""
        if self.is_running():
            return self
        lib = fetch_jars(self.version)
        java = java_binary()
        if self.port == 0:
            self.port = free_port(self.host)
        while self.storage_port in (0, self.port):
            self.storage_port = free_port(self.host)
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix=f"podium-cassandra-{self.port}-"))
            self._own_dir = True
        root = self.data_dir.resolve()
        conf = root / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        for sub in ("logs", "triggers"):
            (root / sub).mkdir(exist_ok=True)
        if self.tls is not None:
            # PEMBasedSslContextFactory reads the key and its certificate from one file.
            keystore = conf / "node-keystore.pem"
            fd = os.open(keystore, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.tls.key.read_bytes() + b"\n" + self.tls.cert.read_bytes())
        (conf / "cassandra.yaml").write_text(_render_yaml(self, root))
        (conf / "logback.xml").write_text(_LOGBACK)
        self._spawn(self._command(java, lib, root), root / "cassandra.log")
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.kill()  # a start that fails in any way leaves no JVM behind
            raise
        return self

    def _command(self, java: str, lib: Path, root: Path) -> list[str]:
        jamm = sorted(lib.glob("jamm-*.jar"))
        if not jamm:
            raise ConfigError(f"no jamm jar in {lib}; remove {lib.parent} and fetch again")
        args = [
            java,
            *_JVM_FLAGS,
            f"-Xms{self.heap_mb}m",
            f"-Xmx{self.heap_mb}m",
            *(["-XX:TieredStopAtLevel=1"] if self.jit == "c1" else []),
            f"-javaagent:{jamm[-1]}",
            *_SINGLE_NODE_PROPS,
            f"-Dcassandra.config=file://{root / 'conf' / 'cassandra.yaml'}",
            f"-Dcassandra.storagedir={root}",
            f"-Dcassandra.logdir={root / 'logs'}",
            f"-Dcassandra.triggers_dir={root / 'triggers'}",
            f"-Dlogback.configurationFile={root / 'conf' / 'logback.xml'}",
            *self.extra_jvm_args,
            "-cp",
            f"{root / 'conf'}:{lib}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]
        # A JVM orphaned by a crashed test run would hold a gigabyte and its ports; the kernel
        # signals it when the thread that started it dies, hence only from the main thread.
        setpriv = shutil.which("setpriv")
        if setpriv and threading.current_thread() is threading.main_thread():
            args = [setpriv, "--pdeathsig", "TERM", "--", *args]
        return args

    def _spawn(self, args: list[str], log_path: Path) -> None:
        self._close_log()
        # Appended to, so that the log of a restarted node tells its whole story.
        self._log = log_path.open("ab")
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Ctrl-C in a terminal goes to the test runner, which then stops the node in order.
            start_new_session=True,
        )

    def _wait_ready(self, timeout_s: float) -> None:
        proc = self._proc
        if proc is None:
            raise Unavailable(f"Cassandra on port {self.port} is not running", port=self.port)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._close_log()
                self._proc = None
                raise Unavailable(
                    f"Cassandra on port {self.port} exited at start with code {proc.returncode}: "
                    f"{self.log_tail()}",
                    port=self.port,
                )
            if _port_open(self.host, self.port):
                self.release_version = _release_version(
                    self.host, self.port, **self.driver_options()
                )
                # With a login, ready once the role logs in and the default superuser cannot
                # (a fresh node takes that one only: it is then used to make the role).
                secured = self.login is None or self._default_login_refused()
                if self.release_version is not None and secured:
                    return
            time.sleep(_POLL_S)
        self.kill()
        raise Unavailable(
            f"Cassandra on port {self.port} did not answer CQL within {timeout_s}s: "
            f"{self.log_tail()}",
            port=self.port,
        )

    def _default_login_refused(self) -> bool:
        """Whether the node refuses the default superuser's well-known password. While it
        takes it (a fresh node), this creates the ``login`` role with every permission on
        every keyspace (not superuser: it cannot manage roles) and gives the superuser a
        random password nobody keeps; each step is idempotent, so a round cut short is
        simply run again."""
        from cassandra import AuthenticationFailed, DriverException
        from cassandra.cluster import Cluster, NoHostAvailable

        assert self.login is not None
        role, password = self.login
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", role):
            raise ConfigError(f"role name {role!r}: letters, digits and _ only")
        cluster = Cluster(
            [self.host],
            port=self.port,
            protocol_version=5,
            connect_timeout=10,
            **self.driver_options(DEFAULT_SUPERUSER),
        )
        try:
            session = cluster.connect()
            session.execute(
                f'CREATE ROLE IF NOT EXISTS "{role}" WITH PASSWORD = %s AND LOGIN = true',
                (password,),
            )
            session.execute(f'GRANT ALL PERMISSIONS ON ALL KEYSPACES TO "{role}"')
            session.execute(
                f'ALTER ROLE "{DEFAULT_SUPERUSER[0]}" WITH PASSWORD = %s',
                (secrets.token_urlsafe(24),),
            )
            return False  # the next round checks that the old password is refused
        except NoHostAvailable as exc:
            # errors maps hosts to their errors, or is a list when the driver found no host
            found = exc.errors
            errors = list(found.values()) if isinstance(found, dict) else list(found or ())
            return bool(errors) and all(isinstance(e, AuthenticationFailed) for e in errors)
        except (DriverException, OSError):
            return False
        finally:
            cluster.shutdown()

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the node's console log (for error messages)."""
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - chars))
            return f.read().decode(errors="replace")

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout_s: float | None = None) -> int:
        """Block until the process exits; its exit code (0 if it was never started)."""
        if self._proc is None:
            return 0
        return self._proc.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL: no drain, no flush; unsynced commit-log writes may be lost."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait(10)
            self._proc = None
        self._close_log()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (Cassandra drains and flushes memtables), SIGKILL after ``timeout_s``."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._proc = None
        self._close_log()

    def restart(self, timeout_s: float = 180.0) -> CassandraNode:
        """Stop, then start again on the same ports and data."""
        self.stop()
        return self.start(timeout_s)

    def cleanup(self) -> None:
        """Stop and remove the data folder if this object created it."""
        self.stop()
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
            self._own_dir = False

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> CassandraNode:
        try:
            return self.start()
        except BaseException:
            self.cleanup()  # __exit__ does not run when __enter__ raises
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _free_on_all(hosts: list[str], avoid: set[int]) -> int:
    """A port free on every one of ``hosts`` (the nodes of a ring share their ports)."""
    for _ in range(50):
        port = free_port(hosts[0])
        if port in avoid:
            continue
        try:
            for host in hosts[1:]:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((host, port))
        except OSError:
            continue
        return port
    raise Unavailable(f"no port free on all of {hosts}")


RING_DELAY_MS = 10_000


@dataclass
class CassandraRing:
    """``size`` nodes on loopback addresses 127.0.0.1, 127.0.0.2, ... (Linux routes the whole
    127/8 to the loopback interface), sharing one CQL port and one internode port as a ring
    of real machines does, each owning an equal slice of the token range. The first node is
    the seed. A keyspace with replication factor 3 at ``LOCAL_QUORUM`` keeps answering while
    any one node is down, which is what :meth:`CassandraNode.kill` of one node shows.

    The ring can serve CQL over TLS (``tls``) but takes no login: the roles of
    ``system_auth`` would first have to be replicated to every node.
    """

    size: int = 3
    data_root: Path | None = None
    version: str = DEFAULT_VERSION
    heap_mb: int = 512
    jit: Literal["c1", "tiered"] = "c1"  # as CassandraNode.jit
    cluster_name: str = "podium-ring"
    #: TLS on every node's CQL port (one certificate naming every node's address).
    tls: NodeTls | None = None
    nodes: list[CassandraNode] = field(default_factory=list)
    _own_dir: bool = field(default=False, init=False, repr=False)
    _probes: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def hosts(self) -> list[str]:
        return [f"127.0.0.{i + 1}" for i in range(self.size)]

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def contact_points(self) -> list[str]:
        return self.hosts

    def driver_options(self) -> dict[str, Any]:
        """Options of the driver's ``Cluster`` that reach the ring (its TLS)."""
        return {"ssl_context": None if self.tls is None else self.tls.client_context()}

    def store_env(self) -> dict[str, str]:
        """The ``PODIUM_CASSANDRA_*`` variables of a service that uses the ring."""
        return {
            **self.nodes[0].store_env(),
            "PODIUM_CASSANDRA_HOSTS": ",".join(self.hosts),
        }

    def start(self, timeout_s: float = 180.0) -> CassandraRing:
        """Start the nodes one after the other (each joins the ring before the next starts)."""
        if self.data_root is None:
            self.data_root = Path(tempfile.mkdtemp(prefix="podium-cassandra-ring-"))
            self._own_dir = True
        hosts = self.hosts
        port = _free_on_all(hosts, set())
        storage_port = _free_on_all(hosts, {port})
        step = 2**64 // self.size
        self.nodes = [
            CassandraNode(
                port=port,
                host=host,
                storage_port=storage_port,
                data_dir=self.data_root / f"node{i + 1}",
                version=self.version,
                heap_mb=self.heap_mb,
                jit=self.jit,
                cluster_name=self.cluster_name,
                seeds=[f"{hosts[0]}:{storage_port}"],
                initial_token=-(2**63) + i * step,
                # A node of a ring that restarts first asks its peers for the ring's state
                # (gossip's shadow round), for up to the ring delay; the lone node's 0 would
                # fail that start whenever a peer is slow to answer.
                extra_jvm_args=[f"-Dcassandra.ring_delay_ms={RING_DELAY_MS}"],
                tls=self.tls,
            )
            for i, host in enumerate(hosts)
        ]
        try:
            for node in self.nodes:
                node.start(timeout_s)
            self.wait_whole(timeout_s)
        except BaseException:
            self.cleanup()
            raise
        return self

    def whole(self) -> bool:
        """Whether every node runs and sees every other one up: a read at consistency ALL
        of ``system_distributed`` (replicated to three nodes) through each node in turn."""
        if not all(node.is_running() for node in self.nodes):
            return False
        return all(self._sees_all_up(node) for node in self.nodes)

    def wait_whole(self, timeout_s: float = 120.0) -> CassandraRing:
        deadline = time.monotonic() + timeout_s
        while not self.whole():
            if time.monotonic() > deadline:
                raise Unavailable(f"the Cassandra ring was not whole within {timeout_s}s")
            time.sleep(0.5)
        return self

    def _sees_all_up(self, node: CassandraNode) -> bool:
        from cassandra import ConsistencyLevel, DriverException
        from cassandra.cluster import (
            EXEC_PROFILE_DEFAULT,
            Cluster,
            ExecutionProfile,
            NoHostAvailable,
        )
        from cassandra.policies import ConstantReconnectionPolicy, WhiteListRoundRobinPolicy

        session = self._probes.get(node.host)
        if session is None:
            profile = ExecutionProfile(
                load_balancing_policy=WhiteListRoundRobinPolicy([node.host]),
                consistency_level=ConsistencyLevel.ALL,
                request_timeout=5,
            )
            cluster = Cluster(
                [node.host],
                port=node.port,
                protocol_version=5,
                execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                schema_metadata_enabled=False,
                connect_timeout=5,
                # a restarted node is seen again within a second, not after a growing back-off
                reconnection_policy=ConstantReconnectionPolicy(0.5),
                **self.driver_options(),
            )
            try:
                session = cluster.connect()
            except (DriverException, NoHostAvailable, OSError):
                cluster.shutdown()
                return False
            self._probes[node.host] = session
        try:
            session.execute("SELECT * FROM system_distributed.repair_history LIMIT 1")
            return True
        except (DriverException, NoHostAvailable, OSError):
            # a fresh connection next time: the driver gives up reconnecting to a node that
            # stays down for long
            session.cluster.shutdown()
            del self._probes[node.host]
            return False

    def stop(self) -> None:
        for session in self._probes.values():
            session.cluster.shutdown()
        self._probes.clear()
        for node in reversed(self.nodes):
            node.stop()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir and self.data_root is not None:
            shutil.rmtree(self.data_root, ignore_errors=True)
            self.data_root = None
            self._own_dir = False

    def __enter__(self) -> CassandraRing:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m podium.launch.cassandra",
        description="Run a single-node Cassandra on loopback until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=0, help="CQL port (default: a free one)")
    parser.add_argument("--data-dir", type=Path, help="keep data here (default: a temp folder)")
    parser.add_argument("--version", default=DEFAULT_VERSION, help="Cassandra 5.0.x version")
    parser.add_argument("--heap-mb", type=int, default=768)
    parser.add_argument(
        "--jit",
        choices=("c1", "tiered"),
        default="c1",
        help="c1: the quick compiler only (less CPU on a small machine); tiered: C1 and C2",
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="start-up limit, seconds")
    parser.add_argument(
        "--fetch-only", action="store_true", help="resolve the jars with Maven and exit"
    )
    parser.add_argument(
        "--write-lock",
        action="store_true",
        help="write the jars' SHA-256 digests to deploy/cassandra/cassandra-<version>.sha256",
    )
    opts = parser.parse_args(argv)
    if opts.fetch_only:
        lib = fetch_jars(opts.version)
        if opts.write_lock:
            write_jar_lock(lib, jar_lock(opts.version))
            print(jar_lock(opts.version), flush=True)
        print(lib, flush=True)
        return 0

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    node = CassandraNode(
        port=opts.port,
        data_dir=opts.data_dir,
        version=opts.version,
        heap_mb=opts.heap_mb,
        jit=opts.jit,
    )
    try:
        began = time.monotonic()
        node.start(opts.timeout)
        print(
            f"cassandra {node.release_version} ready at {node.address} "
            f"in {time.monotonic() - began:.1f}s (data in {node.data_dir})",
            flush=True,
        )
        code = node.wait()
        print(f"cassandra exited with code {code}: {node.log_tail(1500)}", file=sys.stderr)
        return code or 1
    except KeyboardInterrupt:
        return 0
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            node.cleanup()


if __name__ == "__main__":
    sys.exit(main())
