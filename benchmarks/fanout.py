"""The cost of fan-out: one workflow that forks N SIMPLE children at once.

The workflow ``bench_fanout`` is a FORK_JOIN_DYNAMIC followed by a JOIN (Conductor semantics:
``dynamicForkTasksParam`` names the list of child WorkflowTasks, ``dynamicForkTasksInputParamName``
the map of reference name → child input), and both come from the workflow input: N SIMPLE
children spread over the three benchmark task types, child k with input ``{"i": k}``. One
external worker process (Podium's asyncio ``http`` worker of ``workflow_driver``: batch polls
with ``GET /tasks/poll/batch/{type}``, ``POST /tasks`` for each result) completes the children.

Per system and N: the time from the start to COMPLETED of the one workflow, the CPU seconds of
every process (the decider's, the Java server's, every Redis, the worker's, the driver's) per
child, and the ratio of each cost per child at N to that at the smallest N: about 1 when the
cost is linear in N; a ratio that grows with N (about 10 for ten times the children) means the
total grows with N².

Systems: Podium on a ``LocalCluster`` (Redis store, one queue shard, one replica of each
service, as ``workflow_throughput``) and the Java Conductor server (``peers/conductor_server``,
its own Redis), whose headline CPU is the whole JVM. A run that is not done within the time
limit is reported as not finished (the workflow is then terminated) and the larger N of that
system are skipped. If the Conductor server cannot be fetched or started, the report says why.

    python -m benchmarks.fanout [--quick] [--sizes 100,1000,10000] [--limit-s 600]
                                [--systems podium,conductor] [--batch 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.http_lite import ERRORS, Pool
from benchmarks.measure import RESULTS, cluster_pids, cpu_text, markdown_table, report_header
from benchmarks.peers.procs import TreeCpu, exit_on_sigterm, stop
from benchmarks.workflow_driver import OWNER, start_workers, task_defs
from benchmarks.workflow_worker import TASK_NAMES
from podium import aio
from podium.cluster import ClusterSpec, LocalCluster

WORKFLOW = "bench_fanout"
SYSTEMS = ("podium", "conductor")
DURABILITY = {
    "podium": "Podium: store Redis append-only (appendfsync everysec), queue shard persistence off",
    "conductor": "Conductor: its own Redis, append-only (appendfsync everysec), as Podium's store",
}
#: what a run ends with when its workflow is not done within the time limit
NOT_FINISHED = "not finished"


@dataclass(frozen=True)
class FanoutConfig:
    """What to run: the fan-out sizes, the time limit of one run, the worker's batch size, the
    unmeasured warm-up fan-outs per system (connection pools, caches, the JVM's JIT)."""

    sizes: tuple[int, ...]
    quick: bool = False
    limit_s: float = 600.0
    batch: int = 10
    warmup_n: int = 100
    warmup_runs: int = 2
    systems: tuple[str, ...] = SYSTEMS
    out: Path = RESULTS

    @classmethod
    def quick_mode(cls, **changes: Any) -> FanoutConfig:
        """100 and 1,000 children, 150 s per run: within the runner's 10 minutes per suite."""
        defaults = {"sizes": (100, 1000), "quick": True, "limit_s": 150.0, "warmup_runs": 1}
        return cls(**{**defaults, **changes})

    @classmethod
    def full_mode(cls, **changes: Any) -> FanoutConfig:
        return cls(**{"sizes": (100, 1000, 10000), **changes})


def workflow_def() -> dict[str, Any]:
    fork = {
        "name": "fanout",
        "taskReferenceName": "fanout",
        "type": "FORK_JOIN_DYNAMIC",
        "dynamicForkTasksParam": "dynamicTasks",
        "dynamicForkTasksInputParamName": "dynamicTasksInput",
        "inputParameters": {
            "dynamicTasks": "${workflow.input.tasks}",
            "dynamicTasksInput": "${workflow.input.inputs}",
        },
    }
    join = {"name": "join", "taskReferenceName": "join", "type": "JOIN"}
    return {
        "name": WORKFLOW,
        "version": 1,
        "schemaVersion": 2,
        "ownerEmail": OWNER,
        "inputParameters": ["tasks", "inputs"],
        "tasks": [fork, join],
        "timeoutSeconds": 0,
        "timeoutPolicy": "ALERT_ONLY",
    }


def child_refs(n: int) -> list[str]:
    return [f"c{i}" for i in range(n)]


def fanout_input(n: int) -> dict[str, Any]:
    """The workflow input of a fan-out of ``n``: the child WorkflowTasks and their inputs."""
    refs = child_refs(n)
    return {
        "tasks": [
            {"name": TASK_NAMES[i % len(TASK_NAMES)], "taskReferenceName": ref, "type": "SIMPLE"}
            for i, ref in enumerate(refs)
        ],
        "inputs": {ref: {"i": i} for i, ref in enumerate(refs)},
    }


async def register(client: Pool) -> None:
    for method, path, body in (
        ("POST", "/metadata/taskdefs", task_defs()),
        ("PUT", "/metadata/workflow", [workflow_def()]),
    ):
        status, raw = await client.request(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {raw[:500]!r}")


async def wait_ended(client: Pool, workflow_id: str, limit_s: float) -> str | None:
    """The workflow's status once it is no longer RUNNING; None if it still is at the limit.

    Watches the running list of the workflow name (cheap on both servers, where reading a
    workflow of 10,000 tasks is not) and confirms the end with one read of the workflow."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        status, running = await client.json("GET", f"/workflow/running/{WORKFLOW}?version=1")
        if status != 200 or not isinstance(running, list) or workflow_id not in running:
            status, flow = await client.json("GET", f"/workflow/{workflow_id}?includeTasks=false")
            if status == 200 and isinstance(flow, dict) and flow.get("status") != "RUNNING":
                return str(flow.get("status"))
        await asyncio.sleep(0.2)
    return None


async def run_fanout(client: Pool, n: int, roots: dict[str, int], limit_s: float) -> dict[str, Any]:
    """Start one fan-out of ``n`` children and wait for its end (at most ``limit_s``); the CPU
    of the process trees ``roots`` is measured from just before the start request to the end."""
    body = fanout_input(n)
    input_bytes = len(json.dumps(body))
    meter = TreeCpu(roots)
    meter.start()
    began = time.monotonic()
    status, raw = await client.request("POST", f"/workflow/{WORKFLOW}", body, timeout_s=limit_s)
    start_request_s = time.monotonic() - began
    if status != 200:
        raise RuntimeError(f"POST /workflow/{WORKFLOW}: {status} {raw[:300]!r}")
    workflow_id = raw.decode().strip().strip('"')
    ended = await wait_ended(client, workflow_id, max(0.0, limit_s - start_request_s))
    wall_s = time.monotonic() - began
    cpu = meter.stop()
    flow = await read_workflow(client, workflow_id)
    if ended is None:  # stop what is left of it; the cluster or server may be busy for a while
        with contextlib.suppress(*ERRORS):
            await client.request(
                "DELETE", f"/workflow/{workflow_id}?reason=fanout+time+limit", timeout_s=120
            )
    refs = set(child_refs(n))
    children = [t for t in flow.get("tasks", []) if t.get("referenceTaskName") in refs]
    completed = {t["referenceTaskName"] for t in children if t.get("status") == "COMPLETED"}
    seconds = wall_s
    if ended is not None and flow.get("endTime"):  # the server's own clock, as the other suites
        seconds = (flow["endTime"] - (flow.get("startTime") or flow["createTime"])) / 1000.0
    return {
        "n": n,
        "workflow_id": workflow_id,
        "result": ended or NOT_FINISHED,
        "note": str(flow.get("reasonForIncompletion") or ""),
        "children": len({t["referenceTaskName"] for t in children}),
        "children_completed": len(completed),
        "seconds": seconds,
        "wall_s": wall_s,
        "start_request_s": start_request_s,
        "input_bytes": input_bytes,
        "cpu": cpu,
    }


async def read_workflow(client: Pool, workflow_id: str) -> dict[str, Any]:
    """The workflow with its tasks (tens of MB for 10,000 children: a long time-out); {} if it
    cannot be read."""
    with contextlib.suppress(*ERRORS, ValueError):
        status, raw = await client.request(
            "GET", f"/workflow/{workflow_id}?includeTasks=true", timeout_s=300
        )
        flow = json.loads(raw) if status == 200 else None
        if isinstance(flow, dict):
            return flow
    return {}


def per_child(row: dict[str, Any]) -> None:
    """Add the costs per child of a completed run (time, the headline process's CPU, all CPU)."""
    if row.get("result") != "COMPLETED":
        return
    n = row["n"]
    cpu = row["cpu"]
    row["ms_per_child"] = 1000 * row["seconds"] / n
    row["server_cpu_s"] = cpu.get(row["server_key"], float("nan"))
    row["server_cpu_ms_per_child"] = 1000 * row["server_cpu_s"] / n
    row["total_cpu_s"] = sum(cpu.values())
    row["total_cpu_ms_per_child"] = 1000 * row["total_cpu_s"] / n


RATIOS = {
    "time_ratio": "ms_per_child",
    "server_cpu_ratio": "server_cpu_ms_per_child",
    "total_cpu_ratio": "total_cpu_ms_per_child",
}


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each cost per child over that of the smallest completed N of the same system."""
    done = sorted((r for r in rows if r.get("result") == "COMPLETED"), key=lambda r: r["n"])
    if not done:
        return
    base = done[0]
    for row in done:
        row["base_n"] = base["n"]
        for ratio, field in RATIOS.items():
            row[ratio] = row[field] / base[field] if base[field] else float("nan")


async def measure_system(
    system: str,
    url: str,
    pids: dict[str, int],
    server_key: str,
    cfg: FanoutConfig,
    notes: list[str],
) -> list[dict[str, Any]]:
    """Every fan-out size against one server at ``url``: one worker process for all runs, the
    warm-up fan-outs first (one that does not complete is told in ``notes``; the measured runs
    follow all the same). After a run that does not complete, the larger sizes are skipped."""
    client = Pool(url)
    logdir = Path(tempfile.mkdtemp(prefix="podium-fanout-"))
    lifetime = cfg.limit_s * (len(cfg.sizes) + cfg.warmup_runs) + 600.0
    rows: list[dict[str, Any]] = []
    try:
        await register(client)
        (worker,) = start_workers("http", 1, [url], logdir, lifetime, threads=cfg.batch)
        try:
            roots = {**pids, "driver": os.getpid(), "worker": worker.pid}
            for _ in range(cfg.warmup_runs):
                warm = await run_fanout(client, cfg.warmup_n, roots, cfg.limit_s)
                if warm["result"] != "COMPLETED":
                    notes.append(
                        f"{system}: the warm-up fan-out of {cfg.warmup_n} ended "
                        f"{warm['result']} after {warm['wall_s']:.0f} s with "
                        f"{warm['children_completed']}/{cfg.warmup_n} children completed "
                        f"{warm['note']}".strip()
                    )
                    print(f"  {system} warm-up: {_brief({**warm, 'system': system})}", flush=True)
            stopped_at: int | None = None
            for n in sorted(cfg.sizes):
                row: dict[str, Any]
                if stopped_at is not None:
                    row = {"n": n, "result": "skipped", "note": f"N={stopped_at} did not complete"}
                else:
                    try:
                        row = await run_fanout(client, n, roots, cfg.limit_s)
                    except Exception as exc:  # recorded in the report; larger N skipped
                        row = {"n": n, "result": "error", "note": f"{type(exc).__name__}: {exc}"}
                row.update(system=system, server_key=server_key, limit_s=cfg.limit_s)
                per_child(row)
                rows.append(row)
                print(f"  {system} N={n}: {_brief(row)}", flush=True)
                if row["result"] != "COMPLETED":
                    stopped_at = stopped_at or n
        finally:
            stop(worker)
    finally:
        client.close()
    shutil.rmtree(logdir, ignore_errors=True)
    add_ratios(rows)
    return rows


def _brief(row: dict[str, Any]) -> str:
    if row["result"] != "COMPLETED":
        done = row.get("children_completed")
        return f"{row['result']} {row.get('note', '')}" + (
            f" ({done}/{row['n']} children completed)" if done is not None else ""
        )
    return (
        f"{row['seconds']:.1f} s, {row['children_completed']}/{row['n']} children, "
        f"{row['server_key']} {row['server_cpu_ms_per_child']:.2f} ms CPU per child, "
        f"all processes {row['total_cpu_ms_per_child']:.2f} ms per child"
    )


async def measure_podium(cfg: FanoutConfig, notes: list[str]) -> list[dict[str, Any]]:
    """Podium on a local cluster: Redis store, one queue shard, one replica of each service."""
    # A dynamic fork's task keeps its children's WorkflowTasks (forkedTaskDefs, as Conductor
    # does): about 520 bytes a child, over the default 2 MiB record limit beyond ~4,000.
    record_mb = max(2, -(-max(cfg.sizes) * 1024 // (1024 * 1024)))
    if record_mb > 2:
        notes.append(f"Podium's record limit raised to {record_mb} MiB (PODIUM_MAX_RECORD_BYTES)")
    spec = ClusterSpec(
        shards=1,
        store="redis",
        gateway_port=0,
        extra_env={"PODIUM_MAX_RECORD_BYTES": str(record_mb * 1024 * 1024)},
    )
    cluster = await LocalCluster(spec, progress=lambda _: None).start()
    try:
        pids = cluster_pids(cluster)
        decider = next(name for name in pids if name.startswith("decider"))
        url = cluster.gateway_urls[0]
        return await measure_system("podium", url, pids, decider, cfg, notes)
    finally:
        await cluster.stop()


def measure_conductor(cfg: FanoutConfig, notes: list[str]) -> list[dict[str, Any]]:
    """The Java Conductor server on its own Redis; an error row (and no exception) if it cannot
    be fetched, started or run here."""
    from benchmarks.peers.conductor_server import (
        DEFAULT_VERSION,
        ConductorServer,
        ConductorUnavailable,
    )

    print(f"starting Conductor {DEFAULT_VERSION} (about a minute) ...", flush=True)
    booted = time.monotonic()
    try:
        with ConductorServer(DEFAULT_VERSION) as server:
            notes.append(
                f"Conductor: conductor-server {DEFAULT_VERSION} boot jar, -Xmx{server.heap}, "
                "Redis executions + queues, indexing off, local_only lock; up in "
                f"{time.monotonic() - booted:.0f} s (not measured); its CPU figure is the "
                "whole JVM (API, decider, queues client, system task workers)"
            )
            pids = {"conductor": server.pid or 0, "redis": server.redis_pid or 0}
            return aio.run(measure_system("conductor", server.url, pids, "conductor", cfg, notes))
    except ConductorUnavailable as exc:
        reason = f"server unavailable: {exc}"
    except Exception as exc:  # the Podium part stands; the report says what went wrong
        reason = f"{type(exc).__name__}: {exc}"
    print(f"Conductor: {reason}", flush=True)
    return [{"system": "conductor", "error": reason[:2000]}]


def _cell(row: dict[str, Any], field: str) -> object:
    value = row.get(field)
    return "-" if value is None else value


def report(rows: list[dict[str, Any]], cfg: FanoutConfig, notes: list[str]) -> Path:
    """``fanout.md`` and ``fanout.json`` in ``cfg.out``."""
    runs = [r for r in rows if "error" not in r]
    table = []
    cpu_rows = []
    for r in runs:
        done = f"{r['children_completed']}/{r['n']}" if "children_completed" in r else "-"
        result = r["result"]
        if result == NOT_FINISHED:
            result = f"not finished in {r['limit_s']:.0f} s"
        elif result not in ("COMPLETED", "skipped", "error") and "wall_s" in r:
            result = f"{result} after {r['wall_s']:.0f} s: {r['note'][:200]}"
        elif result != "COMPLETED" and r.get("note"):
            result = f"{result}: {r['note'][:200]}"
        table.append(
            [
                r["system"],
                r["n"],
                result,
                done,
                _cell(r, "seconds") if r["result"] == "COMPLETED" else "-",
                _cell(r, "start_request_s"),
                _cell(r, "ms_per_child"),
                f"{r['server_key']} {r['server_cpu_s']:.1f}" if "server_cpu_s" in r else "-",
                _cell(r, "server_cpu_ms_per_child"),
                _cell(r, "total_cpu_ms_per_child"),
                *(_cell(r, ratio) for ratio in RATIOS),
            ]
        )
        if r.get("cpu"):
            cpu_rows.append([r["system"], r["n"], cpu_text(r["cpu"])])
    headers = [
        "system",
        "N",
        "result",
        "children completed",
        "start→COMPLETED s",
        "start request s",
        "ms per child",
        "decider / JVM CPU s",
        "decider / JVM CPU ms per child",
        "all processes CPU ms per child",
        "ratio: time per child",
        "ratio: decider / JVM CPU per child",
        "ratio: all CPU per child",
    ]
    unavailable = "".join(
        f"- **{r['system']}: not measured** ({r['error']})\n" for r in rows if "error" in r
    )
    systems = sorted({r["system"] for r in runs})
    sizes = sorted({r["n"] for r in runs if "input_bytes" in r})
    input_sizes = ", ".join(
        f"N={n}: {next(r['input_bytes'] for r in runs if r['n'] == n and 'input_bytes' in r):,} "
        "bytes"
        for n in sizes
    )
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "fanout.json").write_text(json.dumps(rows, indent=1, default=str))
    path = cfg.out / "fanout.md"
    path.write_text(
        report_header(
            "Fan-out: one workflow forking N SIMPLE children",
            cfg.quick,
            "; ".join(DURABILITY[s] for s in systems) or "-",
            "workflow input: N child WorkflowTasks {name, taskReferenceName, type SIMPLE} and "
            'a map reference → {"i": k} (JSON, ' + (input_sizes or "-") + "); task output {}",
            [
                f"workflow {WORKFLOW}: FORK_JOIN_DYNAMIC (dynamicForkTasksParam + "
                "dynamicForkTasksInputParamName, both from the workflow input) then a JOIN; "
                "children over the task types " + ", ".join(TASK_NAMES),
                "Podium: LocalCluster, Redis store, one queue shard, one replica of each "
                "service; its CPU figure is the decider process",
                f"one worker process (Podium's asyncio http worker: batch {cfg.batch}, 2 "
                "pollers per task type, long poll 100 ms) for all runs of a system; "
                f"{cfg.warmup_runs} unmeasured warm-up fan-out(s) of {cfg.warmup_n} first",
                f"time limit {cfg.limit_s:.0f} s per run: a run not done by then is reported "
                "as not finished, its workflow terminated, the larger N of that system skipped",
                *notes,
            ],
        )
        + "\nstart→COMPLETED = the workflow's endTime - startTime; CPU = every process from "
        "just before the start request until the workflow ended; per child = over N. "
        "ratio = the cost per child at N / the same at the smallest N of that system: about 1 "
        "when the cost is linear in N, about N / smallest N when the total grows with N².\n\n"
        + unavailable
        + ("\n" if unavailable else "")
        + markdown_table(headers, table)
        + "\n\n"
        + "".join(f"- {line}\n" for line in growth(runs))
        + "\nCPU seconds per process during each run (driver = load generator):\n\n"
        + markdown_table(["system", "N", "CPU"], cpu_rows)
        + "\n"
    )
    return path


def growth(rows: list[dict[str, Any]]) -> list[str]:
    """One line per system: how the decider's (JVM's) CPU per child grew with N."""
    lines = []
    for system in SYSTEMS:
        done = sorted(
            (r for r in rows if r["system"] == system and r.get("result") == "COMPLETED"),
            key=lambda r: r["n"],
        )
        if len(done) < 2:
            continue
        steps = ", ".join(
            f"N={r['n']}: {r['server_cpu_ratio']:.2f}x (N x{r['n'] / r['base_n']:g})"
            for r in done[1:]
        )
        lines.append(
            f"{system}: {done[0]['server_key']} CPU per child against N={done[0]['n']} "
            f"({done[0]['server_cpu_ms_per_child']:.2f} ms): {steps}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 100, 1,000; 150 s per run")
    parser.add_argument("--sizes", default=None, help="fan-out sizes, comma-separated")
    parser.add_argument("--limit-s", type=float, default=None, help="time limit of one run")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="podium and/or conductor")
    parser.add_argument("--batch", type=int, default=10, help="tasks per worker poll")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    exit_on_sigterm()
    changes: dict[str, Any] = {"batch": args.batch, "out": args.out}
    changes["systems"] = tuple(s for s in args.systems.split(",") if s)
    if unknown := set(changes["systems"]) - set(SYSTEMS):
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if args.sizes:
        changes["sizes"] = tuple(int(n) for n in args.sizes.split(","))
    if args.limit_s:
        changes["limit_s"] = args.limit_s
    cfg = (FanoutConfig.quick_mode if args.quick else FanoutConfig.full_mode)(**changes)
    rows: list[dict[str, Any]] = []
    notes = ["load average (1/5/15 min) at start: " + " ".join(f"{x:.1f}" for x in os.getloadavg())]
    if "podium" in cfg.systems:
        print(f"Podium: fan-outs of {', '.join(map(str, cfg.sizes))} ...", flush=True)
        try:
            rows += aio.run(measure_podium(cfg, notes))
        except Exception as exc:  # a failure of Podium's part: reported, and the exit code
            rows.append({"system": "podium", "error": f"{type(exc).__name__}: {exc}"[:2000]})
    if "conductor" in cfg.systems:
        rows += measure_conductor(cfg, notes)
    path = report(rows, cfg, notes)
    print(path.read_text())
    # a run not finished within the limit is a measurement; an error or a workflow that ended
    # otherwise than COMPLETED (FAILED, TIMED_OUT) is a failure of Podium's part
    podium_failed = any(
        r["system"] == "podium"
        and ("error" in r or r.get("result") not in ("COMPLETED", NOT_FINISHED, "skipped"))
        for r in rows
    )
    return 1 if podium_failed else 0


if __name__ == "__main__":
    sys.exit(main())
