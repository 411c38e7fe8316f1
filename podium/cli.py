"""The ``podium`` command line.

podium up [--demo [--keep]] [--shards N] [--queue-services N] [--deciders N] [--gateways N]
          [--sweepers N] [--store redis|cassandra] [--cassandra-hosts H] [--port P]
          [--shard-replicas N] [--store-replicas N] [--rpc-tls]
podium status [--url URL]        (the API: --url, else $PODIUM_API_URL, else
                                  $CONDUCTOR_SERVER_URL, else http://127.0.0.1:8080/api)
podium workflow start NAME [--input JSON] | get ID | terminate ID | pause ID | resume ID
                | retry ID | restart ID | search [QUERY]
podium def register FILE...
podium admin purge --before DATE [--batch N] [--name W] | requeue [TYPE] | export [-o FILE]
             | import FILE   (podium/admin_cli.py)
podium db migrate [...]
podium certs DIR [--host H ...] [--days N]
                                 (a private CA and certificates for TLS between services)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from podium import admin_cli, aio
from podium.cluster import ClusterSpec, LocalCluster
from podium.errors import PodiumError

DEFAULT_URL = "http://127.0.0.1:8080/api"
#: Where the API address comes from when --url is not given, first match wins; the second is
#: the variable the Conductor SDKs read, so one setting serves both.
URL_VARIABLES = ("PODIUM_API_URL", "CONDUCTOR_SERVER_URL")


def api_url(environ: Mapping[str, str]) -> str:
    """The API address from the environment (``URL_VARIABLES``), else ``DEFAULT_URL``."""
    for name in URL_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return value
    return DEFAULT_URL


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return n


def _port(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535)")
    return n


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    default_url = api_url(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(prog="podium", description="Podium workflow engine")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run a local cluster on this machine")
    up.add_argument("--shards", type=_positive, default=2, help="Redis queue shards (2)")
    for name in ("queue-services", "deciders", "gateways", "sweepers"):
        up.add_argument(f"--{name}", type=_positive, default=1, help=f"{name} replicas (1)")
    up.add_argument("--store", choices=["redis", "cassandra"], default="redis")
    up.add_argument(
        "--shard-replicas", type=int, choices=range(0, 4), default=0, metavar="N",
        help="replicas of each queue shard, failed over by Redis Sentinel (0)",
    )  # fmt: skip
    up.add_argument(
        "--store-replicas", type=int, choices=range(0, 4), default=0, metavar="N",
        help="replicas of the Redis store, failed over by Redis Sentinel (0)",
    )  # fmt: skip
    up.add_argument("--cassandra-hosts", default="", help="use this Cassandra cluster")
    up.add_argument("--port", type=_port, default=8080, help="API port of the first gateway")
    up.add_argument("--demo", action="store_true", help="run the demo, print its result, stop")
    up.add_argument(
        "--keep",
        action="store_true",
        help="with --demo: keep the cluster running afterwards (to look at it in the UI)",
    )
    up.add_argument(
        "--rpc-tls",
        action="store_true",
        help="mutual TLS between the services too (their RPC always needs the cluster's secret)",
    )

    certs = sub.add_parser(
        "certs", help="write a private CA and certificates for TLS between services"
    )
    certs.add_argument("dir", type=Path, help="the folder to write (existing files are replaced)")
    certs.add_argument(
        "--host",
        action="append",
        default=[],
        help="a name or address the server certificate names (repeat; default: loopback)",
    )
    certs.add_argument("--days", type=_positive, default=365, help="validity in days (365)")

    status = sub.add_parser("status", help="queue depths and running workflows")
    status.add_argument("--url", default=default_url)

    # --url may follow the action (`podium workflow get ID --url ...`)
    url = argparse.ArgumentParser(add_help=False)
    url.add_argument(
        "--url",
        default=default_url,
        help=f"the API (default: ${URL_VARIABLES[0]}, ${URL_VARIABLES[1]} or {DEFAULT_URL})",
    )

    wf = sub.add_parser("workflow", help="start, inspect and control workflows")
    wf_sub = wf.add_subparsers(dest="action", required=True)
    start = wf_sub.add_parser("start", parents=[url])
    start.add_argument("name")
    start.add_argument("--input", default="{}", help="workflow input as JSON")
    start.add_argument("--version", type=int)
    for action in ("get", "terminate", "pause", "resume", "retry", "restart"):
        wf_sub.add_parser(action, parents=[url]).add_argument("workflow_id")
    search = wf_sub.add_parser("search", parents=[url])
    search.add_argument("query", nargs="?", default="")

    d = sub.add_parser("def", help="register definitions")
    d_sub = d.add_subparsers(dest="action", required=True)
    d_sub.add_parser("register", parents=[url]).add_argument("files", nargs="+", type=Path)

    admin_cli.add_parser(sub, url, os.environ if environ is None else environ, _positive)

    db = sub.add_parser("db", help="persistence administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = db_sub.add_parser(
        "migrate", help="create or upgrade the Cassandra schema", add_help=False
    )
    migrate.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def up_spec(args: argparse.Namespace, demo_port: int | None = None) -> ClusterSpec:
    """The cluster ``podium up`` starts. HTTP tasks may call no private address but the
    demo's own endpoint (``127.0.0.1:demo_port``, with ``--demo``): never the API, which is
    unauthenticated on loopback, nor the other services."""
    return ClusterSpec(
        shards=args.shards,
        queue_services=args.queue_services,
        deciders=args.deciders,
        gateways=args.gateways,
        sweepers=args.sweepers,
        store=args.store,
        cassandra_hosts=args.cassandra_hosts,
        cassandra_secure=True,
        gateway_port=args.port,
        allow_http_hosts=f"127.0.0.1:{demo_port}" if demo_port else "",
        supervise=True,
        shard_replicas=args.shard_replicas,
        store_replicas=args.store_replicas,
        rpc_tls=args.rpc_tls,
    )


async def _up(args: argparse.Namespace) -> int:
    from podium.demo import quote_service

    if not args.demo:
        return await _run_up(args, None)
    # The demo's endpoint listens before the cluster starts: no service can take its port,
    # which is the one port of loopback that HTTP tasks may call.
    async with quote_service() as quote_url:
        return await _run_up(args, quote_url)


async def _keep_after_demo(args: argparse.Namespace, stop: asyncio.Event) -> bool:
    """--keep, or (when a person is at the terminal) their answer; never waits otherwise."""
    if args.keep:
        return True
    if not sys.stdin.isatty():
        return False
    # Read the answer from the event loop (not a thread), so that Ctrl-C still stops at once.
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str | bool] = loop.create_future()

    def readable() -> None:
        if not answer.done():
            answer.set_result(sys.stdin.readline())

    print("podium: keep the cluster running to look at it in the UI? [y/N] ", end="", flush=True)
    loop.add_reader(sys.stdin.fileno(), readable)
    stopped: asyncio.Future[str | bool] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([answer, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        loop.remove_reader(sys.stdin.fileno())
        stopped.cancel()
    return answer.done() and str(answer.result()).strip().lower() in ("y", "yes")


async def _run_up(args: argparse.Namespace, quote_url: str | None) -> int:
    from podium.demo import execution_link, run_demo, ui_address

    started = time.monotonic()
    demo_port = urlsplit(quote_url).port if quote_url else None
    cluster = LocalCluster(
        up_spec(args, demo_port),
        progress=lambda line: print(f"  started {line}", flush=True),
        events=lambda line: print(line, flush=True),
    )
    print("podium: starting a local cluster", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await cluster.start()
        api = cluster.gateway_urls[0]
        print(f"podium: up in {time.monotonic() - started:.1f}s; logs in {cluster.work_dir}")
        print(f"podium: API at {api}  (OpenAPI: {api}/openapi.json)")
        print(f"podium: UI at {ui_address(api)}", flush=True)
        if quote_url is not None:
            wf = await run_demo(api, quote_url)
            status = 0 if wf["status"] == "COMPLETED" else 1
            if not await _keep_after_demo(args, stop):
                return status
            print(f"podium: the demo's execution: {execution_link(api, wf['workflowId'])}")
        print("podium: running; Ctrl-C stops everything", flush=True)
        await stop.wait()
        return 0
    finally:
        print("podium: stopping", flush=True)
        await cluster.stop()
        print("podium: stopped", flush=True)


def _call(method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        resp = httpx.request(method, url, timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        print(f"podium: cannot reach {url}: {exc} (is `podium up` running?)", file=sys.stderr)
        raise SystemExit(1) from None
    if resp.status_code >= 400:
        try:
            message = resp.json().get("message", resp.text)
        except ValueError:
            message = resp.text
        print(f"podium: {resp.status_code}: {message}", file=sys.stderr)
        raise SystemExit(1)
    return resp


def _show(resp: httpx.Response) -> None:
    if not resp.content:
        print("ok")
    elif resp.headers.get("content-type", "").startswith("application/json"):
        print(json.dumps(resp.json(), indent=2))
    else:
        print(resp.text)


def _workflow(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    if args.action == "start":
        try:
            body = json.loads(args.input)
        except ValueError as exc:
            raise SystemExit(f"podium: --input is not JSON: {exc}") from None
        params = {"version": args.version} if args.version else {}
        _show(_call("POST", f"{base}/workflow/{args.name}", json=body, params=params))
    elif args.action == "get":
        _show(_call("GET", f"{base}/workflow/{args.workflow_id}"))
    elif args.action == "terminate":
        _show(_call("DELETE", f"{base}/workflow/{args.workflow_id}"))
    elif args.action in ("pause", "resume"):
        _show(_call("PUT", f"{base}/workflow/{args.workflow_id}/{args.action}"))
    elif args.action in ("retry", "restart"):
        _show(_call("POST", f"{base}/workflow/{args.workflow_id}/{args.action}"))
    elif args.action == "search":
        _show(_call("GET", f"{base}/workflow/search", params={"query": args.query}))
    return 0


def _register(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    for path in args.files:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"podium: cannot read {path}: {exc}") from None
        items = doc if isinstance(doc, list) else [doc]
        for item in items:
            if isinstance(item, dict) and "tasks" in item:
                _call("PUT", f"{base}/metadata/workflow", json=[item])
                print(f"registered workflow {item.get('name')} v{item.get('version', 1)}")
            else:
                _call("POST", f"{base}/metadata/taskdefs", json=[item])
                name = item.get("name") if isinstance(item, dict) else item
                print(f"registered task {name}")
    return 0


def _status(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    health = _call("GET", f"{base.removesuffix('/api')}/health").json()
    queues = _call("GET", f"{base}/tasks/queue/all").json()
    running = _call(
        "GET", f"{base}/workflow/search", params={"query": "status IN (RUNNING)", "size": 0}
    ).json()
    print(f"gateway: {health.get('status', health)} at {base}")
    _print_processes(base)
    print(f"running workflows: {running.get('totalHits', 0)}")
    print("queue depths:" if queues else "queue depths: (no queues yet)")
    for name, size in sorted(queues.items()):
        print(f"  {name:<40} {size}")
    return 0


def _print_processes(base: str) -> None:
    """The process table of the `podium up` serving ``base``, when it runs on this machine."""
    from urllib.parse import urlsplit

    from podium.supervisor import read_state

    parts = urlsplit(base)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.port is None:
        return
    state = read_state(parts.port)
    if state is None:
        return
    print(f"processes (podium up, pid {state['supervisorPid']}):")
    print(f"  {'name':<20} {'pid':>8}  {'state':<10} {'restarts':>8}  last exit")
    for p in state["processes"]:
        print(
            f"  {p['name']:<20} {p['pid'] or '-':>8}  {p['state']:<10} {p['restarts']:>8}"
            f"  {p['lastExit'] or '-'}"
        )


def _certs(args: argparse.Namespace) -> int:
    """``podium certs DIR``: the files for ``PODIUM_RPC_TLS_*`` (and TLS to the stores)."""
    from podium.devcerts import DEFAULT_HOSTS, make_certs

    paths = make_certs(args.dir, hosts=args.host or DEFAULT_HOSTS, days=args.days)
    print(f"wrote a private CA and certificates to {args.dir} (keep ca.key offline)")
    print(f"PODIUM_RPC_TLS_CERT={paths.server_cert}")
    print(f"PODIUM_RPC_TLS_KEY={paths.server_key}")
    print(f"PODIUM_RPC_TLS_CA={paths.ca}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:2] == ["db", "migrate"]:
        # Everything after `db migrate` belongs to the migration tool, --help included.
        from podium.store.cli import migrate_main

        return migrate_main(raw[2:])
    args = build_parser().parse_args(raw)
    try:
        if args.command == "up":
            return aio.run(_up(args))
        if args.command == "status":
            return _status(args)
        if args.command == "workflow":
            return _workflow(args)
        if args.command == "def":
            return _register(args)
        if args.command == "admin":
            return admin_cli.run(args)
        if args.command == "certs":
            return _certs(args)
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
