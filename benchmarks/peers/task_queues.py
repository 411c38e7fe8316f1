"""Job-queue peers: arq and Celery drain N no-op jobs on a local Redis, next to raw Redis.

Each row gets a fresh redis-server (persistence off). The workers start first and report ready;
then a producer process enqueues the N jobs as fast as its library allows, and the clock runs
from the first enqueue to the last job completion (taken from the workers' own clocks, see
``progress.py``). Rows:

* ``arq``, 1 and 2 worker processes (arq defaults, ``max_jobs=10``, no result kept);
* ``celery``, ``--pool=solo`` (one process) and ``--pool=prefork -c 2`` (a parent plus two
  children, Celery's usual multi-core setup), Redis broker, no result backend;
* ``raw-redis``: one Python process LPUSHes the N ids then BRPOPs them one round trip at a
  time, and the same with pipelines of 100: the floor cost of moving an id through Redis.

    python -m benchmarks.peers.task_queues [--quick] [-n N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks.measure import RESULTS, markdown_table, report_header
from benchmarks.peers import venvs
from benchmarks.peers.procs import TreeCpu, cpu_cell, exit_on_sigterm, spawn, stop
from benchmarks.peers.progress import PROGRESS_KEY, READY_KEY, read_progress
from podium.launch.redis import RedisServer

START_TIMEOUT_S = 60.0
MIN_DRAIN_RATE = 50.0  # jobs/s: give up on a row slower than this


def _row(
    system: str, setup: str, jobs: int, seconds: float, cpu: dict[str, float], **extra: Any
) -> dict[str, Any]:
    return {
        "system": system,
        "setup": setup,
        "jobs": jobs,
        "seconds": seconds,
        "jobs_per_s": jobs / seconds if seconds > 0 else 0.0,
        "cpu": cpu,
        **extra,
    }


def _wait_ready(client: redis.Redis, count: int, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while client.hlen(READY_KEY) < count:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a worker process exited during start-up (see its log)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers not ready within {START_TIMEOUT_S:.0f}s")
        time.sleep(0.05)


def _wait_drained(client: redis.Redis, n: int) -> float:
    """Block until the workers report n completions; returns the last completion time."""
    deadline = time.monotonic() + 30 + n / MIN_DRAIN_RATE
    while True:
        done, last = read_progress(list(client.hvals(PROGRESS_KEY)))  # type: ignore[arg-type]
        if done >= n:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done}/{n} jobs done before the time limit")
        time.sleep(0.02)


def _run_peer(
    system: str,
    setup: str,
    n: int,
    worker_cmds: list[list[str]],
    produce_cmd: list[str],
    logdir: Path,
) -> dict[str, Any]:
    with RedisServer() as server:
        env = venvs.peer_env({"BENCH_REDIS_URL": server.url})
        client = redis.Redis.from_url(server.url)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            for i, cmd in enumerate(worker_cmds):
                workers.append(spawn(cmd, env, logdir / f"{system}-{setup}-{i}.log"))
            _wait_ready(client, len(worker_cmds), workers)
            time.sleep(0.5)  # let pools and prefetch loops settle
            roots = {f"worker{i}": w.pid for i, w in enumerate(workers)}
            assert server._proc is not None
            roots["redis"] = server._proc.pid
            meter = TreeCpu(roots)
            meter.start()
            out = subprocess.run(
                produce_cmd,
                env=env,
                capture_output=True,
                text=True,
                timeout=30 + n / MIN_DRAIN_RATE,
                check=True,
            )
            produced = json.loads(out.stdout.strip().splitlines()[-1])
            last = _wait_drained(client, n)
            cpu = meter.stop()
            cpu["producer"] = float(produced["cpu"])
        finally:
            for w in workers:
                stop(w)
            client.close()
    return _row(
        system,
        setup,
        n,
        last - produced["first"],
        cpu,
        enqueue_s=produced["enqueued"] - produced["first"],
    )


def run_arq(n: int, procs: int, logdir: Path) -> dict[str, Any]:
    py = venvs.python_for("arq")
    mod = "benchmarks.peers.arq_peer"
    workers = [[py, "-m", mod, "worker"] for _ in range(procs)]
    row = _run_peer("arq", f"{procs} proc", n, workers, [py, "-m", mod, "produce", str(n)], logdir)
    row["version"] = venvs.installed_version("arq", "arq")
    return row


def run_celery(n: int, pool: str, logdir: Path) -> dict[str, Any]:
    py = venvs.python_for("celery")
    worker = [
        py,
        "-m",
        "celery",
        "-A",
        "benchmarks.peers.celery_peer:app",
        "worker",
        "--loglevel=WARNING",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]
    if pool == "solo":
        worker.append("--pool=solo")
    else:
        worker += ["--pool=prefork", "--concurrency=2"]
    produce = [py, "-m", "benchmarks.peers.celery_peer", "produce", str(n)]
    row = _run_peer(
        "celery", "solo" if pool == "solo" else "prefork 2", n, [worker], produce, logdir
    )
    row["version"] = venvs.installed_version("celery", "celery")
    return row


def run_raw(n: int, batch: int) -> dict[str, Any]:
    """One process: LPUSH the n ids, then BRPOP them (one round trip each, or pipelined)."""
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        assert server._proc is not None
        meter = TreeCpu({"bench": os.getpid(), "redis": server._proc.pid})
        ids = [f"job-{i}" for i in range(n)]
        try:
            client.ping()
            meter.start()
            started = time.time()
            if batch == 1:
                for job in ids:
                    client.lpush("raw", job)
                for _ in ids:
                    client.brpop(["raw"], timeout=5)
            else:
                for k in range(0, n, batch):
                    with client.pipeline(transaction=False) as pipe:
                        for job in ids[k : k + batch]:
                            pipe.lpush("raw", job)
                        pipe.execute()
                for k in range(0, n, batch):
                    with client.pipeline(transaction=False) as pipe:
                        for _ in ids[k : k + batch]:
                            pipe.brpop(["raw"], timeout=5)
                        got = pipe.execute()
                    if any(g is None for g in got):
                        raise RuntimeError("raw-redis: an id went missing")
            seconds = time.time() - started
            cpu = meter.stop()
        finally:
            client.close()
    setup = "1 op/round trip" if batch == 1 else f"pipeline {batch}"
    return _row("raw-redis", setup, n, seconds, cpu, version=f"redis-py {redis.__version__}")


def run(n: int, logdir: Path | None = None) -> list[dict[str, Any]]:
    """All rows for n jobs each: raw Redis, arq (1 and 2 procs), Celery (solo, prefork 2)."""
    own_logdir = logdir is None
    logdir = logdir or Path(tempfile.mkdtemp(prefix="podium-peers-"))
    logdir.mkdir(parents=True, exist_ok=True)
    plan: list[tuple[str, Any]] = [
        ("raw-redis 1", lambda: run_raw(n, 1)),
        ("raw-redis 100", lambda: run_raw(n, 100)),
        ("arq 1", lambda: run_arq(n, 1, logdir)),
        ("arq 2", lambda: run_arq(n, 2, logdir)),
        ("celery solo", lambda: run_celery(n, "solo", logdir)),
        ("celery prefork", lambda: run_celery(n, "prefork", logdir)),
    ]
    rows: list[dict[str, Any]] = []
    for label, step in plan:
        print(f"  {label} ...", end=" ", flush=True)
        try:
            row = step()
        except Exception as exc:  # report the failure as a row, keep going
            system, setup = label.split(" ", 1)
            row = _row(system, setup, n, 0.0, {}, error=f"{type(exc).__name__}: {exc}")
            print(f"FAILED ({row['error']}; logs in {logdir})", flush=True)
        else:
            print(f"{row['jobs_per_s']:,.0f} jobs/s", flush=True)
        rows.append(row)
    if own_logdir and all("error" not in r for r in rows):
        shutil.rmtree(logdir, ignore_errors=True)
    return rows


def write_report(
    rows: list[dict[str, Any]], out: Path, quick: bool, load_at_start: tuple[float, ...] = ()
) -> Path:
    load = " ".join(f"{x:.1f}" for x in load_at_start) or "?"
    load_end = " ".join(f"{x:.1f}" for x in os.getloadavg())
    out.mkdir(parents=True, exist_ok=True)
    base = next(
        (r["jobs_per_s"] for r in rows if r["system"] == "raw-redis" and r["jobs_per_s"]), 0.0
    )
    table = markdown_table(
        [
            "system",
            "setup",
            "version",
            "jobs",
            "seconds",
            "jobs/s",
            "vs raw 1-op",
            "enqueue s",
            "CPU s",
        ],
        [
            [
                r["system"],
                r["setup"],
                r.get("version", ""),
                r["jobs"],
                r["seconds"],
                r["jobs_per_s"],
                r["jobs_per_s"] / base if base else float("nan"),
                r.get("enqueue_s", "-"),
                r.get("error") or cpu_cell(r["cpu"]),
            ]
            for r in rows
        ],
    )
    chart = out / "peers_task_queues.png"
    _chart(rows, chart)
    (out / "peers_task_queues.json").write_text(json.dumps(rows, indent=1))
    report = out / "peers_task_queues.md"
    report.write_text(
        report_header(
            "Job-queue peers",
            quick,
            "Redis persistence off; a fresh redis-server per row; no results stored",
            "no-op jobs without arguments (arq: function name; Celery: task name)",
            [f"load average (1/5/15 min): {load} at start, {load_end} at end"],
        )
        + "\n"
        "No-op jobs enqueued by one producer process while the workers wait; seconds run from "
        "the first enqueue to the last completion. `enqueue s` is the producer's time to enqueue "
        "all jobs. CPU is per process tree (workers, Redis) during the run, producer from its own "
        "clock.\n\n"
        f"{table}\n\n![jobs/s]({chart.name})\n"
    )
    return report


def _chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    labels = [f"{r['system']}\n{r['setup']}" for r in rows]
    ax.bar(labels, [r["jobs_per_s"] for r in rows], color="tab:blue")
    ax.set_ylabel("jobs/s (log)")
    ax.set_yscale("log")
    ax.set_title(f"Draining {rows[0]['jobs'] if rows else 0:,} no-op jobs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 jobs per row")
    parser.add_argument("-n", type=int, default=None, help="jobs per row (default 20,000)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the report")
    args = parser.parse_args(argv)
    n = args.n or (5_000 if args.quick else 20_000)
    exit_on_sigterm()
    print(f"job-queue peers, {n:,} no-op jobs per row", flush=True)
    load = os.getloadavg()
    rows = run(n)
    report = write_report(rows, args.out, args.quick, load)
    print(report.read_text())
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
