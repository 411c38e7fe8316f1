"""What tracing costs: the same workflow workload with tracing off and with every trace sampled.

One local cluster per mode (``LocalCluster``: one Redis queue shard, the Redis store, one
replica of each service as its own process) runs for the whole benchmark; each round drives
every cluster in turn at saturation with the workflow driver (3 sequential SIMPLE tasks
started over HTTP, completed by the asyncio HTTP worker in its own process). Modes:

* ``off``: ``OTEL_TRACES_EXPORTER=none`` (the default): no provider, no spans;
* ``file``: full sampling (``parentbased_always_on``), every span exported through the batch
  processor to a JSON-lines file per process (serialising and writing each span is part of
  the cost, as with a real exporter);
* ``otlp``: full sampling, exported with OTLP/HTTP (protobuf) to a sink in this process that
  answers 200 to everything (skipped unless the ``otlp`` extra is installed);
* ``discard``: full sampling, spans batched and then dropped (the instrumentation alone);
* ``file10``: 10 % of traces sampled (``parentbased_traceidratio``), to files;
* ``file-full``: as ``file``, with ``PODIUM_TRACE_DETAIL=full`` (RPC client and store spans
  too); the other modes have the default detail, one span per hop.

Rounds are short and alternate the order of the modes, so that drift in the machine's load
(other jobs) falls on all of them, and each round's ``off`` run is the baseline of that round.
Reported per mode: the median of the rounds' workflows/s, the median per-round throughput
loss, CPU ms per workflow (every process of the cluster, the driver and the worker) and its
increase, and the spans per workflow. Then every mode runs once more at the same fixed offered
rate (half of what ``off`` sustained): CPU per workflow and latency when not saturated.

    python -m benchmarks.tracing_overhead --quick          # 5 rounds x 200 workflows per mode
    python -m benchmarks.tracing_overhead --modes off,file,otlp --rounds 5 --workflows 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from benchmarks.measure import RESULTS, machine, machine_block, markdown_table
from benchmarks.workflow_driver import run_workflow_benchmark
from podium import aio
from podium.cluster import ClusterSpec, LocalCluster

MODES = ("off", "discard", "file", "otlp", "file10", "file-full")


def cluster_pids(cluster: LocalCluster) -> dict[str, int]:
    """The cluster's processes (services and Redis servers), whose CPU the driver reports."""
    pids = {s.name: s.proc.pid for s in cluster.services if s.proc}
    servers = [*cluster.redis, *([cluster.store_redis] if cluster.store_redis else [])]
    for i, server in enumerate(servers):
        proc = getattr(server, "_proc", None)
        if proc is not None:
            pids[f"redis-{i}"] = proc.pid
    return pids


def mode_env(mode: str, spans_dir: Path, sink_port: int) -> dict[str, str]:
    if mode == "off":
        return {"OTEL_TRACES_EXPORTER": "none"}
    env = {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}
    if mode == "discard":
        return {**env, "OTEL_TRACES_EXPORTER": "discard"}
    if mode == "file10":
        env = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    if mode == "file-full":
        env = {**env, "PODIUM_TRACE_DETAIL": "full"}
    if mode in ("file", "file10", "file-full"):
        return {
            **env,
            "OTEL_TRACES_EXPORTER": "file",
            "PODIUM_TRACE_FILE": str(spans_dir / "{service}-{pid}.jsonl"),
        }
    return {
        **env,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
    }


@contextlib.asynccontextmanager
async def otlp_sink() -> AsyncIterator[dict[str, int]]:
    """An HTTP server answering 200 to every request (an OTLP collector that keeps nothing).

    Yields ``{"port": ..., "bytes": ...}``; ``bytes`` counts the request bodies received.
    """
    sink = {"port": 0, "bytes": 0}

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                sink["bytes"] += len(await reader.readexactly(length))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    sink["port"] = int(server.sockets[0].getsockname()[1])
    try:
        yield sink
    finally:
        server.close()


@contextlib.asynccontextmanager
async def clusters(
    modes: list[str], sink: dict[str, int]
) -> AsyncIterator[dict[str, tuple[LocalCluster, Path]]]:
    """One running cluster per mode (each with its own Redis servers), stopped at the end."""
    running: dict[str, tuple[LocalCluster, Path]] = {}
    try:
        for mode in modes:
            spans_dir = Path(tempfile.mkdtemp(prefix=f"podium-spans-{mode}-"))
            spec = ClusterSpec(
                shards=1, gateway_port=0, extra_env=mode_env(mode, spans_dir, sink["port"])
            )
            running[mode] = (await LocalCluster(spec, progress=lambda _: None).start(), spans_dir)
        yield running
    finally:
        for cluster, _ in running.values():
            await cluster.stop()


def count_spans(spans_dir: Path) -> int:
    """Spans written to the directory (then removed with it)."""
    spans = 0
    for path in spans_dir.glob("*.jsonl"):
        with path.open("rb") as f:
            spans += sum(1 for _ in f)
        path.unlink()
    spans_dir.rmdir()
    return spans


