"""Cassandra takes only the Podium login, over TLS, and says so clearly when refused.

The session's node (``cassandra_node``) runs PasswordAuthenticator and CassandraAuthorizer
and requires TLS with client certificates. A wrong password, a missing login, a client that
does not trust the node's CA or that presents no certificate are all refused; a service or
``podium db migrate`` started with a wrong password stops with one line naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from podium.devcerts import make_certs
from podium.errors import ConfigError, PodiumError
from podium.store import StoreConfig, open_store
from tests.local_cassandra import ROLE, cassandra_store_config
from tests.test_service_config import start

if TYPE_CHECKING:
    from podium.launch.cassandra import CassandraNode

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(180)


def _login_errors(node: CassandraNode, **driver: Any) -> list[BaseException]:
    """The errors of one connection attempt with these driver options ([] if it worked)."""
    from cassandra.cluster import Cluster, NoHostAvailable

    cluster = Cluster(
        node.contact_points, port=node.port, protocol_version=5, connect_timeout=10, **driver
    )
    try:
        cluster.connect()
        return []
    except NoHostAvailable as exc:
        return list(exc.errors.values())
    finally:
        cluster.shutdown()


def test_the_role_logs_in_and_the_default_superuser_does_not(cassandra_node: Any) -> None:
    from cassandra import AuthenticationFailed

    from podium.launch.cassandra import DEFAULT_SUPERUSER

    assert cassandra_node.login[0] == ROLE
    assert _login_errors(cassandra_node, **cassandra_node.driver_options()) == []
    # the well-known cassandra/cassandra was replaced by a password nobody keeps
    refused = _login_errors(cassandra_node, **cassandra_node.driver_options(DEFAULT_SUPERUSER))
    assert refused and all(isinstance(e, AuthenticationFailed) for e in refused)


async def test_a_wrong_password_is_a_configuration_error(cassandra_node: Any) -> None:
    config = dataclasses.replace(
        cassandra_store_config(cassandra_node, "podium_security"), cassandra_password="wrong"
    )
    with pytest.raises(ConfigError) as info:
        await open_store(config)
    assert info.value.message == (
        f"Cassandra refused user '{ROLE}' at {cassandra_node.host}:{cassandra_node.port}: "
        "bad credentials (PODIUM_CASSANDRA_USERNAME, PODIUM_CASSANDRA_PASSWORD)"
    )
    assert "wrong" not in info.value.message


async def test_no_login_is_a_configuration_error(cassandra_node: Any) -> None:
    config = dataclasses.replace(
        cassandra_store_config(cassandra_node, "podium_security"),
        cassandra_username="",
        cassandra_password="",
    )
    with pytest.raises(ConfigError, match="requires a login: set PODIUM_CASSANDRA_USERNAME"):
        await open_store(config)


async def test_a_node_whose_ca_the_client_does_not_trust_is_refused(
    cassandra_node: Any, tmp_path: Path
) -> None:
    other = make_certs(tmp_path / "other-ca")
    config = dataclasses.replace(
        cassandra_store_config(cassandra_node, "podium_security"),
        cassandra_tls_ca_file=str(other.ca),
    )
    with pytest.raises(ConfigError) as info:
        await open_store(config)
    assert "presented a certificate this client does not trust" in info.value.message
    assert "PODIUM_CASSANDRA_TLS_CA_FILE" in info.value.message


async def test_the_node_refuses_a_client_without_a_certificate_or_without_tls(
    cassandra_node: Any,
) -> None:
    config = cassandra_store_config(cassandra_node, "podium_security")
    no_client_cert = dataclasses.replace(
        config, cassandra_tls_cert_file="", cassandra_tls_key_file=""
    )
    plain = dataclasses.replace(no_client_cert, cassandra_tls=False, cassandra_tls_ca_file="")
    assert no_client_cert.cassandra_tls_on and not plain.cassandra_tls_on
    for refused in (no_client_cert, plain):
        with pytest.raises(PodiumError):
            await open_store(refused)


def _failure_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """What a process that failed said on stderr, but its log records (INFO, WARNING)."""
    assert "Traceback" not in done.stderr
    return [
        ln
        for ln in done.stderr.splitlines()
        if ln.strip() and " INFO " not in ln and " WARNING " not in ln
    ]


def test_a_decider_with_a_wrong_password_stops_with_one_line(cassandra_node: Any) -> None:
    env = {**cassandra_node.store_env(), "PODIUM_CASSANDRA_PASSWORD": "not-the-password"}
    done = start("decider.server", env)
    assert done.returncode == 2, done.stderr
    [line] = _failure_lines(done)
    assert line == (
        f"podium-decider: Cassandra refused user '{ROLE}' at "
        f"{cassandra_node.host}:{cassandra_node.port}: "
        "bad credentials (PODIUM_CASSANDRA_USERNAME, PODIUM_CASSANDRA_PASSWORD)"
    )
    assert "not-the-password" not in line


def test_migrate_with_a_wrong_password_file_stops_with_one_line(
    cassandra_node: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("not-the-password\n")
    env = {k: v for k, v in cassandra_node.store_env().items() if k != "PODIUM_CASSANDRA_PASSWORD"}
    done = subprocess.run(
        [sys.executable, "-m", "podium.store.cli"],
        cwd=ROOT,
        env={**os.environ, **env, "PODIUM_CASSANDRA_PASSWORD_FILE": str(secret)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert _failure_lines(done) == [
        f"podium db migrate: Cassandra refused user '{ROLE}' at "
        f"{cassandra_node.host}:{cassandra_node.port}: "
        "bad credentials (PODIUM_CASSANDRA_USERNAME, PODIUM_CASSANDRA_PASSWORD)"
    ]


def test_the_store_settings_reach_the_node(cassandra_node: Any) -> None:
    """What a deployment sets (``store_env``) is everything needed: login and TLS files."""
    config = StoreConfig.from_env(cassandra_node.store_env())
    assert config.cassandra_username == ROLE and config.cassandra_password
    assert config.cassandra_tls_on and config.cassandra_tls_check_hostname
    assert config.cassandra_tls_cert_file and config.cassandra_tls_key_file
    assert config.cassandra_password not in repr(config)
