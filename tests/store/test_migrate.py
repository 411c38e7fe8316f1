"""Schema migrations: versioned, idempotent, run at open and by ``podium db migrate``."""

from __future__ import annotations

from typing import Any

import pytest

from podium.store.cassandra_backend.schema import migrations, split_statements
from podium.store.cli import migrate_main
from tests.local_cassandra import cql


def test_migration_files_are_numbered_and_idempotent() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    for m in found:
        for stmt in m.statements:
            upper = stmt.upper()
            # a creation only if absent, or a table option set (the same each time)
            assert "IF NOT EXISTS" in upper or (
                upper.startswith("ALTER TABLE ") and " WITH " in upper and " ADD " not in upper
            ), stmt


def test_split_statements_drops_comments() -> None:
    cql = (
        "-- head; comment\nCREATE TABLE a (x int PRIMARY KEY); -- tail\n\nCREATE TABLE b\n(y int);"
    )
    assert split_statements(cql) == ("CREATE TABLE a (x int PRIMARY KEY)", "CREATE TABLE b (y int)")


@pytest.mark.timeout(120)
def test_migrate_command_is_idempotent(
    cassandra_node: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in cassandra_node.store_env().items():  # the login and TLS files
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PODIUM_STORE", "redis")  # the command migrates Cassandra regardless
    args = ["--hosts", cassandra_node.host, "--port", str(cassandra_node.port),
            "--keyspace", "podium_migrate_test"]  # fmt: skip
    assert migrate_main(args) == 0
    first = capsys.readouterr().out
    assert "applied 0001" in first
    assert migrate_main(args) == 0
    assert "nothing (up to date)" in capsys.readouterr().out
    assert migrate_main([*args, "--status"]) == 0
    latest = migrations()[-1].version
    assert f"schema version {latest}" in capsys.readouterr().out
    # every table's reads stop waiting for a dead replica after 20 ms (0003)
    with cql(cassandra_node) as session:
        rows = session.execute(
            "SELECT table_name, speculative_retry FROM system_schema.tables "
            "WHERE keyspace_name = 'podium_migrate_test'"
        )
        retry = {r.table_name: r.speculative_retry for r in rows}
    assert "workflows" in retry
    assert {t: v for t, v in retry.items() if t != "schema_migrations"} == {
        t: "MIN(99p,20ms)" for t in retry if t != "schema_migrations"
    }


def test_migrate_command_reports_an_unreachable_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    from podium.launch.redis import free_port

    assert migrate_main(["--hosts", "127.0.0.1", "--port", str(free_port())]) == 1
    assert "cannot reach Cassandra" in capsys.readouterr().err


def test_migrate_command_rejects_bad_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_CASSANDRA_CONSISTENCY", "MOSTLY")
    assert migrate_main([]) == 1
    assert "PODIUM_CASSANDRA_CONSISTENCY" in capsys.readouterr().err