def summarize(
    runs: list[dict[str, Any]], modes: list[str], spans: dict[str, int], total: int
) -> list[list[object]]:
    """One row per mode: medians over the rounds, and the loss against ``off`` in each round.

    The machine's load moves a lot between runs, so each round's ``off`` run is the baseline of
    that round's other runs, and the median of those per-round losses is reported.
    """
    base = {r["round"]: r for r in runs if r["mode"] == "off"}
    rows: list[list[object]] = []
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode]
        losses = [
            100 * (1 - r["workflows_per_s"] / base[r["round"]]["workflows_per_s"]) for r in mine
        ]
        extra = [
            100 * (r["cpu_ms_per_workflow"] / base[r["round"]]["cpu_ms_per_workflow"] - 1)
            for r in mine
        ]
        rows.append(
            [
                mode,
                statistics.median(r["workflows_per_s"] for r in mine),
                ", ".join(f"{r['workflows_per_s']:.1f}" for r in mine),
                statistics.median(losses),
                statistics.median(r["cpu_ms_per_workflow"] for r in mine),
                statistics.median(extra),
                spans[mode] / total,
            ]
        )
    return rows


async def main_async(modes: list[str], rounds: int, workflows: int, warmup: int, out: Path) -> str:
    runs: list[dict[str, Any]] = []
    steady: list[dict[str, Any]] = []
    async with otlp_sink() as sink, clusters(modes, sink) as running:
        for i in range(rounds):
            order = modes if i % 2 == 0 else list(reversed(modes))
            for mode in order:
                cluster, _ = running[mode]
                received = sink["bytes"]
                run = await run_workflow_benchmark(
                    cluster.gateway_urls[0],
                    workflows,
                    "http",
                    pids=cluster_pids(cluster),
                    warmup=warmup,
                )
                run.update(mode=mode, round=i, otlp_bytes=sink["bytes"] - received)
                runs.append(run)
                print(
                    f"round {i + 1} {mode}: {run['workflows_per_s']:.1f} workflows/s, "
                    f"{run['cpu_ms_per_workflow']:.1f} CPU ms/workflow, "
                    f"{run['otlp_bytes']} OTLP bytes",
                    flush=True,
                )
        # The same offered rate for every mode (half of what `off` sustained): what tracing
        # costs in CPU and latency when the cluster is not saturated.
        rate = max(
            1.0, statistics.median(r["workflows_per_s"] for r in runs if r["mode"] == "off") / 2
        )
        for mode in modes:
            cluster, _ = running[mode]
            run = await run_workflow_benchmark(
                cluster.gateway_urls[0],
                workflows,
                "http",
                offered_rate=rate,
                pids=cluster_pids(cluster),
                warmup=0,
            )
            run.update(mode=mode, round="steady")
            steady.append(run)
            print(
                f"{rate:.0f}/s offered, {mode}: {run['cpu_ms_per_workflow']:.1f} CPU ms/workflow, "
                f"p50 {run['latency_ms']['p50']} ms",
                flush=True,
            )
    spans = {mode: count_spans(spans_dir) for mode, (_, spans_dir) in running.items()}
    # Every workflow each cluster ran (warm-ups, measured and steady), plus its driver's reads.
    total = rounds * (workflows + warmup) + workflows
    headers = [
        "tracing",
        "workflows/s (median)",
        "each round",
        "throughput loss % (median of rounds)",
        "CPU ms/workflow",
        "CPU increase % (median of rounds)",
        "spans/workflow",
    ]
    base = next(r for r in steady if r["mode"] == "off")
    steady_rows = [
        [
            r["mode"],
            r["workflows_per_s"],
            r["cpu_ms_per_workflow"],
            100 * (r["cpu_ms_per_workflow"] / base["cpu_ms_per_workflow"] - 1),
            r["latency_ms"]["p50"],
            r["latency_ms"]["p99"],
        ]
        for r in steady
    ]
    text = (
        f"# Tracing overhead\n\n{machine_block(machine())}\n"
        f"- load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n"
        f"- {rounds} rounds x {workflows} workflows (+{warmup} warm-up) per mode, 3 sequential "
        "SIMPLE tasks each, at saturation; one cluster per mode (one replica of each service, "
        "Redis store and queue), driven in turn\n"
        "- `discard`: full sampling, spans batched then dropped (the instrumentation alone); "
        "`file`: full sampling, JSON lines per process; `otlp`: full sampling, OTLP/HTTP "
        "protobuf to a local sink; `file10`: `parentbased_traceidratio` 0.1 to a file; "
        "`file-full`: as `file` with `PODIUM_TRACE_DETAIL=full` (RPC client and store spans "
        "too; the other modes make one span per hop)\n"
        "- CPU: every process of the cluster, the driver and the worker; spans/workflow count "
        "every exported span (warm-up, idle polls and the driver's reads included)\n\n"
        "## At saturation\n\n"
        + markdown_table(headers, summarize(runs, modes, spans, total))
        + f"\n\n## At a fixed offered rate ({rate:.0f} workflows/s, half of `off`'s)\n\n"
        + markdown_table(
            [
                "tracing",
                "workflows/s",
                "CPU ms/workflow",
                "CPU increase %",
                "start→COMPLETED p50 ms",
                "p99 ms",
            ],
            steady_rows,
        )
        + "\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "tracing_overhead.json").write_text(
        json.dumps({"saturation": runs, "steady": steady}, indent=1, default=str)
    )
    (out / "tracing_overhead.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds of 200 workflows")
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"from {','.join(MODES)}; off first"
    )
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--workflows", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or modes[0] != "off" or any(m not in MODES for m in modes):
        parser.error(f"--modes must start with off and name modes from {MODES}")
    if "otlp" in modes and importlib.util.find_spec("opentelemetry.exporter.otlp") is None:
        modes.remove("otlp")  # the otlp extra is not installed
    rounds = args.rounds or (5 if args.quick else 9)
    workflows = args.workflows or (200 if args.quick else 600)
    warmup = min(50, workflows // 5)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(aio.run(main_async(modes, rounds, workflows, warmup, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
