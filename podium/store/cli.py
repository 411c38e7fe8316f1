"""``podium db migrate``: create or upgrade the Cassandra schema, then exit."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from podium.errors import PodiumError
from podium.store.config import StoreConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="podium db migrate",
        description="Create the keyspace and apply the missing schema migrations (idempotent). "
        "Settings come from PODIUM_CASSANDRA_*; options override them.",
    )
    p.add_argument("--hosts", help="comma-separated contact points")
    p.add_argument("--port", type=int, help="CQL port")
    p.add_argument("--keyspace")
    p.add_argument("--replication-factor", type=int, dest="replication_factor")
    p.add_argument("--local-dc", dest="local_dc")
    p.add_argument(
        "--status", action="store_true", help="print the applied schema version without migrating"
    )
    return p


def migrate_main(argv: list[str] | None = None) -> int:
    """Run the migrations; 0 on success, 1 if Cassandra refused or could not be reached."""
    opts = _parser().parse_args(argv)
    try:
        config = StoreConfig.from_env()
        overrides: dict[str, object] = {"backend": "cassandra"}
        if opts.hosts:
            overrides["cassandra_hosts"] = tuple(h.strip() for h in opts.hosts.split(","))
        for name, field in (
            ("port", "cassandra_port"),
            ("keyspace", "cassandra_keyspace"),
            ("replication_factor", "cassandra_replication_factor"),
            ("local_dc", "cassandra_local_dc"),
        ):
            if getattr(opts, name) is not None:
                overrides[field] = getattr(opts, name)
        config = dataclasses.replace(config, **overrides)  # type: ignore[arg-type]
        return _run(config, status_only=opts.status)
    except PodiumError as exc:
        print(f"podium db migrate: {exc.message}", file=sys.stderr)
        return 1


def _run(config: StoreConfig, status_only: bool) -> int:
    from cassandra import DriverException

    from podium.store.cassandra_backend.schema import (
        connected,
        current_version,
        migrate_cluster,
        migrations,
    )

    try:
        if status_only:
            with connected(config) as session:
                session.set_keyspace(config.cassandra_keyspace)
                print(f"{config.cassandra_keyspace}: schema version {current_version(session)}")
            return 0
        applied = migrate_cluster(config)
        latest = max((m.version for m in migrations()), default=0)
        done = ", ".join(f"{v:04d}" for v in applied) or "nothing (up to date)"
        print(f"{config.cassandra_keyspace}: applied {done}; schema version {latest}")
        return 0
    except DriverException as exc:
        print(f"podium db migrate: Cassandra refused: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(migrate_main())
