"""UI render time: the execution view of 10, 100 and 1,000 tasks, and the search page over
100,000 stored workflows, in a real browser against a real cluster.

A local cluster (Redis store, queue service, decider, gateway serving the UI, as separate
processes) holds workflows written straight through the store API, in batches (not run
through the decider: the page only reads them). Debian's Chromium, driven by Playwright,
opens each page in a fresh browser context (nothing cached) and the page itself records when
its first view was built and painted (``window.__podium*`` marks, ms since navigation start):
that is the time to first render, assets, configuration and API calls included.

* execution view: finished workflows of N tasks in two shapes: a sequence of N tasks, and
  forks (each block a FORK_JOIN of 4 branches of 2 tasks and its JOIN: 10 tasks);
* search page: the first page (25 rows, newest first) with no filter, and filtered by name and
  status, over the stored workflows (their start times spread over the last 6 days).

    python -m benchmarks.ui_render [--quick]

``--quick`` stores 10,000 workflows for the search (and says so in the report) and renders each
page 3 times instead of 7. The goal: under 1 s for 1,000 tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from benchmarks.measure import RESULTS, markdown_table, report_header
from podium import aio
from podium.cluster import ClusterSpec, LocalCluster
from podium.store import Store, StoreConfig, open_store

JSON = dict[str, Any]
CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 800}
DAY_MS = 86_400_000
GOAL_MS = 1000.0
SIZES = (10, 100, 1000)
NAMES = [f"bench_ui_{i}" for i in range(20)]
STATUSES = ["COMPLETED"] * 7 + ["FAILED", "TIMED_OUT", "TERMINATED", "RUNNING"]


# -- workflows written straight to the store -----------------------------------------------


def _simple(ref: str) -> JSON:
    return {"name": "bench_task", "taskReferenceName": ref, "type": "SIMPLE",
            "inputParameters": {"x": "${workflow.input.x}"}}  # fmt: skip


def definition(shape: str, size: int) -> JSON:
    tasks: list[JSON] = []
    if shape == "sequence":
        tasks = [_simple(f"step_{i}") for i in range(size)]
    else:
        for b in range(size // 10):
            branches = [[_simple(f"f{b}_b{j}_{k}") for k in range(2)] for j in range(4)]
            tasks.append({"name": "fork", "taskReferenceName": f"fork_{b}", "type": "FORK_JOIN",
                          "forkTasks": branches})  # fmt: skip
            tasks.append({"name": "join", "taskReferenceName": f"join_{b}", "type": "JOIN",
                          "joinOn": [br[-1]["taskReferenceName"] for br in branches]})  # fmt: skip
    return {"name": f"bench_ui_{shape}_{size}", "version": 1, "schemaVersion": 2, "tasks": tasks}


def _flatten(tasks: list[JSON]) -> list[JSON]:
    out: list[JSON] = []
    for workflow_task in tasks:
        out.append(workflow_task)
        for branch in workflow_task.get("forkTasks") or []:
            out.extend(_flatten(branch))
    return out


def execution(definition: JSON, now_ms: int) -> tuple[JSON, list[JSON]]:
    """A COMPLETED workflow of ``definition``: one task record per workflow task."""
    wf_id = str(uuid.uuid4())
    start = now_ms - 60_000
    tasks = []
    for seq, workflow_task in enumerate(_flatten(definition["tasks"]), start=1):
        t0 = start + seq * 20
        simple = workflow_task["type"] == "SIMPLE"
        task_type = workflow_task["name"] if simple else workflow_task["type"]
        tasks.append({
            "taskId": str(uuid.uuid4()), "taskType": task_type,
            "taskDefName": workflow_task["name"],
            "referenceTaskName": workflow_task["taskReferenceName"],
            "status": "COMPLETED", "seq": seq, "retryCount": 0, "iteration": 0, "pollCount": 1,
            "workflowInstanceId": wf_id, "workflowType": definition["name"],
            "scheduledTime": t0, "startTime": t0 + 5, "endTime": t0 + 15, "updateTime": t0 + 15,
            "workerId": "bench-worker", "workflowTask": workflow_task,
            "inputData": {"x": seq, "note": "input of a benchmark task"},
            "outputData": {"result": seq * 2, "note": "output of a benchmark task"},
        })  # fmt: skip
    workflow = {
        "workflowId": wf_id, "workflowName": definition["name"], "workflowVersion": 1,
        "createTime": start, "startTime": start, "updateTime": now_ms, "endTime": now_ms,
        "status": "COMPLETED", "input": {"x": 1}, "output": {"done": True},
        "workflowDefinition": definition, "correlationId": f"bench-{len(tasks)}",
    }  # fmt: skip
    return workflow, tasks


def search_workflow(i: int, now_ms: int, rng: random.Random) -> JSON:
    start = now_ms - rng.randrange(6 * DAY_MS)
    status = rng.choice(STATUSES)
    wf: JSON = {
        "workflowId": str(uuid.uuid4()), "workflowName": rng.choice(NAMES), "workflowVersion": 1,
        "createTime": start, "startTime": start, "updateTime": start + 1000,
        "status": status, "input": {"order": i}, "output": {},
        "correlationId": f"order-{i}", "workflowDefinition": {},
    }  # fmt: skip
    if status != "RUNNING":
        wf["endTime"] = start + 1000 + rng.randrange(60_000)
    if status in ("FAILED", "TIMED_OUT", "TERMINATED"):
        wf["reasonForIncompletion"] = f"order {i} failed"
    return wf


async def store_search_workflows(store: Store, count: int, batch: int = 50) -> float:
    """Write ``count`` workflows in concurrent batches; returns the seconds it took."""
    rng = random.Random(7)
    now = int(time.time() * 1000)
    started = time.perf_counter()
    for lo in range(0, count, batch):
        await asyncio.gather(
            *(
                store.executions.create_workflow(search_workflow(i, now, rng))
                for i in range(lo, min(count, lo + batch))
            )
        )
    return time.perf_counter() - started


# -- the browser ---------------------------------------------------------------------------


async def render(browser: Any, url: str, painted: str, check: str) -> JSON:
    """Open ``url`` in a fresh context; ms from navigation start to the page's painted mark."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(url)
        await page.wait_for_function(f"() => window.{painted}", timeout=60_000)
        marks: JSON = await page.evaluate(
            f"({{painted: window.{painted}, timings: window.__podiumTimings, check: {check}}})"
        )
    finally:
        await context.close()
    if errors:
        raise RuntimeError(f"{url}: {errors}")
    return marks


