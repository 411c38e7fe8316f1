"""Scaling: workflow throughput as replicas and shards grow, and the Redis cost per message.

Workflows of three sequential SIMPLE tasks, started over HTTP as fast as the gateways take
them (round robin over the gateway replicas) and completed by one asyncio HTTP worker process
that polls every gateway, on a ``LocalCluster`` with the Redis store (append-only), at:

* (a) gateway and decider replicas 1, 2, 4 (one queue shard);
* (b) Redis queue shards 1, 2, 4 (one replica of each service).

For each point: completed workflows/s, CPU seconds of every process (load generator,
services, worker, each Redis), and the Redis cost from ``INFO commandstats`` (CONFIG
RESETSTAT after the warm-up, read when the last workflow is done): microseconds of command
time per task (queue shards, summed over shards) and per workflow (store), and commands per
task. With the queue suite's results in the same folder, its service msgs/s by shards is
charted too.

On a 2-core machine everything shares the two cores, so adding replicas cannot add throughput;
what the run shows is that more shards cost nothing (Redis µs per message stays flat). On a
machine with more cores, ``--replicas 1,2,4,8`` shows how far it scales.

    python -m benchmarks.scaling [--quick] [--replicas 1,2,4] [--shards 1,2,4] [-n N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.measure import (
    RESULTS,
    CommandStats,
    chart_style,
    cluster_pids,
    cluster_redis_urls,
    cpu_text,
    markdown_table,
    report_header,
)
from benchmarks.workflow_driver import PAYLOAD, SHAPE_TASKS, run_workflow_benchmark
from podium import aio
from podium.cluster import ClusterSpec, LocalCluster

SHAPE = "seq3"
ROLES = {  # process-name prefix -> role, for the CPU-by-role columns
    "gateway": "gateways",
    "decider": "deciders",
    "queue-service": "queue service",
    "sweeper": "sweeper",
    "redis-shard": "Redis shards",
    "redis-store": "Redis store",
    "worker": "worker",
    "driver": "load generator",
}


def by_role(cpu: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, seconds in cpu.items():
        role = next((r for p, r in ROLES.items() if name.startswith(p)), name)
        out[role] = out.get(role, 0.0) + seconds
    return out


async def point(replicas: int, shards: int, n: int, warmup: int) -> dict[str, Any]:
    spec = ClusterSpec(
        shards=shards, gateways=replicas, deciders=replicas, store="redis", gateway_port=0
    )
    cluster = await LocalCluster(spec, progress=lambda _: None).start()
    try:
        urls = cluster_redis_urls(cluster)
        stats = CommandStats(urls)
        r = await run_workflow_benchmark(
            cluster.gateway_urls,
            n,
            "http",
            shape=SHAPE,
            pids=cluster_pids(cluster),
            warmup=warmup,
            probes={"redis": stats},
        )
    finally:
        await cluster.stop()
    redis: dict[str, dict[str, Any]] = r["probes"]["redis"]
    tasks = max(1, r["completed"] * SHAPE_TASKS[SHAPE])
    flows = max(1, r["completed"])
    shard = {
        k: sum(v[k] for name, v in redis.items() if name.startswith("redis-shard"))
        for k in ("cpu_usec", "usec", "calls")
    }
    store = redis.get("redis-store", {"cpu_usec": 0.0, "usec": 0.0, "calls": 0.0})
    r.update(
        replicas=replicas,
        shards=shards,
        queue_cpu_usec_per_task=shard["cpu_usec"] / tasks,
        queue_usec_per_task=shard["usec"] / tasks,
        queue_calls_per_task=shard["calls"] / tasks,
        store_cpu_usec_per_workflow=store["cpu_usec"] / flows,
        store_usec_per_workflow=store["usec"] / flows,
        store_calls_per_workflow=store["calls"] / flows,
        cpu_by_role=by_role(r["cpu"]),
    )
    print(
        f"  replicas {replicas} shards {shards}: {r['workflows_per_s']:.1f} wf/s; queue Redis "
        f"CPU {r['queue_cpu_usec_per_task']:.0f} µs/task (commands "
        f"{r['queue_usec_per_task']:.0f} µs, {r['queue_calls_per_task']:.1f} calls); store "
        f"Redis CPU {r['store_cpu_usec_per_workflow']:.0f} µs/workflow",
        flush=True,
    )
    return r


def _load_queue(out: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads((out / "queue_throughput.json").read_text())
        return list(data["results"])
    except (OSError, ValueError, KeyError):
        return []


def report(rows: list[dict[str, Any]], queue: list[dict[str, Any]], out: Path, quick: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(rows, indent=1, default=str))
    base = rows[0]["workflows_per_s"] if rows else 0.0
    roles = ["load generator", "gateways", "deciders", "queue service", "worker"]
    roles += ["Redis shards", "Redis store"]
    table = [
        [
            r["series"],
            r["replicas"],
            r["shards"],
            f"{r['completed']}/{r['workflows']}",
            r["workflows_per_s"],
            r["workflows_per_s"] / base if base else float("nan"),
            r["queue_cpu_usec_per_task"],
            r["queue_usec_per_task"],
            r["queue_calls_per_task"],
            r["store_cpu_usec_per_workflow"],
            r["store_usec_per_workflow"],
            r["store_calls_per_workflow"],
            r["cpu_ms_per_workflow"],
        ]
        for r in rows
    ]
    role_table = [
        [r["series"], r["replicas"], r["shards"], *(r["cpu_by_role"].get(x, 0.0) for x in roles)]
        for r in rows
    ]
    headers = [
        "series",
        "gateway+decider replicas",
        "queue shards",
        "completed",
        "workflows/s",
        "vs first",
        "queue Redis CPU µs/task",
        "queue cmd µs/task",
        "queue cmds/task",
        "store Redis CPU µs/workflow",
        "store cmd µs/workflow",
        "store cmds/workflow",
        "CPU ms/workflow (all processes)",
    ]
    procs = [[r["series"], r["replicas"], r["shards"], cpu_text(r["cpu"])] for r in rows]
    charts = _charts(rows, queue, out)
    queue_rows = [
        [q["mode"], q["shards"], q["msgs_per_s"]]
        for q in queue
        if q["path"] == "service" and q["mode"] == "batch100"
    ]
    where = []
    for r in rows:
        if r["series"] != "shards":
            continue
        tasks = max(1, r["completed"] * SHAPE_TASKS[SHAPE])
        top: dict[str, list[float]] = {}
        for name, server in r["probes"]["redis"].items():
            if name.startswith("redis-shard"):
                for cmd, v in server["top"].items():
                    acc = top.setdefault(cmd, [0.0, 0.0])
                    acc[0] += v["calls"]
                    acc[1] += v["usec"]
        ranked = sorted(top.items(), key=lambda kv: -kv[1][1])[:4]
        where.append(
            [
                r["shards"],
                "; ".join(
                    f"{cmd} {calls / tasks:.1f} calls {usec / tasks:.0f} µs"
                    for cmd, (calls, usec) in ranked
                ),
            ]
        )
    where_part = (
        "\nWhere the queue shards' command time goes, per SIMPLE task (commandstats, summed "
        "over shards; the queue's Lua scripts are the EVALSHA calls):\n\n"
        + markdown_table(["shards", "top commands per task"], where)
        + "\n"
        if where
        else ""
    )
    queue_part = (
        "\n## Queue service by shards (from the queue suite of this run)\n\n"
        + markdown_table(["mode", "shards", "service msgs/s"], queue_rows)
        + "\n"
        if queue_rows
        else ""
    )
    path = out / "scaling.md"
    path.write_text(
        report_header(
            "Scaling: replicas and shards",
            quick,
            "store Redis append-only (appendfsync everysec); queue shards persistence off",
            PAYLOAD,
            [
                "workload: 3 sequential SIMPLE tasks at saturation (16 starts in flight, round "
                "robin over the gateways); one asyncio HTTP worker process polling every "
                "gateway (2 pollers per type per gateway, batch 10)",
                "one queue service and one sweeper at every point",
                "Redis cost, from after the warm-up to the last workflow done; per task = queue "
                "shards summed / SIMPLE tasks completed, per workflow = store / workflows "
                "completed. Redis CPU = INFO cpu (user+sys) of the redis-server process; cmd "
                "µs and cmds = INFO commandstats summed over commands (CONFIG RESETSTAT first). "
                "Commands run inside a Lua script count on their own and again inside EVALSHA, "
                "so cmd µs is an upper bound of command time",
                f"cores here: {os.cpu_count()}; every process shares them, so replicas can "
                "only add throughput where there are cores to spare",
            ],
        )
        + "\n"
        + markdown_table(headers, table)
        + "\n\nCPU seconds by role during each measured run (all replicas of a role summed):\n\n"
        + markdown_table(["series", "replicas", "shards", *roles], role_table)
        + "\n\nCPU seconds per process:\n\n"
        + markdown_table(["series", "replicas", "shards", "CPU"], procs)
        + "\n"
        + where_part
        + queue_part
        + "".join(f"\n![{c.stem}]({c.name})\n" for c in charts)
    )
    return path


def _charts(rows: list[dict[str, Any]], queue: list[dict[str, Any]], out: Path) -> list[Path]:
    if not rows:
        return []
    chart_style()
    import matplotlib.pyplot as plt

    paths = []
    rep = sorted((r for r in rows if r["series"] == "replicas"), key=lambda r: r["replicas"])
    sh = sorted((r for r in rows if r["series"] == "shards"), key=lambda r: r["shards"])

    fig, ax = plt.subplots(figsize=(5.5, 4))
    xs = [r["replicas"] for r in rep]
    ax.plot(xs, [r["workflows_per_s"] for r in rep], marker="o", label="completed workflows/s")
    if rep:
        ideal = [rep[0]["workflows_per_s"] * x / rep[0]["replicas"] for x in xs]
        ax.plot(xs, ideal, linestyle=":", color="grey", label="linear from 1 replica")
    ax.axvline(os.cpu_count() or 1, color="tab:red", linestyle="--", label="cores here")
    _axes(ax, xs, "gateway + decider replicas (1 queue shard)", "workflows/s (3 SIMPLE tasks)")
    ax.set_title("Throughput vs replicas")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "scaling_replicas.png"))

    fig, ax = plt.subplots(figsize=(5.5, 4))
    xs = [r["shards"] for r in sh]
    ax.plot(xs, [r["workflows_per_s"] for r in sh], marker="o", label="workflows/s")
    _axes(ax, xs, "Redis queue shards (1 replica of each service)", "workflows/s (3 SIMPLE tasks)")
    ax.set_title("Throughput vs shards")
    qs = sorted(
        (q for q in queue if q["path"] == "service" and q["mode"] == "batch100"),
        key=lambda q: q["shards"],
    )
    if qs:
        right = ax.twinx()
        right.plot(
            [q["shards"] for q in qs],
            [q["msgs_per_s"] for q in qs],
            marker="s",
            color="tab:orange",
            label="queue service msgs/s,\nbatches of 100 (right)",
        )
        right.set_ylabel("queue messages/s")
        right.set_ylim(0, 1.35 * max(q["msgs_per_s"] for q in qs))
        right.legend(fontsize=8, loc="upper right")
    ax.set_ylim(0, 1.35 * max((r["workflows_per_s"] for r in sh), default=1.0))
    ax.legend(fontsize=8, loc="upper left")
    paths.append(_save(fig, out / "scaling_shards.png"))

    fig, ax = plt.subplots(figsize=(5.5, 4))
    per_task = SHAPE_TASKS[SHAPE]
    for key, label, marker in (
        ("queue_cpu_usec_per_task", "queue shards (sum): Redis CPU", "o"),
        ("queue_usec_per_task", "queue shards (sum): commandstats", "x"),
    ):
        ax.plot(xs, [r[key] for r in sh], marker=marker, label=label)
    for key, label, marker in (
        ("store_cpu_usec_per_workflow", "store: Redis CPU", "s"),
        ("store_usec_per_workflow", "store: commandstats", "+"),
    ):
        ax.plot(xs, [r[key] / per_task for r in sh], marker=marker, linestyle="--", label=label)
    _axes(ax, xs, "Redis queue shards", "Redis µs per SIMPLE task")
    ax.set_title("Redis cost per message vs shards")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "scaling_redis_cost.png"))
    return paths


def _axes(ax: Any, xs: list[int], xlabel: str, ylabel: str) -> None:
    ax.set_xticks(xs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


async def main_async(
    quick: bool, replicas: list[int], shards: list[int], n: int, out: Path
) -> Path:
    warmup = 50 if quick else 300
    rows: list[dict[str, Any]] = []
    done: dict[tuple[int, int], dict[str, Any]] = {}
    print(f"scaling, {n} workflows per point", flush=True)
    for series, points in (
        ("replicas", [(r, 1) for r in replicas]),
        ("shards", [(1, s) for s in shards]),
    ):
        for rep, sh in points:
            if (rep, sh) not in done:
                done[(rep, sh)] = await point(rep, sh, n, warmup)
            rows.append({**done[(rep, sh)], "series": series})
    path = report(rows, _load_queue(out), out, quick)
    print(path.read_text())
    return path


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 workflows per point")
    parser.add_argument("--replicas", default="1,2,4", help="gateway+decider replica counts")
    parser.add_argument("--shards", default="1,2,4", help="queue shard counts")
    parser.add_argument("-n", type=int, default=None, help="workflows per point (full: 2,000)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    n = args.n or (200 if args.quick else 2000)
    aio.run(main_async(args.quick, _ints(args.replicas), _ints(args.shards), n, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
