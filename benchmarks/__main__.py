"""The benchmark suite: ``python -m benchmarks run [--quick] [--suite NAME ...]``.

Each suite runs in its own process and writes its report (markdown, JSON, charts) to the
results folder; the runner then writes ``report.md`` there: every suite's report, preceded by
a summary of Podium against the baselines measured in the same run (raw Redis, arq, Celery
and the Java Conductor server), as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import RESULTS, machine, machine_block, markdown_table, versions

#: name -> (module, quick args, full args, report file); run in this order (scaling reads the
#: queue suite's results for its shards chart)
SUITES: dict[str, tuple[str, list[str], list[str], str]] = {
    "queue": ("benchmarks.queue_throughput", ["--quick"], [], "queue_throughput.md"),
    "peers": (
        "benchmarks.peers.task_queues",
        ["--quick", "-n", "3000"],
        [],
        "peers_task_queues.md",
    ),
    "store": (
        "benchmarks.store_throughput",
        ["--quick", "--backends", "redis"],
        [],
        "store_throughput.md",
    ),
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
        [],
        "workflow_throughput.md",
    ),
    "scaling": ("benchmarks.scaling", ["--quick"], [], "scaling.md"),
    "ui": ("benchmarks.ui_render", ["--quick"], [], "ui_render.md"),
    "conductor": (
        "benchmarks.workflow_driver",
        ["--conductor", "--quick", "--label", "conductor", "--latency-kinds", "http"],
        ["--conductor", "--label", "conductor", "--shape", "seq3,fork10", "--workflows", "3000"],
        "workflow_conductor.md",
    ),
    "fanout": ("benchmarks.fanout", ["--quick"], [], "fanout.md"),
    "faults": ("benchmarks.faults", ["--quick"], [], "faults.md"),
    "events": ("benchmarks.events", ["--quick"], [], "events.md"),
}


def _demote(markdown: str) -> str:
    """Every heading one level down, so a suite's report nests under the summary."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.split("\n"))


def run_suite(name: str, quick: bool, out: Path, timeout_s: float) -> dict[str, Any]:
    module, quick_args, full_args, report = SUITES[name]
    for old in (out / report, (out / report).with_suffix(".json")):  # no stale figures
        old.unlink(missing_ok=True)
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