def _stats(values: list[float]) -> JSON:
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1]}


async def main_async(quick: bool, out: Path) -> Path:
    from playwright.async_api import async_playwright

    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: scripts/bootstrap.sh --browser installs it")
    runs = 3 if quick else 7
    stored = 10_000 if quick else 100_000
    cluster = LocalCluster(
        ClusterSpec(shards=1, sweepers=0, gateway_port=0), progress=lambda _: None
    )
    await cluster.start()
    results: JSON = {"quick": quick, "runs": runs, "execution": [], "search": []}
    try:
        store = await open_store(StoreConfig.from_env(cluster.store_env))
        base = cluster.gateway_urls[0].removesuffix("/api")
        now = int(time.time() * 1000)
        targets = []
        for shape in ("sequence", "forks"):
            for size in SIZES:
                d = definition(shape, size)
                await store.metadata.update_workflow_def(d)
                wf, tasks = execution(d, now)
                await store.executions.create_workflow(wf, tasks)
                targets.append((shape, size, wf["workflowId"]))
        write_s = await store_search_workflows(store, stored)
        results["stored"] = {"workflows": stored, "seconds": write_s}
        async with httpx.AsyncClient(base_url=base, timeout=60) as api:
            pw = await async_playwright().start()
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
            )
            try:
                await render(browser, f"{base}/ui/#/executions", "__podiumSearchPainted", "0")
                for shape, size, wf_id in targets:
                    marks = [
                        await render(
                            browser,
                            f"{base}/ui/#/execution/{wf_id}",
                            "__podiumExecutionPainted",
                            "(s => [+s.dataset.nodes, +s.dataset.shown])"
                            "(document.querySelector('#diagram svg'))",
                        )
                        for _ in range(runs)
                    ]
                    nodes = {m["check"][0] for m in marks}
                    assert nodes == {size}, (shape, size, nodes)
                    t0 = time.perf_counter()
                    r = await api.get(f"/api/workflow/{wf_id}")
                    api_ms = (time.perf_counter() - t0) * 1000
                    results["execution"].append({
                        "shape": shape, "tasks": size, "json_bytes": len(r.content),
                        "drawn": marks[0]["check"][1],
                        "api_ms": api_ms,
                        "first_render_ms": _stats([m["painted"] for m in marks]),
                        "fetch_ms": _stats([m["timings"]["fetchMs"] for m in marks]),
                        "build_ms": _stats([m["timings"]["renderMs"] for m in marks]),
                    })  # fmt: skip
                searches = [
                    ("no filter, newest first", "#/executions", ""),
                    (f"name {NAMES[3]} and status FAILED",
                     f"#/executions?name={NAMES[3]}&status=FAILED",
                     f"workflowType IN ({NAMES[3]}) AND status IN (FAILED)"),
                ]  # fmt: skip
                for label, hash_, query in searches:
                    marks = [
                        await render(
                            browser,
                            f"{base}/ui/{hash_}",
                            "__podiumSearchPainted",
                            "document.querySelectorAll('#results tbody tr').length",
                        )
                        for _ in range(runs)
                    ]
                    t0 = time.perf_counter()
                    r = await api.get(
                        "/api/workflow/search",
                        params={"query": query, "size": 25, "sort": "startTime:DESC"},
                    )
                    api_ms = (time.perf_counter() - t0) * 1000
                    results["search"].append({
                        "search": label, "rows": marks[0]["check"],
                        "total_hits": r.json()["totalHits"], "api_ms": api_ms,
                        "first_render_ms": _stats([m["painted"] for m in marks]),
                        "search_ms": _stats([m["timings"]["searchMs"] for m in marks]),
                    })  # fmt: skip
            finally:
                await browser.close()
                await pw.stop()
        await store.close()
    finally:
        await cluster.stop()
    return write_report(results, quick, out)


