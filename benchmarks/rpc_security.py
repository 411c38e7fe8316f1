"""What authenticated RPC costs: the same workflow workload with RPC open, with the shared
secret, and with the secret and mutual TLS.

One local cluster per mode (``LocalCluster``: one Redis queue shard, the Redis store, one
replica of each service as its own process) runs for the whole benchmark; each round drives
every cluster in turn at saturation with the workflow driver (``seq3``: three sequential
SIMPLE tasks started over HTTP, completed by the asyncio HTTP worker in its own process).
Every call between the gateway, the sweeper, the decider and the queue service crosses RPC.
Modes:

* ``open``: no secret, no TLS (RPC as before it could be authenticated);
* ``secret``: ``PODIUM_RPC_SECRET`` (the handshake when a connection opens; nothing per call);
* ``tls``: the secret and mutual TLS (``PODIUM_RPC_TLS_*``): every frame encrypted.

Rounds alternate the order of the modes so that drift in the machine's load falls on all of
them, and each round's ``open`` run is the baseline of that round: reported per mode are the
median workflows/s, the median per-round ratio to ``open``, and CPU ms per workflow (every
process of the cluster, the driver and the worker). Then the cost of opening a connection
(connect, handshakes and a first call) is timed in this process for each mode.

    python -m benchmarks.rpc_security --quick        # 3 rounds x 200 workflows per mode
    python -m benchmarks.rpc_security --rounds 7 --workflows 800
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from benchmarks.measure import RESULTS, cluster_pids, machine, machine_block, markdown_table
from benchmarks.workflow_driver import run_workflow_benchmark
from podium import aio
from podium.cluster import ClusterSpec, LocalCluster
from podium.devcerts import make_certs
from podium.rpc import CallContext, RpcClient, RpcServer
from podium.rpc_security import RpcSecurity, TlsFiles

MODES = ("open", "secret", "tls")


def spec_of(mode: str) -> ClusterSpec:
    return ClusterSpec(shards=1, gateway_port=0, rpc_secret=mode != "open", rpc_tls=mode == "tls")


@contextlib.asynccontextmanager
async def clusters(modes: list[str]) -> AsyncIterator[dict[str, LocalCluster]]:
    """One running cluster per mode (each with its own Redis servers), stopped at the end."""
    running: dict[str, LocalCluster] = {}
    try:
        for mode in modes:
            running[mode] = await LocalCluster(spec_of(mode), progress=lambda _: None).start()
        yield running
    finally:
        for cluster in running.values():
            await cluster.stop()


async def connection_setup_ms(security: RpcSecurity, connections: int) -> float:
    """Mean time to open a new connection and get the answer to its first call (ms)."""

    async def ping(params: Any, ctx: CallContext) -> str:
        return "pong"

    server = await RpcServer({"ping": ping}, security=security).start()
    try:
        started = time.perf_counter()
        for _ in range(connections):
            async with RpcClient([server.address], security=security) as client:
                await client.call("ping")
        return 1000 * (time.perf_counter() - started) / connections
    finally:
        await server.stop(grace_s=0.5)


def security_of(mode: str, certs_dir: Path) -> RpcSecurity:
    secret = b"0123456789abcdef" * 4
    if mode == "open":
        return RpcSecurity()
    if mode == "secret":
        return RpcSecurity(secret=secret)
    certs = make_certs(certs_dir)
    return RpcSecurity(secret=secret, tls=TlsFiles(certs.server_cert, certs.server_key, certs.ca))


def summarize(runs: list[dict[str, Any]], modes: list[str]) -> list[list[object]]:
    """One row per mode: medians over the rounds, and the ratio to ``open`` in each round."""
    base = {r["round"]: r for r in runs if r["mode"] == "open"}
    rows: list[list[object]] = []
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode]
        ratios = [r["workflows_per_s"] / base[r["round"]]["workflows_per_s"] for r in mine]
        cpu = [r["cpu_ms_per_workflow"] / base[r["round"]]["cpu_ms_per_workflow"] for r in mine]
        rows.append(
            [
                mode,
                statistics.median(r["workflows_per_s"] for r in mine),
                ", ".join(f"{r['workflows_per_s']:.1f}" for r in mine),
                statistics.median(ratios),
                statistics.median(r["cpu_ms_per_workflow"] for r in mine),
                statistics.median(cpu),
            ]
        )
    return rows


async def main_async(
    modes: list[str], rounds: int, workflows: int, warmup: int, connections: int, out: Path
) -> str:
    runs: list[dict[str, Any]] = []
    async with clusters(modes) as running:
        for i in range(rounds):
            order = modes if i % 2 == 0 else list(reversed(modes))
            for mode in order:
                cluster = running[mode]
                run = await run_workflow_benchmark(
                    cluster.gateway_urls[0],
                    workflows,
                    "http",
                    pids=cluster_pids(cluster),
                    warmup=warmup,
                )
                run.update(mode=mode, round=i)
                runs.append(run)
                print(
                    f"round {i + 1} {mode}: {run['workflows_per_s']:.1f} workflows/s, "
                    f"{run['cpu_ms_per_workflow']:.1f} CPU ms/workflow",
                    flush=True,
                )
    with tempfile.TemporaryDirectory(prefix="podium-rpc-bench-") as folder:
        setup = {
            mode: await connection_setup_ms(security_of(mode, Path(folder)), connections)
            for mode in modes
        }
    headers = [
        "RPC",
        "workflows/s (median)",
        "each round",
        "ratio to open (median of rounds)",
        "CPU ms/workflow",
        "CPU ratio to open",
    ]
    text = (
        f"# Authenticated RPC: what it costs\n\n{machine_block(machine())}\n"
        f"- load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n"
        f"- {rounds} rounds x {workflows} workflows (+{warmup} warm-up) per mode, `seq3` (3 "
        "sequential SIMPLE tasks) at saturation, the asyncio HTTP worker; one cluster per mode "
        "(one replica of each service, Redis store and queue shard), driven in turn\n"
        "- `secret`: the shared-secret handshake (HMAC-SHA256 over nonces) when a connection "
        "opens; `tls`: that and mutual TLS (ECDSA P-256 certificates from `podium certs`)\n"
        "- CPU: every process of the cluster, the driver and the worker\n\n"
        "## At saturation\n\n"
        + markdown_table(headers, summarize(runs, modes))
        + f"\n\n## Opening a connection ({connections} in a row, connect + handshakes + one "
        "call, in one process)\n\n"
        + markdown_table(
            ["RPC", "ms per connection"], [[mode, round(ms, 3)] for mode, ms in setup.items()]
        )
        + "\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "rpc_security.json").write_text(
        json.dumps({"saturation": runs, "connection_setup_ms": setup}, indent=1, default=str)
    )
    (out / "rpc_security.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 200 workflows")
    parser.add_argument("--modes", default=",".join(MODES), help=f"from {','.join(MODES)}")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--workflows", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or modes[0] != "open" or any(m not in MODES for m in modes):
        parser.error(f"--modes must start with open and name modes from {MODES}")
    rounds = args.rounds or (3 if args.quick else 7)
    workflows = args.workflows or (200 if args.quick else 800)
    warmup = min(50, workflows // 5)
    connections = 100 if args.quick else 500
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(aio.run(main_async(modes, rounds, workflows, warmup, connections, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
