"""Store settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.errors import ConfigError
from podium.store import StoreConfig


def test_defaults() -> None:
    c = StoreConfig.from_env({})
    assert c == StoreConfig()
    assert c.backend == "redis" and c.cassandra_consistency == "LOCAL_QUORUM"
    assert c.workflow_retention_s == 0 and c.retention_ms == 0


def test_every_variable() -> None:
    c = StoreConfig.from_env(
        {
            "PODIUM_STORE": "Cassandra",
            "PODIUM_STORE_REDIS_URL": "redis://:secret@db:6380/3",
            "PODIUM_STORE_KEY_PREFIX": "p:",
            "PODIUM_CASSANDRA_HOSTS": "a, b,c",
            "PODIUM_CASSANDRA_PORT": "9142",
            "PODIUM_CASSANDRA_KEYSPACE": "conductor_2",
            "PODIUM_CASSANDRA_CONSISTENCY": "quorum",
            "PODIUM_CASSANDRA_SERIAL_CONSISTENCY": "serial",
            "PODIUM_CASSANDRA_REPLICATION_FACTOR": "3",
            "PODIUM_CASSANDRA_LOCAL_DC": "dc1",
            "PODIUM_CASSANDRA_MIGRATE": "false",
            "PODIUM_MAX_RECORD_BYTES": "65536",
            "PODIUM_WORKFLOW_RETENTION_S": "86400",
            "PODIUM_SEARCH_WINDOW_DAYS": "30",
            "PODIUM_SEARCH_MAX_SCAN": "500",
        }
    )
    assert c.backend == "cassandra"
    assert c.cassandra_hosts == ("a", "b", "c") and c.cassandra_port == 9142
    assert c.cassandra_keyspace == "conductor_2" and c.cassandra_consistency == "QUORUM"
    assert c.cassandra_serial_consistency == "SERIAL" and c.cassandra_replication_factor == 3
    assert c.cassandra_local_dc == "dc1" and c.cassandra_migrate_on_open is False
    assert c.max_record_bytes == 65536 and c.retention_ms == 86_400_000
    assert c.search_window_days == 30 and c.search_max_scan == 500
    assert "secret" not in repr(c) and "***" in repr(c)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("PODIUM_STORE", "mongo"),
        ("PODIUM_STORE_REDIS_URL", "http://x"),
        ("PODIUM_CASSANDRA_HOSTS", "a,,b"),
        ("PODIUM_CASSANDRA_PORT", "ninety"),
        ("PODIUM_CASSANDRA_PORT", "70000"),
        ("PODIUM_CASSANDRA_KEYSPACE", "bad-name"),
        ("PODIUM_CASSANDRA_CONSISTENCY", "MOSTLY"),
        ("PODIUM_CASSANDRA_SERIAL_CONSISTENCY", "QUORUM"),
        ("PODIUM_CASSANDRA_REPLICATION_FACTOR", "0"),
        ("PODIUM_CASSANDRA_MIGRATE", "perhaps"),
        ("PODIUM_MAX_RECORD_BYTES", "10"),
        ("PODIUM_WORKFLOW_RETENTION_S", "-1"),
        ("PODIUM_SEARCH_WINDOW_DAYS", "0"),
        ("PODIUM_SEARCH_MAX_SCAN", "x"),
    ],
)
def test_bad_values_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        StoreConfig.from_env({var: value})
    assert var in info.value.message and value in info.value.message


def test_cassandra_login_and_tls(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")  # as a mounted secret often ends
    c = StoreConfig.from_env(
        {
            "PODIUM_CASSANDRA_USERNAME": "podium",
            "PODIUM_CASSANDRA_PASSWORD_FILE": str(secret),
            "PODIUM_CASSANDRA_TLS_CA_FILE": "/etc/podium/cassandra-tls/ca.pem",
            "PODIUM_CASSANDRA_TLS_CERT_FILE": "/etc/podium/cassandra-tls/client.pem",
            "PODIUM_CASSANDRA_TLS_KEY_FILE": "/etc/podium/cassandra-tls/client.key",
            "PODIUM_CASSANDRA_TLS_CHECK_HOSTNAME": "false",
        }
    )
    assert (c.cassandra_username, c.cassandra_password) == ("podium", "s3cret")
    assert c.cassandra_tls_on and not c.cassandra_tls  # a CA file is enough to turn TLS on
    assert c.cassandra_tls_check_hostname is False
    assert "s3cret" not in repr(c) and "cassandra_password='***'" in repr(c)
    assert StoreConfig.from_env({"PODIUM_CASSANDRA_TLS": "yes"}).cassandra_tls_on
    plain = StoreConfig.from_env({})
    assert not plain.cassandra_tls_on and plain.cassandra_tls_check_hostname
    assert plain.cassandra_username == "" and "cassandra_password=''" in repr(plain)
    direct = StoreConfig.from_env(
        {"PODIUM_CASSANDRA_USERNAME": "u", "PODIUM_CASSANDRA_PASSWORD": "p"}
    )
    assert direct.cassandra_password == "p"


@pytest.mark.parametrize(
    ("env", "variable", "says"),
    [
        ({"PODIUM_CASSANDRA_USERNAME": "podium"}, "PODIUM_CASSANDRA_PASSWORD", "go together"),
        ({"PODIUM_CASSANDRA_PASSWORD": "p"}, "PODIUM_CASSANDRA_USERNAME", "go together"),
        (
            {"PODIUM_CASSANDRA_PASSWORD": "p", "PODIUM_CASSANDRA_PASSWORD_FILE": "/x"},
            "PODIUM_CASSANDRA_PASSWORD",
            "not both",
        ),
        (
            {"PODIUM_CASSANDRA_PASSWORD_FILE": "/nonexistent/pw"},
            "PODIUM_CASSANDRA_PASSWORD_FILE",
            "cannot be read",
        ),
        (
            {"PODIUM_CASSANDRA_TLS_CERT_FILE": "c.pem"},
            "PODIUM_CASSANDRA_TLS_KEY_FILE",
            "go together",
        ),
        (
            {"PODIUM_CASSANDRA_TLS": "off", "PODIUM_CASSANDRA_TLS_CA_FILE": "ca.pem"},
            "PODIUM_CASSANDRA_TLS",
            "unset one or the other",
        ),
        ({"PODIUM_CASSANDRA_TLS": "maybe"}, "PODIUM_CASSANDRA_TLS", "maybe"),
    ],
)
def test_bad_login_or_tls_settings_name_the_variable(
    env: dict[str, str], variable: str, says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        StoreConfig.from_env(env)
    assert info.value.data["variable"] == variable
    assert says in info.value.message


def test_unreadable_tls_files_name_the_variable(tmp_path: Path) -> None:
    from podium.store.cassandra_backend.session import store_tls_context

    config = StoreConfig(cassandra_tls_ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"PODIUM_CASSANDRA_TLS_CA_FILE=.*cannot be read"):
        store_tls_context(config)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="not usable PEM"):
        store_tls_context(StoreConfig(cassandra_tls_ca_file=str(junk)))
    assert store_tls_context(StoreConfig()) is None