def write_report(results: JSON, quick: bool, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    exec_rows = [
        [
            r["shape"],
            r["tasks"],
            f"{r['json_bytes'] / 1024:.0f} KiB",
            r["drawn"],
            r["api_ms"],
            r["fetch_ms"]["median"],
            r["build_ms"]["median"],
            r["first_render_ms"]["median"],
            r["first_render_ms"]["max"],
            "yes" if r["first_render_ms"]["median"] < GOAL_MS else "no",
        ]
        for r in results["execution"]
    ]
    search_rows = [
        [
            r["search"],
            r["total_hits"],
            r["rows"],
            r["api_ms"],
            r["search_ms"]["median"],
            r["first_render_ms"]["median"],
            r["first_render_ms"]["max"],
        ]
        for r in results["search"]
    ]
    stored = results["stored"]
    notes = [
        f"each page opened {results['runs']} times in a fresh Chromium context (1280x800, "
        "headless, nothing cached); medians",
        f"search: {stored['workflows']:,} workflows stored through the store API in "
        f"{stored['seconds']:.1f} s" + (" (quick run: 10,000, not 100,000)" if quick else ""),
        "first render = navigation start → the frame after the view was built (assets, "
        "config.json and the API calls included); page fetch = the workflow's GET and JSON "
        "parse in the page; build = model, layout and DOM of what is in view",
    ]
    text = (
        report_header(
            "UI render time",
            quick,
            "store Redis append-only (appendfsync everysec)",
            "execution tasks: small input and output maps; search workflows: small input",
            notes,
        )
        + "\n## Execution view (goal: first render under 1 s for 1,000 tasks)\n\n"
        + markdown_table(
            [
                "shape",
                "tasks",
                "workflow JSON",
                "SVG items drawn",
                "API GET ms",
                "page fetch ms",
                "build ms",
                "first render ms",
                "max ms",
                "< 1 s",
            ],
            exec_rows,
        )
        + "\n\n## Search page\n\n"
        + markdown_table(
            [
                "search",
                "totalHits",
                "rows",
                "API ms",
                "page search ms",
                "first render ms",
                "max ms",
            ],
            search_rows,
        )
        + "\n"
    )
    report = out / "ui_render.md"
    report.write_text(text)
    report.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print(text)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    aio.run(main_async(args.quick, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
