"""Store settings, read and validated once from ``PODIUM_*`` environment variables."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from podium.errors import ConfigError
from podium.redis_conn import parse_sentinels, redact_url

Backend = Literal["redis", "cassandra"]

#: Consistency levels accepted for ``PODIUM_CASSANDRA_CONSISTENCY`` (names of the driver's enum).
CONSISTENCY_LEVELS = frozenset(
    {"ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE"}
)
SERIAL_CONSISTENCY_LEVELS = frozenset({"SERIAL", "LOCAL_SERIAL"})
_KEYSPACE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
_T = TypeVar("_T")


@dataclass(frozen=True)
class StoreConfig:
    """Where and how the store keeps definitions and executions.

    ``workflow_retention_s`` = 0 keeps finished workflows forever; ``search_window_days``
    bounds a search that names no start-time range; ``search_max_scan`` bounds how many index
    entries one search examines.
    """

    backend: Backend = "redis"
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    #: Sentinels' addresses, for a ``sentinel://master/db`` URL (podium/redis_conn.py).
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    #: Replicas that must hold a workflow commit before it is acknowledged (0: the primary).
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 1000
    key_prefix: str = "podium:store:"
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)
    cassandra_port: int = 9042
    cassandra_keyspace: str = "podium"
    cassandra_consistency: str = "LOCAL_QUORUM"
    cassandra_serial_consistency: str = "LOCAL_SERIAL"
    cassandra_replication_factor: int = 1
    cassandra_local_dc: str | None = None
    cassandra_migrate_on_open: bool = True
    #: Role the services log in as (PasswordAuthenticator); empty: no authentication.
    cassandra_username: str = ""
    cassandra_password: str = field(default="", repr=False)
    #: Client-to-node TLS; also on when a file below is named (see ``cassandra_tls_on``).
    cassandra_tls: bool = False
    #: PEM file of the CA(s) that signed the nodes' certificates (empty: the system's CAs).
    cassandra_tls_ca_file: str = ""
    #: PEM certificate and key this client presents (nodes with ``require_client_auth``).
    cassandra_tls_cert_file: str = ""
    cassandra_tls_key_file: str = ""
    #: Whether a node's certificate must name the address it was reached at.
    cassandra_tls_check_hostname: bool = True
    max_record_bytes: int = 2 * 1024 * 1024
    workflow_retention_s: float = 0.0
    search_window_days: int = 7
    search_max_scan: int = 10_000

    def __post_init__(self) -> None:
        _check(self.backend in ("redis", "cassandra"), "PODIUM_STORE", self.backend)
        scheme = urlsplit(self.redis_url).scheme
        _check(
            scheme in ("redis", "rediss", "unix", "sentinel"),
            "PODIUM_STORE_REDIS_URL",
            redact_url(self.redis_url),
        )
        if scheme == "sentinel" and not self.redis_sentinels:
            raise ConfigError(
                "PODIUM_STORE_REDIS_URL is a sentinel:// URL: set PODIUM_STORE_REDIS_SENTINELS "
                "to the Sentinels' host:port list",
                variable="PODIUM_STORE_REDIS_SENTINELS",
            )
        _check(self.redis_wait_replicas >= 0, "PODIUM_STORE_REDIS_WAIT_REPLICAS",
               self.redis_wait_replicas)  # fmt: skip
        _check(self.redis_wait_timeout_ms >= 1, "PODIUM_STORE_REDIS_WAIT_TIMEOUT_MS",
               self.redis_wait_timeout_ms)  # fmt: skip
        _check(bool(self.key_prefix.strip()), "PODIUM_STORE_KEY_PREFIX", self.key_prefix)
        _check(
            bool(self.cassandra_hosts) and all(h.strip() for h in self.cassandra_hosts),
            "PODIUM_CASSANDRA_HOSTS",
            ",".join(self.cassandra_hosts),
        )
        _check(1 <= self.cassandra_port <= 65535, "PODIUM_CASSANDRA_PORT", self.cassandra_port)
        _check(
            bool(_KEYSPACE_RE.match(self.cassandra_keyspace)),
            "PODIUM_CASSANDRA_KEYSPACE",
            self.cassandra_keyspace,
        )
        _check(
            self.cassandra_consistency in CONSISTENCY_LEVELS,
            "PODIUM_CASSANDRA_CONSISTENCY",
            self.cassandra_consistency,
        )
        _check(
            self.cassandra_serial_consistency in SERIAL_CONSISTENCY_LEVELS,
            "PODIUM_CASSANDRA_SERIAL_CONSISTENCY",
            self.cassandra_serial_consistency,
        )
        _check(
            self.cassandra_replication_factor >= 1,
            "PODIUM_CASSANDRA_REPLICATION_FACTOR",
            self.cassandra_replication_factor,
        )
        if bool(self.cassandra_username) != bool(self.cassandra_password):
            missing = "PASSWORD" if self.cassandra_username else "USERNAME"
            raise ConfigError(
                "PODIUM_CASSANDRA_USERNAME and PODIUM_CASSANDRA_PASSWORD go together: "
                f"set PODIUM_CASSANDRA_{missing} too",
                variable=f"PODIUM_CASSANDRA_{missing}",
            )
        if bool(self.cassandra_tls_cert_file) != bool(self.cassandra_tls_key_file):
            missing = "KEY" if self.cassandra_tls_cert_file else "CERT"
            raise ConfigError(
                "PODIUM_CASSANDRA_TLS_CERT_FILE and PODIUM_CASSANDRA_TLS_KEY_FILE go together: "
                f"set PODIUM_CASSANDRA_TLS_{missing}_FILE too",
                variable=f"PODIUM_CASSANDRA_TLS_{missing}_FILE",
            )
        _check(self.max_record_bytes >= 1024, "PODIUM_MAX_RECORD_BYTES", self.max_record_bytes)
        _check(
            self.workflow_retention_s >= 0,
            "PODIUM_WORKFLOW_RETENTION_S",
            self.workflow_retention_s,
        )
        _check(self.search_window_days >= 1, "PODIUM_SEARCH_WINDOW_DAYS", self.search_window_days)
        _check(self.search_max_scan >= 1, "PODIUM_SEARCH_MAX_SCAN", self.search_max_scan)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in self.__dataclass_fields__
            if name not in ("redis_url", "cassandra_password")
        )
        password = "***" if self.cassandra_password else ""
        return (
            f"StoreConfig(redis_url={redact_url(self.redis_url)!r}, "
            f"cassandra_password={password!r}, {fields})"
        )

    @property
    def cassandra_tls_on(self) -> bool:
        """Whether connections to Cassandra use TLS: asked for, or a TLS file is named."""
        return self.cassandra_tls or bool(
            self.cassandra_tls_ca_file or self.cassandra_tls_cert_file
        )

    @property
    def retention_ms(self) -> int:
        """Retention of finished workflows in milliseconds (0 = forever)."""
        return int(self.workflow_retention_s * 1000)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StoreConfig:
        """Read the settings from ``environ`` (default: the process environment).

        Unset variables keep their defaults; a bad value raises :class:`ConfigError` naming
        the variable and the value.
        """
        env = os.environ if environ is None else environ
        kw: dict[str, object] = {}

        def take(var: str, name: str, conv: Callable[[str], _T]) -> None:
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                return
            try:
                kw[name] = conv(raw.strip())
            except ValueError as exc:
                raise ConfigError(f"invalid {var}={raw!r}: {exc}", variable=var) from exc

        take("PODIUM_STORE", "backend", str.lower)
        take("PODIUM_STORE_REDIS_URL", "redis_url", str)
        take(
            "PODIUM_STORE_REDIS_SENTINELS",
            "redis_sentinels",
            lambda v: parse_sentinels(v, "PODIUM_STORE_REDIS_SENTINELS"),
        )
        take("PODIUM_STORE_REDIS_WAIT_REPLICAS", "redis_wait_replicas", int)
        take("PODIUM_STORE_REDIS_WAIT_TIMEOUT_MS", "redis_wait_timeout_ms", int)
        take("PODIUM_STORE_KEY_PREFIX", "key_prefix", str)
        take("PODIUM_CASSANDRA_HOSTS", "cassandra_hosts", _hosts)
        take("PODIUM_CASSANDRA_PORT", "cassandra_port", int)
        take("PODIUM_CASSANDRA_KEYSPACE", "cassandra_keyspace", str)
        take("PODIUM_CASSANDRA_CONSISTENCY", "cassandra_consistency", str.upper)
        take("PODIUM_CASSANDRA_SERIAL_CONSISTENCY", "cassandra_serial_consistency", str.upper)
        take("PODIUM_CASSANDRA_REPLICATION_FACTOR", "cassandra_replication_factor", int)
        take("PODIUM_CASSANDRA_LOCAL_DC", "cassandra_local_dc", str)
        take("PODIUM_CASSANDRA_MIGRATE", "cassandra_migrate_on_open", _bool)
        take("PODIUM_CASSANDRA_USERNAME", "cassandra_username", str)
        password = _secret(env, "PODIUM_CASSANDRA_PASSWORD")
        if password:
            kw["cassandra_password"] = password
        take("PODIUM_CASSANDRA_TLS", "cassandra_tls", _bool)
        take("PODIUM_CASSANDRA_TLS_CA_FILE", "cassandra_tls_ca_file", str)
        take("PODIUM_CASSANDRA_TLS_CERT_FILE", "cassandra_tls_cert_file", str)
        take("PODIUM_CASSANDRA_TLS_KEY_FILE", "cassandra_tls_key_file", str)
        take("PODIUM_CASSANDRA_TLS_CHECK_HOSTNAME", "cassandra_tls_check_hostname", _bool)
        if env.get("PODIUM_CASSANDRA_TLS", "").strip().lower() in ("0", "false", "no", "off") and (
            kw.get("cassandra_tls_ca_file")
            or kw.get("cassandra_tls_cert_file")
            or kw.get("cassandra_tls_key_file")
        ):
            raise ConfigError(
                "PODIUM_CASSANDRA_TLS is off but PODIUM_CASSANDRA_TLS_*_FILE names a file: "
                "unset one or the other",
                variable="PODIUM_CASSANDRA_TLS",
            )
        take("PODIUM_MAX_RECORD_BYTES", "max_record_bytes", int)
        take("PODIUM_WORKFLOW_RETENTION_S", "workflow_retention_s", float)
        take("PODIUM_SEARCH_WINDOW_DAYS", "search_window_days", int)
        take("PODIUM_SEARCH_MAX_SCAN", "search_max_scan", int)
        return cls(**kw)  # type: ignore[arg-type]


def _secret(env: Mapping[str, str], var: str) -> str:
    """A secret from ``var``, or read from the file ``var_FILE`` names (a mounted secret).

    The file's trailing newline is dropped; setting both variables is an error, as is a file
    that cannot be read. The secret itself never appears in an error message.
    """
    value = env.get(var, "")
    path = env.get(f"{var}_FILE", "").strip()
    if value and path:
        raise ConfigError(f"set {var} or {var}_FILE, not both", variable=var)
    if not path:
        return value
    try:
        return Path(path).read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            f"{var}_FILE={path!r} cannot be read: {exc.strerror}", variable=f"{var}_FILE"
        ) from exc


def _check(ok: bool, var: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"invalid {var}={value!r}", variable=var)


def _hosts(raw: str) -> tuple[str, ...]:
    hosts = tuple(h.strip() for h in raw.split(","))
    if not all(hosts):
        raise ValueError("empty host in the list")
    return hosts


def _bool(raw: str) -> bool:
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")