def _first(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def summary(out: Path) -> list[list[object]]:
    """Podium against the baselines, from the JSON the suites wrote in this run."""
    rows: list[list[object]] = []
    queue = (_load(out / "queue_throughput.json") or {}).get("results", [])
    peers = [p for p in _load(out / "peers_task_queues.json") or [] if "error" not in p]
    service = {m: _first(queue, path="service", mode=m, shards=1) for m in ("single", "batch100")}
    for mode, r in service.items():
        direct = _first(queue, path="direct", mode=mode, shards=1)
        if r and direct:
            rows.append(
                [
                    f"queue push+pop+ack msgs/s, {mode} (1 shard)",
                    r["msgs_per_s"],
                    "the same Lua scripts straight to Redis",
                    direct["msgs_per_s"],
                    _ratio(r["msgs_per_s"], direct["msgs_per_s"]),
                ]
            )
    for p in peers:
        mode = "batch100" if p["system"] == "raw-redis" and "pipeline" in p["setup"] else "single"
        ours = service.get(mode)
        if ours:
            rows.append(
                [
                    f"queue msgs/s, {mode} (1 shard)",
                    ours["msgs_per_s"],
                    f"{p['system']} {p['setup']} jobs/s",
                    p["jobs_per_s"],
                    _ratio(ours["msgs_per_s"], p["jobs_per_s"]),
                ]
            )
    podium = _load(out / "workflow_throughput.json") or []
    conductor_all = _load(out / "workflow_conductor.json") or []
    conductor = [r for r in conductor_all if "error" not in r]
    for r in conductor_all:
        if "error" in r:
            rows.append(
                [
                    f"Java Conductor, {r['shape']} {r['worker_kind']}",
                    "-",
                    r["error"][:300],
                    "-",
                    "-",
                ]
            )
    for shape in ("seq3", "fork10"):
        for kind in ("http", "sdk"):
            ours_r = _first(podium, shape=shape, worker_kind=kind, backend="redis", fraction=None)
            theirs = _first(conductor, shape=shape, worker_kind=kind, offered_rate=None)
            if ours_r and theirs:
                rows.append(
                    [
                        f"{shape} workflows/s at saturation, {kind} workers",
                        ours_r["workflows_per_s"],
                        "Java Conductor server (Redis, append-only)",
                        theirs["workflows_per_s"],
                        _ratio(ours_r["workflows_per_s"], theirs["workflows_per_s"]),
                    ]
                )
    half = _first(podium, shape="seq3", worker_kind="http", backend="redis", fraction=0.5)
    their_half = next(
        (
            r
            for r in conductor
            if r["shape"] == "seq3" and r["worker_kind"] == "http" and r["offered_rate"]
        ),
        None,
    )
    if half and their_half:
        for field, label in (
            ("queue_wait_ms", "scheduled→polled"),
            ("latency_ms", "start→COMPLETED"),
        ):
            rows.append(
                [
                    f"seq3 {label} p99 ms at half load, http workers (lower is better)",
                    half[field]["p99"],
                    f"Java Conductor at {their_half['offered_rate']:g}/s",
                    their_half[field]["p99"],
                    _ratio(half[field]["p99"], their_half[field]["p99"]),
                ]
            )
    return rows


def goals(out: Path) -> tuple[list[list[object]], list[str]]:
    """The issue's goals for this machine, measured in this run, and where the time goes."""
    queue = (_load(out / "queue_throughput.json") or {}).get("results", [])
    podium = _load(out / "workflow_throughput.json") or []
    conductor = [r for r in _load(out / "workflow_conductor.json") or [] if "error" not in r]
    rows: list[list[object]] = []
    batch = _first(queue, path="service", mode="batch100", shards=1)
    direct = _first(queue, path="direct", mode="batch100", shards=1)
    if batch and direct:
        rate, ratio = batch["msgs_per_s"], _ratio(batch["msgs_per_s"], direct["msgs_per_s"])
        rows.append(["queue batched msgs/s through the service", "≥ 40,000", rate, rate >= 40000])
        rows.append(["... as a fraction of direct Redis", "≥ 0.7", ratio, ratio >= 0.7])
    sat = _first(podium, shape="seq3", worker_kind="http", backend="redis", fraction=None)
    notes: list[str] = []
    if sat:
        rate = sat["workflows_per_s"]
        rows.append(["3-task workflows/s, Redis store", "≥ 400", rate, rate >= 400])
        theirs = [
            r["workflows_per_s"]
            for r in conductor
            if r["shape"] == "seq3" and r["offered_rate"] is None
        ]
        if theirs:
            ratio = _ratio(rate, max(theirs))
            rows.append(["... vs Java Conductor (its best worker kind)", "≥ 3x", ratio, ratio >= 3])
        cpu = sat.get("cpu", {})
        done = max(1, sat["completed"])
        parts = sorted(cpu.items(), key=lambda kv: -kv[1])
        notes.append(
            "CPU per completed workflow at saturation (seq3, Redis, http worker): "
            + ", ".join(f"{k} {1000 * v / done:.1f} ms" for k, v in parts if v > 0)
            + f"; total {sat['cpu_ms_per_workflow']:.1f} ms over {sat['seconds']:.1f} s "
            f"on {os.cpu_count()} cores"
        )
        busy = [(k, v / max(1e-9, sat["seconds"])) for k, v in parts[:3]]
        notes.append(
            "busiest processes at saturation (share of one core): "
            + ", ".join(f"{k} {share:.0%}" for k, share in busy)
            + f"; all processes together {sum(cpu.values()) / max(1e-9, sat['seconds']):.2f} "
            f"of {os.cpu_count()} cores"
        )
    loads = sorted(
        (
            r
            for r in podium
            if r["shape"] == "seq3"
            and r["worker_kind"] == "http"
            and r["backend"] == "redis"
            and r["fraction"]
        ),
        key=lambda r: r["fraction"],
    )
    if loads:
        notes.append(
            "seq3 scheduled→polled p50 / p99 by offered load: "
            + ", ".join(
                f"{r['fraction']:.0%} {r['queue_wait_ms']['p50']:.0f} / "
                f"{r['queue_wait_ms']['p99']:.0f} ms"
                for r in loads
            )
        )
    half = _first(podium, shape="seq3", worker_kind="http", backend="redis", fraction=0.5)
    if half:
        p99 = half["queue_wait_ms"]["p99"]
        rows.append(["p99 scheduled→polled at half load, ms", "≤ 5", p99, p99 <= 5])
    scaling = _load(out / "scaling.json") or []
    shards = sorted((r for r in scaling if r.get("series") == "shards"), key=lambda r: r["shards"])
    if shards:
        notes.append(
            "Redis per SIMPLE task by queue shards (scaling suite): "
            + ", ".join(
                f"{r['shards']}: queue CPU {r['queue_cpu_usec_per_task']:.0f} µs, "
                f"{r['queue_calls_per_task']:.1f} commands"
                for r in shards
            )
        )
    return [[g, t, m, "met" if ok else "short"] for g, t, m, ok in rows], notes


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
    names = [n for n in SUITES if n in names]  # the order of SUITES
    args.out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    runs = [run_suite(n, args.quick, args.out, 600 if args.quick else 1800) for n in names]
    total = time.monotonic() - began
    goal_rows, notes = goals(args.out)
    parts = [
        f"# Podium benchmarks ({'quick' if args.quick else 'full'} run)\n",
        *(
            ["Only some suites ran; the others' figures are from earlier runs in this folder.\n"]
            if args.suite
            else []
        ),
        machine_block(machine()),
        "- versions: " + "; ".join(f"{k} {v}" for k, v in versions().items()) + "\n",
        "## Podium against the baselines of this run\n",
        "Ratio = Podium / baseline, all measured in this run on this machine.\n",
        markdown_table(
            ["figure", "Podium", "baseline", "baseline figure", "ratio"], summary(args.out)
        )
        + "\n",
        "## Goals on this machine\n",
        markdown_table(["goal", "target", "measured", ""], goal_rows) + "\n",
        "".join(f"- {n}\n" for n in notes),
        "## Suites\n",
        markdown_table(
            ["suite", "seconds", "exit"],
            [[r["suite"], r["seconds"], r["exit"]] for r in runs] + [["total", total, ""]],
        )
        + "\n",
    ]
    for n in names:
        report = args.out / SUITES[n][3]
        if report.exists():
            parts.append(_demote(report.read_text()))
    (args.out / "report.md").write_text("\n".join(parts))
    print(f"report: {args.out / 'report.md'}")
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
