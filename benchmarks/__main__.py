"""The benchmark suite: ``python -m benchmarks run [--quick] [--suite NAME ...]``.

Each suite runs in its own process and writes its report (markdown, JSON, charts) to the
results folder; the runner then writes ``report.md`` there: every suite's report, preceded by
a summary of Podium against the baselines measured in the same run (raw Redis, arq, Celery
and the Java Conductor server), as ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, machine, machine_block, markdown_table

#: name -> (module, quick args, full args, report file)
SUITES: dict[str, tuple[str, list[str], list[str], str]] = {
    "queue": ("benchmarks.queue_throughput", ["--quick"], [], "queue_throughput.md"),
    "peers": ("benchmarks.peers.task_queues", ["--quick"], [], "peers_task_queues.md"),
    "store": ("benchmarks.store_throughput", ["--quick"], [], "store_throughput.md"),
    "decide": (
        "benchmarks.decide_throughput",
        ["--quick", "--backends", "redis"],
        [],
        "decide_throughput.md",
    ),
    "timers": ("benchmarks.timer_latency", ["--quick"], [], "timer_latency.md"),
    "workflow": (
        "benchmarks.workflow_throughput",
        ["--quick", "--backends", "redis"],
        ["--workers", "http,sdk"],
        "workflow_throughput.md",
    ),
    "conductor": (
        "benchmarks.workflow_driver",
        ["--conductor", "--quick"],
        ["--conductor"],
        "workflow_conductor.md",
    ),
}


def run_suite(name: str, quick: bool, out: Path, timeout_s: float) -> dict[str, Any]:
    module, quick_args, full_args, _ = SUITES[name]
    args = [sys.executable, "-m", module, *(quick_args if quick else full_args)]
    if "--out" not in args:
        args += ["--out", str(out)]
    started = time.monotonic()
    print(f"== {name}: {' '.join(args[2:])}", flush=True)
    try:
        done = subprocess.run(args, timeout=timeout_s, check=False)
        code = done.returncode
    except subprocess.TimeoutExpired:
        code = -1
    return {"suite": name, "seconds": time.monotonic() - started, "exit": code}


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summary(out: Path) -> list[list[object]]:
    """Podium against the baselines, from the JSON the suites wrote in this run."""
    rows: list[list[object]] = []
    queue = _load(out / "queue_throughput.json")
    if queue:
        for r in queue["results"]:
            if r["path"] == "service" and r["shards"] == 1:
                direct = next(
                    x
                    for x in queue["results"]
                    if x["path"] == "direct" and x["mode"] == r["mode"] and x["shards"] == 1
                )
                rows.append(
                    [
                        f"queue {r['mode']} msgs/s (1 shard)",
                        r["msgs_per_s"],
                        "same Lua scripts straight to Redis",
                        direct["msgs_per_s"],
                        r["msgs_per_s"] / direct["msgs_per_s"],
                    ]
                )
    peers = _load(out / "peers_task_queues.json")
    if queue and peers:
        single = next(
            r
            for r in queue["results"]
            if r["path"] == "service" and r["mode"] == "single" and r["shards"] == 1
        )
        for p in peers:
            rows.append(
                [
                    f"queue single msgs/s vs {p['system']} ({p['setup']}) jobs/s",
                    single["msgs_per_s"],
                    f"{p['system']} {p['setup']}",
                    p["jobs_per_s"],
                    single["msgs_per_s"] / p["jobs_per_s"] if p["jobs_per_s"] else 0.0,
                ]
            )
    podium = _load(out / "workflow_throughput.json")
    conductor = _load(out / "workflow_conductor.json")
    if podium and conductor:
        for kind in ("http", "sdk"):
            ours = [
                r
                for r in podium
                if r["worker_kind"] == kind
                and r["load"] == "saturation"
                and r["backend"] == "redis"
            ]
            theirs = [
                r
                for r in conductor
                if r.get("worker_kind") == kind
                and "error" not in r
                and r.get("offered_rate") is None
            ]
            if ours and theirs:
                a, b = ours[0]["workflows_per_s"], theirs[0]["workflows_per_s"]
                rows.append(
                    [
                        f"3-task workflows/s, {kind} workers",
                        a,
                        "Java Conductor server (Redis)",
                        b,
                        a / b if b else 0.0,
                    ]
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run suites and write the combined report")
    run.add_argument("--quick", action="store_true", help="short runs (about 5 minutes)")
    run.add_argument(
        "--suite", action="append", choices=sorted(SUITES), help="run only these (repeatable)"
    )
    run.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = args.suite or list(SUITES)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [run_suite(n, args.quick, args.out, 600 if args.quick else 1800) for n in names]
    parts = [
        f"# Podium benchmarks ({'quick' if args.quick else 'full'} run)\n",
        machine_block(machine()) + "\n",
        "## Podium against the baselines of this run\n",
        markdown_table(
            ["figure", "Podium", "baseline", "baseline figure", "ratio"], summary(args.out)
        )
        + "\n",
        "## Suites\n",
        markdown_table(
            ["suite", "seconds", "exit"], [[r["suite"], r["seconds"], r["exit"]] for r in runs]
        )
        + "\n",
    ]
    for n in names:
        report = args.out / SUITES[n][3]
        if report.exists():
            parts.append(report.read_text().replace("\n# ", "\n## ", 1))
    (args.out / "report.md").write_text("\n".join(parts))
    print(f"report: {args.out / 'report.md'}")
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
