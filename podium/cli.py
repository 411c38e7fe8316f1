"""The ``podium`` command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence

from podium import aio
from podium.cluster import ClusterSpec, LocalCluster
from podium.errors import PodiumError


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podium", description="Podium workflow engine")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run a local cluster on this machine")
    up.add_argument("--shards", type=_positive, default=2, help="Redis queue shards (2)")
    up.add_argument(
        "--queue-services", type=_positive, default=1, help="queue-service replicas (1)"
    )
    up.add_argument("--demo", action="store_true", help="run the demo, print its result, stop")

    db = sub.add_parser("db", help="persistence administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = db_sub.add_parser("migrate", help="create or upgrade the Cassandra schema")
    migrate.add_argument("args", nargs=argparse.REMAINDER)
    return parser


async def _up(args: argparse.Namespace) -> int:
    from podium.demo import run_queue_demo

    started = time.monotonic()
    cluster = LocalCluster(
        ClusterSpec(shards=args.shards, queue_services=args.queue_services),
        progress=lambda line: print(f"  started {line}", flush=True),
    )
    print("podium: starting a local cluster", flush=True)
    await cluster.start()
    print(f"podium: up in {time.monotonic() - started:.1f}s; files in {cluster.work_dir}")
    print(f"podium: queue service at {', '.join(cluster.queue_addresses)}", flush=True)
    try:
        if args.demo:
            figures = await run_queue_demo(cluster.queue_addresses)
            return 0 if figures["ok"] else 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print("podium: running; Ctrl-C stops everything", flush=True)
        await stop.wait()
        return 0
    finally:
        print("podium: stopping", flush=True)
        await cluster.stop()
        print("podium: stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "up":
            return aio.run(_up(args))
        if args.command == "db":
            from podium.store.cli import migrate_main

            return migrate_main(list(args.args))
    except PodiumError as exc:
        print(f"podium: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
