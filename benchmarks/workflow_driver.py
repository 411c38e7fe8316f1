"""Workflow throughput and latency against any Conductor-compatible server URL.

Registers three SIMPLE task defs (retryCount 0, responseTimeoutSeconds 30) and a workflow of the
three in sequence (``seq3``; or ``fork10``: a FORK_JOIN of ten SIMPLE branches and a JOIN), starts
W workflows with ``POST /workflow/{name}`` (body ``{}``; bounded concurrency, or a fixed offered
rate), and lets worker *processes* poll and complete the tasks:

* ``sdk``: the official ``conductor-python`` SDK (``TaskHandler`` + ``@worker_task``,
  ``peers/sdk_worker.py``), in its own venv;
* ``http``: a plain asyncio worker (``workflow_worker.py``: batch poll + ``POST /tasks``).

A warm-up batch runs first (JIT, connection pools, workers polling). Throughput is completed
workflows over [first start request, last workflow ``endTime``]; latencies come from the
workflows read back after the run: start→COMPLETED (``endTime - startTime``) and, per SIMPLE
task, scheduled→polled (``startTime - scheduledTime``). CPU is per process tree. Completion is
watched with ``GET /workflow/running/{name}`` (or per-id status reads where that is missing).
HTTP goes through ``http_lite`` (a lean keep-alive client): httpx's async pool cost ~3 ms of
CPU per start here, which the server under test would lose on two cores.

    python -m benchmarks.workflow_driver --url http://127.0.0.1:8080/api --quick
    python -m benchmarks.workflow_driver --conductor --quick     # start the Java server first
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from benchmarks.http_lite import Pool
from benchmarks.measure import percentile
from benchmarks.peers import venvs
from benchmarks.peers.procs import TreeCpu, spawn, stop
from benchmarks.workflow_worker import TASK_NAMES

OWNER = "bench@podium.local"  # OSS 3.21 requires ownerEmail on definitions
PCTS = (50.0, 99.0, 99.9)
#: what the workflows carry (the driver starts them with this input, workers complete tasks
#: with empty output); recorded in every report
PAYLOAD = "workflow input {} (2 bytes), task output {}; no task input parameters"
SHAPE_TASKS = {"seq3": 3, "fork10": 10}  # SIMPLE tasks per workflow


class Probe(Protocol):
    """Something measured over the timed run only (after the warm-up), like ``TreeCpu``."""

    def start(self) -> None: ...

    def stop(self) -> Any: ...


def task_defs() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "retryCount": 0,
            "timeoutSeconds": 0,
            "responseTimeoutSeconds": 30,
            "timeoutPolicy": "TIME_OUT_WF",
            "ownerEmail": OWNER,
        }
        for name in TASK_NAMES
    ]


def workflow_def(shape: str) -> dict[str, Any]:
    def simple(name: str, ref: str) -> dict[str, Any]:
        return {"name": name, "taskReferenceName": ref, "type": "SIMPLE", "inputParameters": {}}

    if shape == "seq3":
        tasks = [simple(n, f"s{i}") for i, n in enumerate(TASK_NAMES)]
    elif shape == "fork10":
        refs = [f"b{i}" for i in range(10)]
        fork = {
            "name": "fork",
            "taskReferenceName": "fork",
            "type": "FORK_JOIN",
            "forkTasks": [[simple(TASK_NAMES[i % 3], r)] for i, r in enumerate(refs)],
        }
        join = {"name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": refs}
        tasks = [fork, join]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return {
        "name": f"bench_{shape}",
        "version": 1,
        "schemaVersion": 2,
        "ownerEmail": OWNER,
        "tasks": tasks,
        "timeoutSeconds": 0,
        "timeoutPolicy": "ALERT_ONLY",
    }


async def register(client: Pool, shape: str) -> str:
    wf = workflow_def(shape)
    for method, path, body in (
        ("POST", "/metadata/taskdefs", task_defs()),
        ("PUT", "/metadata/workflow", [wf]),
    ):
        status, raw = await client.request(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {raw[:500]!r}")
    return str(wf["name"])


def start_workers(
    kind: str,
    procs: int,
    urls: Sequence[str],
    logdir: Path,
    seconds: float,
    threads: int = 10,
    poll_ms: int = 10,
) -> list[subprocess.Popen[bytes]]:
    """``procs`` worker processes of ``kind`` (each serves all three task types). An http
    worker polls every URL; SDK worker process i polls URL i (round robin)."""
    if kind == "http":
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.workflow_worker",
            "--url",
            ",".join(urls),
            "--batch",
            str(threads),
            "--seconds",
            str(seconds),
        ]
        return [
            spawn(cmd, venvs.peer_env(), logdir / f"worker-{kind}-{i}.log") for i in range(procs)
        ]
    if kind != "sdk":
        raise ValueError(f"unknown worker kind {kind!r}")
    cmd = [venvs.python_for("conductor"), "-m", "benchmarks.peers.sdk_worker", str(seconds)]
    workers = []
    for i in range(procs):
        env = venvs.peer_env(
            {
                "CONDUCTOR_SERVER_URL": urls[i % len(urls)],
                "CONDUCTOR_LOG_LEVEL": "WARNING",
                "conductor.worker.all.thread_count": str(threads),
                "conductor.worker.all.poll_interval": str(poll_ms),
            }
        )
        workers.append(spawn(cmd, env, logdir / f"worker-{kind}-{i}.log"))
    return workers


async def start_workflows(
    clients: Pool | Sequence[Pool], name: str, n: int, concurrency: int, rate: float | None
) -> tuple[list[str], float, list[float]]:
    """Start n workflows (round robin over ``clients``, e.g. gateway replicas); returns (ids,
    wall time of the first request, request latencies ms)."""
    pools = [clients] if isinstance(clients, Pool) else list(clients)
    ids: list[str] = [""] * n
    lat: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    first = time.time()
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        if rate:
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
        async with sem:
            sent = time.perf_counter()
            status, body = await pools[i % len(pools)].request("POST", f"/workflow/{name}", {})
            lat.append((time.perf_counter() - sent) * 1000)
        if status != 200:
            raise RuntimeError(f"POST /workflow/{name}: {status} {body[:300]!r}")
        ids[i] = body.decode().strip().strip('"')

    await asyncio.gather(*(one(i) for i in range(n)))
    return ids, first, lat


async def wait_done(client: Pool, name: str, ids: list[str], limit_s: float) -> bool:
    """Wait until none of ``ids`` is RUNNING; False on time-out."""
    deadline = time.monotonic() + limit_s
    pending = set(ids)
    order = {wid: i for i, wid in enumerate(ids)}
    use_running_list = True
    while pending and time.monotonic() < deadline:
        if use_running_list:
            status, running = await client.json("GET", f"/workflow/running/{name}?version=1")
            if status == 200 and isinstance(running, list):
                pending &= set(running)
            else:  # the server lacks this endpoint: look the ids up oldest first
                use_running_list = False
        if not use_running_list:
            for wid in sorted(pending, key=order.__getitem__)[:32]:
                status, flow = await client.json("GET", f"/workflow/{wid}?includeTasks=false")
                if status == 200 and isinstance(flow, dict) and flow.get("status") == "RUNNING":
                    break
                pending.discard(wid)
        if pending:
            await asyncio.sleep(0.2)
    return not pending


async def fetch_all(client: Pool, ids: list[str]) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(16)

    async def one(wid: str) -> dict[str, Any]:
        async with sem:
            status, flow = await client.json("GET", f"/workflow/{wid}?includeTasks=true")
        return flow if status == 200 and isinstance(flow, dict) else {"workflowId": wid}

    return list(await asyncio.gather(*(one(w) for w in ids)))


def _pcts(values: list[float]) -> dict[str, float]:
    out = {f"p{p:g}": percentile(values, p) for p in PCTS}
    out["max"] = max(values) if values else float("nan")
    return out


def summarize(flows: list[dict[str, Any]], first: float, start_lat: list[float]) -> dict[str, Any]:
    done = [f for f in flows if f.get("status") == "COMPLETED"]
    simple = [t for f in done for t in f.get("tasks", []) if t.get("taskType") in TASK_NAMES]
    end = max((f.get("endTime") or 0) / 1000.0 for f in done) if done else first
    seconds = max(1e-9, end - first)
    latency = [float(f["endTime"] - (f.get("startTime") or f["createTime"])) for f in done]
    queue_wait = [float(t["startTime"] - t["scheduledTime"]) for t in simple if t.get("startTime")]
    statuses: dict[str, int] = {}
    for f in flows:
        statuses[str(f.get("status"))] = statuses.get(str(f.get("status")), 0) + 1
    return {
        "completed": len(done),
        "statuses": statuses,
        "seconds": seconds,
        "workflows_per_s": len(done) / seconds,
        "task_executions_per_s": len(simple) / seconds,
        "latency_ms": _pcts(latency),
        "queue_wait_ms": _pcts(queue_wait),
        "start_request_ms": _pcts(start_lat),
    }


async def run_workflow_benchmark(
    base_url: str | Sequence[str],
    workflows: int,
    worker_kind: str,
    worker_procs: int = 1,
    offered_rate: float | None = None,
    shape: str = "seq3",
    concurrency: int = 16,
    warmup: int = 100,
    pids: dict[str, int] | None = None,
    time_limit_s: float | None = None,
    threads: int = 10,
    logdir: Path | None = None,
    probes: dict[str, Probe] | None = None,
) -> dict[str, Any]:
    """Run one measurement; ``pids`` names extra processes (server, Redis) whose CPU to report.

    ``base_url`` may list several servers (gateway replicas): starts go round robin over them
    and the workers poll all of them. ``probes`` are started after the warm-up and stopped when
    the last workflow is done; what each returns is in the result under ``probes``."""
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    urls = [u.rstrip("/") for u in urls]
    limit = time_limit_s or 60.0 + workflows * SHAPE_TASKS.get(shape, 3) / 60.0
    own_logdir = logdir is None
    logdir = logdir or Path(tempfile.mkdtemp(prefix="podium-wfbench-"))
    clients = [Pool(u) for u in urls]
    client = clients[0]
    measured: dict[str, Any] = {}
    try:
        name = await register(client, shape)
        workers = start_workers(worker_kind, worker_procs, urls, logdir, limit * 3, threads)
        try:
            if warmup:
                wids, _, _ = await start_workflows(clients, name, warmup, concurrency, None)
                if not await wait_done(client, name, wids, 120.0):
                    raise TimeoutError(f"warm-up workflows not done in 120s (logs: {logdir})")
            roots = {**(pids or {}), "driver": os.getpid()}
            roots.update({f"worker{i}": w.pid for i, w in enumerate(workers)})
            meter = TreeCpu(roots)
            for probe in (probes or {}).values():
                probe.start()
            meter.start()
            ids, first, start_lat = await start_workflows(
                clients, name, workflows, concurrency, offered_rate
            )
            finished = await wait_done(client, name, ids, limit)
            cpu = meter.stop()
            measured = {k: probe.stop() for k, probe in (probes or {}).items()}
        finally:
            for w in workers:
                stop(w)
        result = summarize(await fetch_all(client, ids), first, start_lat)
    finally:
        for c in clients:
            c.close()
    if own_logdir:  # worker logs are kept only when something failed
        shutil.rmtree(logdir, ignore_errors=True)
    total_cpu = sum(cpu.values())
    result.update(
        url=",".join(urls),
        shape=shape,
        workflows=workflows,
        worker_kind=worker_kind,
        worker_procs=worker_procs,
        threads=threads,
        offered_rate=offered_rate,
        finished_in_time=finished,
        cpu=cpu,
        cpu_ms_per_workflow=1000 * total_cpu / max(1, result["completed"]),
        probes=measured,
        payload=PAYLOAD,
    )
    return result


def listener_pid(url: str) -> int | None:
    """The pid listening on the URL's TCP port (via /proc), if it can be found."""
    port = urlparse(url).port or 80
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{cols[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                return int(pid)
        except OSError:
            continue
    return None


if __name__ == "__main__":
    from benchmarks.workflow_report import main

    sys.exit(main())
