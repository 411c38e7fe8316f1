"""Fault suite: kill -9 every kind of process in turn under a steady load, then check every
workflow.

A supervised cluster (two replicas of each service; each queue shard and the store's Redis a
primary with two replicas under three Sentinels, writes acknowledged once a replica has them)
runs a steady load of five workflow shapes (``benchmarks/fault_load.py``) with external
workers that log every execution and every update answer. Every ``--interval`` seconds, once
the cluster is whole again (every process up, every replica in sync), one process is killed
with SIGKILL, cycling through the kinds: queue service, decider, gateway, sweeper, a queue
shard's current Redis primary, the store's current Redis primary (a Cassandra node instead,
with ``--store cassandra``). After the load stops the workers keep running for a grace period,
then every acknowledged workflow and every sub-workflow is read back and judged:

* lost: a start answered 200 whose workflow does not exist;
* stuck: still RUNNING at the end of the grace period;
* duplicate accepted completion: a task attempt with two records, a task COMPLETED twice, or a
  task whose input (``prev_<ref>``, read when it was scheduled) differs from its predecessor's
  final output: a second completion overwrote the first after it had been acted on;
* duplicate execution: a taskId executed again by a worker (at-least-once delivery allows it).

Recovery time of a kill: completions per second in one-second windows sliding by 0.25 s over
the 15 s after the kill (cut at the next kill); the time from the kill to the end of the last
window whose rate is below half the mean rate of the five seconds before the kill (0 when none
is). Completions are the COMPLETED tasks of the final workflows, by their ``endTime``.

    python -m benchmarks.faults --quick         # every kind once, about 90 s
    python -m benchmarks.faults                 # >= 24 kills and >= 100,000 task completions
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from benchmarks.fault_load import (
    SHAPES,
    Check,
    Endpoint,
    Load,
    Logs,
    Workers,
    check,
    running_count,
    task_defs,
    workflow_defs,
)
from benchmarks.measure import RESULTS, chart_style, markdown_table, percentile, report_header
from podium import aio
from podium.cluster import ClusterSpec, LocalCluster
from podium.errors import Unavailable
from podium.launch.cassandra import CassandraNode, CassandraRing
from podium.launch.redis import ReplicatedRedis
from podium.supervisor import processes_of

SERVICES = {
    "queue-service": "queue_service.server",
    "decider": "decider.server",
    "gateway": "api_gateway.server",
    "sweeper": "sweeper.server",
}
KINDS = (*SERVICES, "shard-primary", "store-primary")
RECOVERY_TARGET_S = 5.0
RECOVERY_HORIZON_S = 15.0
#: completions a recovery window must expect from the rate before the kill (see
#: _measure_recovery): 1 s windows at the full run's rate, longer ones at lower rates
WINDOW_COMPLETIONS = 40.0


@dataclass
class FaultConfig:
    quick: bool = False
    rate: float = 20.0  # workflows started per second (below what two shared cores sustain)
    min_kills: int = 24
    #: keep killing (cycling the kinds) until the workers' accepted completions reach this;
    #: with the system tasks of the five shapes (0.33 per SIMPLE task in a full run) that is
    #: over 100,000 task completions in all
    target_completions: int = 76_500
    interval_s: float = 20.0  # at least this long between kills
    steady_s: float = 6.0  # the cluster whole for this long before a kill
    warmup_s: float = 10.0
    tail_s: float = 15.0  # load after the last kill
    grace_s: float = 60.0
    #: how long the cluster may take to be whole again (a store replica reloading its
    #: append-only file and resyncing takes minutes once the data set is large)
    whole_within_s: float = 300.0
    shards: int = 2
    #: replicas of each queue shard and of the store's Redis: with two, writes (acknowledged
    #: once one replica holds them) go on as soon as the Sentinels have promoted one, while
    #: the killed server resyncs; with one they wait for it to be back
    redis_replicas: int = 2
    store: str = "redis"
    #: with --store cassandra: a ring of this many nodes, replication factor min(3, nodes);
    #: with one, a node's restart stops the store until it is back
    cassandra_nodes: int = 3
    #: how long a killed Cassandra node stays down before the suite restarts it. The restart
    #: is an event of its own, with its own dip measured: a JVM starting on the machine that
    #: also runs the ring's other nodes and the cluster takes their CPU, which a node on a
    #: machine of its own would not
    cassandra_down_s: float = 20.0
    out: Path = RESULTS

    @classmethod
    def quick_mode(cls, out: Path = RESULTS) -> FaultConfig:
        return cls(
            quick=True, rate=12.0, min_kills=len(KINDS), target_completions=0, interval_s=7.0,
            steady_s=5.5, warmup_s=6.0, tail_s=8.0, grace_s=60.0, shards=1, out=out,
        )  # fmt: skip

    @property
    def kinds(self) -> tuple[str, ...]:
        if self.store == "cassandra":
            return (*SERVICES, "shard-primary", "cassandra-node")
        return KINDS


@dataclass
class Kill:
    kind: str
    victim: str
    t: float  # epoch s
    recovery_s: float | None = None
    lowest_rate: float | None = None  # lowest window's completion rate after it, share of before
    window_s: float | None = None  # the windows its recovery was measured with


@dataclass
class Run:
    config: FaultConfig
    logs: Logs = field(default_factory=Logs)
    kills: list[Kill] = field(default_factory=list)
    began: float = 0.0
    load_stopped: float = 0.0  # no new starts from here
    load_ended: float = 0.0  # the last start retried to its end
    ended: float = 0.0
    http_calls: Counter[str] = field(default_factory=Counter)
    restarts: dict[str, int] = field(default_factory=dict)
    #: Cassandra nodes started again by the suite (kind "cassandra-restart"), after a kill
    node_restarts: list[Kill] = field(default_factory=list)
    not_whole: str = ""  # set when the cluster did not recover all its processes


def _say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def _healthy(cluster: LocalCluster) -> bool:
    """Every process up (none being restarted) and every replica in sync with its primary."""
    supervisor = cluster.supervisor
    for proc in processes_of(cluster):
        if not proc.alive() or (supervisor is not None and supervisor.record(proc.name).restarting):
            return False
    if not all(node.is_running() for node in _cassandra_nodes(cluster)):
        return False
    if isinstance(cluster.cassandra, CassandraRing) and not cluster.cassandra.whole():
        return False
    if cluster.replicated is not None:
        try:
            return _replication_whole(cluster.replicated)
        except (OSError, redis.RedisError, Unavailable):  # a server still starting
            return False
    return True


def _replication_whole(topology: ReplicatedRedis) -> bool:
    """Each group's other servers replicate the primary the Sentinels name, links up (after a
    failover the server objects have swapped roles, so this asks each one)."""
    for name in topology.names:
        primary = topology.primary_address(name)
        with redis.Redis(*primary, socket_timeout=1) as r:
            if int(r.info("replication").get("connected_slaves", 0)) < topology.replica_count(name):
                return False
        for _, server in topology.servers():
            if topology.group_of(server) != name or (server.host, server.port) == primary:
                continue
            with redis.Redis(server.host, server.port, socket_timeout=1) as r:
                info = r.info("replication")
            if (
                info.get("master_link_status") != "up"
                or (str(info.get("master_host")), int(info.get("master_port", 0))) != primary
            ):
                return False
    return True


def _cassandra_nodes(cluster: LocalCluster) -> list[CassandraNode]:
    started = cluster.cassandra
    if isinstance(started, CassandraRing):
        return started.nodes
    return [started] if isinstance(started, CassandraNode) else []


def _kill(cluster: LocalCluster, kind: str, n: int) -> str:
    """SIGKILL the ``n``-th victim of ``kind``; its name."""
    if kind in SERVICES:
        group = cluster.of(SERVICES[kind])
        victim = group[n % len(group)]
        victim.kill()
        return victim.name
    if kind == "cassandra-node":
        node = _cassandra_nodes(cluster)[n % len(_cassandra_nodes(cluster))]
        node.kill()
        return f"cassandra {node.host}"
    topology = cluster.replicated
    if topology is None:
        raise RuntimeError("Redis primary kills need shard_replicas and store_replicas")
    group_name = "store" if kind == "store-primary" else f"s{n % cluster.spec.shards}"
    address = topology.primary_address(group_name)
    for label, server in topology.servers():
        if (server.host, server.port) == address and topology.group_of(server) == group_name:
            server.kill()
            return f"redis-{label} (primary of {group_name})"
    raise RuntimeError(f"no server of {group_name} is at {address}")


async def _killer(cluster: LocalCluster, run: Run, accepted: Any) -> None:
    """Kill in turn until enough kills and completions; each kill once the cluster is whole."""
    cfg = run.config
    counts: Counter[str] = Counter()
    await asyncio.sleep(cfg.warmup_s)
    while len(run.kills) < cfg.min_kills or accepted() < cfg.target_completions:
        kind = cfg.kinds[len(run.kills) % len(cfg.kinds)]
        deadline = time.monotonic() + cfg.whole_within_s
        whole_since: float | None = None
        while True:
            if await asyncio.to_thread(_healthy, cluster):
                whole_since = whole_since or time.monotonic()
            else:
                whole_since = None
            last = run.kills[-1].t if run.kills else 0.0
            if (
                whole_since is not None
                and time.monotonic() - whole_since >= cfg.steady_s
                and time.time() - last >= cfg.interval_s
            ):
                break
            if time.monotonic() > deadline:
                run.not_whole = f"not whole {cfg.whole_within_s:g} s after kill {len(run.kills)}"
                _say(f"the cluster was {run.not_whole}; no more kills")
                break
            await asyncio.sleep(0.25)
        if run.not_whole:
            break
        t = time.time()
        victim = await asyncio.to_thread(_kill, cluster, kind, counts[kind])
        counts[kind] += 1
        run.kills.append(Kill(kind, victim, t))
        _say(f"kill {len(run.kills)}: {kind} {victim}; {accepted():,} completions so far")
        if kind == "cassandra-node":  # not supervised by the cluster: bring it back here
            nodes = _cassandra_nodes(cluster)
            await _restart_node(run, nodes[(counts[kind] - 1) % len(nodes)])
    await asyncio.sleep(cfg.tail_s)


async def _restart_node(run: Run, node: CassandraNode) -> None:
    """Start a killed Cassandra node again after ``cassandra_down_s``, as an event of its own."""
    await asyncio.sleep(run.config.cassandra_down_s)
    run.node_restarts.append(Kill("cassandra-restart", f"cassandra {node.host}", time.time()))
    _say(f"restart: cassandra {node.host}")
    await asyncio.to_thread(node.start)


async def _register(url: str, endpoint: Endpoint) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{url}/metadata/taskdefs", json=task_defs())
        r.raise_for_status()
        r = await http.put(f"{url}/metadata/workflow", json=workflow_defs(endpoint.url))
        r.raise_for_status()


async def _drain(url: str, grace_s: float) -> None:
    """Until no workflow of the suite is RUNNING, or the grace period is over."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if await running_count(url) == 0:
            return
        await asyncio.sleep(1.0)


async def execute(cfg: FaultConfig) -> tuple[Run, Check]:
    """Start the cluster, run the load and the kills, drain, check; stop everything."""
    run = Run(cfg)
    endpoint = await Endpoint().start()
    spec = ClusterSpec(
        shards=cfg.shards, queue_services=2, deciders=2, gateways=2, sweepers=2,
        store=cfg.store, cassandra_nodes=cfg.cassandra_nodes, gateway_port=0, supervise=True,
        shard_replicas=cfg.redis_replicas,
        store_replicas=cfg.redis_replicas if cfg.store == "redis" else 0,
        allow_http_hosts=f"127.0.0.1:{endpoint.port}",
        extra_env={"PODIUM_DECIDER_WORKFLOW_OFFSET_S": "2", "PODIUM_SWEEPER_LEASE_MS": "2000"},
    )  # fmt: skip
    events: list[str] = []
    cluster = LocalCluster(spec, progress=lambda _: None, events=events.append)
    _say("starting the cluster")
    await cluster.start()
    try:
        urls = cluster.gateway_urls
        await _register(urls[0], endpoint)
        workers = Workers(urls, run.logs)
        load = Load(urls, run.logs, cfg.rate)
        accepted_ids: set[str] = set()
        seen = [0]

        def accepted() -> int:
            updates = run.logs.updates
            for _, task_id, _, status in updates[seen[0] :]:
                if status == 200:
                    accepted_ids.add(task_id)
            seen[0] = len(updates)
            return len(accepted_ids)

        run.began = time.time()
        _say(f"load: {cfg.rate:g} workflows/s over {len(urls)} gateways")
        working = asyncio.ensure_future(workers.run())
        loading = asyncio.ensure_future(load.run())
        try:
            await _killer(cluster, run, accepted)
        finally:
            load.stop_event.set()
            run.load_stopped = time.time()
            await loading
            run.load_ended = time.time()
            _say(f"load stopped; {len(run.logs.starts):,} starts; draining")
            await _drain(urls[0], cfg.grace_s)
            workers.stop_event.set()
            await working
        run.ended = time.time()
        _say("checking every workflow")
        verdict = await check(urls[0], run.logs)
        run.http_calls = endpoint.calls
        if cluster.supervisor is not None:
            run.restarts = {
                p.name: cluster.supervisor.record(p.name).restarts for p in processes_of(cluster)
            }
    finally:
        await cluster.stop()
        await endpoint.stop()
    _measure_recovery(run, verdict)
    return run, verdict


def _measure_recovery(run: Run, verdict: Check) -> None:
    """Per kill (and per node restart): how long the completion rate stayed under half of the
    5 s before it.

    Windows slide in 0.25 s steps over the horizon (15 s after the event, cut at the next
    event and at the end of the load); the recovery time is the end of the last window under
    half the rate before (0 if none is), None if the last window of the horizon is still under.
    A window lasts 1 s, or longer when the rate before would put fewer than
    ``WINDOW_COMPLETIONS`` completions in it: at 16 completions/s a 1 s window falls under half
    by chance alone (its count varies by a quarter of its mean), at 40 that takes a fall of
    three standard deviations.
    """
    times = sorted(t for t in verdict.completion_times if t > 0)
    events = sorted([*run.kills, *run.node_restarts], key=lambda k: k.t)

    def rate(lo: float, hi: float) -> float:
        return (bisect.bisect_left(times, hi) - bisect.bisect_left(times, lo)) / (hi - lo)

    for i, kill in enumerate(events):
        before = rate(kill.t - 5.0, kill.t)
        if before <= 0:
            continue
        window = max(1.0, WINDOW_COMPLETIONS / before)
        kill.window_s = window
        until = events[i + 1].t if i + 1 < len(events) else run.load_stopped
        horizon = min(RECOVERY_HORIZON_S, until - kill.t)
        steps = max(1, int((horizon - window) / 0.25) + 1)
        rates = [rate(kill.t + 0.25 * j, kill.t + 0.25 * j + window) for j in range(steps)]
        low = [j for j, r in enumerate(rates) if r < 0.5 * before]
        kill.lowest_rate = min(rates) / before
        if not low:
            kill.recovery_s = 0.0
        elif low[-1] < steps - 1:
            kill.recovery_s = 0.25 * low[-1] + window
        else:
            kill.recovery_s = None


def _why(wf: dict[str, Any]) -> str:
    """A workflow that did not complete, in one line: its status, reason and last tasks."""
    tasks = ", ".join(
        f"{t['referenceTaskName']}#{t.get('retryCount', 0)} {t['status']}"
        + (f" ({t['reasonForIncompletion'][:120]})" if t.get("reasonForIncompletion") else "")
        for t in (wf.get("tasks") or [])[-4:]
    )
    reason = (wf.get("reasonForIncompletion") or "")[:200]
    return f"{wf['workflowId']} {wf['workflowName']} {wf['status']}: {reason} [{tasks}]"


def summarize(run: Run, verdict: Check) -> dict[str, Any]:
    cfg, logs = run.config, run.logs
    starts = logs.starts
    executions_per_task = Counter(e.task_id for e in logs.executions)
    answers_200 = Counter(u[1] for u in logs.updates if u[3] == 200)
    parents = [s.workflow_id for s in starts if s.workflow_id]
    all_ids = [*parents, *verdict.children]
    status = Counter(verdict.status.get(i, "LOST") for i in all_ids)
    latencies = [verdict.latency_s[i] for i in parents if i in verdict.latency_s]
    ack_delays = [s.acked - s.sent for s in starts if s.workflow_id]
    edges = [k.t for k in run.kills]

    def window(t: float) -> int:
        return bisect.bisect_right(edges, t)  # 0: before the first kill

    per: dict[int, Counter[str]] = defaultdict(Counter)
    for s in starts:
        w = per[window(s.sent)]
        if not s.workflow_id:
            w["unacknowledged"] += 1
            continue
        w["started"] += 1
        st = verdict.status.get(s.workflow_id, "LOST")
        w[{"COMPLETED": "completed", "RUNNING": "stuck", "PAUSED": "stuck", "LOST": "lost"}.get(
            st, "failed")] += 1  # fmt: skip
    first_seen: dict[str, float] = {}
    for e in logs.executions:
        if e.task_id in first_seen:
            per[window(e.t)]["duplicate executions"] += 1
        else:
            first_seen[e.task_id] = e.t
    sent_by_id = {s.workflow_id: s.sent for s in starts if s.workflow_id}
    for wf_id, _ in verdict.duplicate_accepted:
        parent = verdict.children.get(wf_id, wf_id)
        per[window(sent_by_id.get(parent, 0.0))]["duplicate accepted"] += 1
    faults = []
    for i in range(len(run.kills) + 1):
        c = per[i]
        kill = run.kills[i - 1] if i else None
        faults.append({
            "fault": i, "kind": kill.kind if kill else "(before the first kill)",
            "victim": kill.victim if kill else "", "at_s": kill.t - run.began if kill else 0.0,
            "recovery_s": kill.recovery_s if kill else None,
            "lowest_rate": kill.lowest_rate if kill else None,
            "window_s": kill.window_s if kill else None,
            **{k: c[k] for k in ("started", "completed", "failed", "stuck", "lost",
                                  "unacknowledged", "duplicate executions",
                                  "duplicate accepted")},
        })  # fmt: skip
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in cfg.kinds:
        rec = [k.recovery_s for k in run.kills if k.kind == kind]
        done = [r for r in rec if r is not None]
        by_kind[kind] = {
            "kills": len(rec),
            "recovered": len(done),
            "recovery_median_s": statistics.median(done) if done else None,
            "recovery_max_s": max(done) if done else None,
        }
    if run.node_restarts:
        rec = [k.recovery_s for k in run.node_restarts]
        done = [r for r in rec if r is not None]
        by_kind["cassandra-restart"] = {
            "kills": len(rec),
            "recovered": len(done),
            "recovery_median_s": statistics.median(done) if done else None,
            "recovery_max_s": max(done) if done else None,
        }
    lost = len(verdict.lost)
    stuck = status["RUNNING"] + status["PAUSED"]
    failed = sum(
        n for s, n in status.items() if s not in ("COMPLETED", "RUNNING", "PAUSED", "LOST")
    )
    dup_http = sum(n - 1 for n in run.http_calls.values() if n > 1)
    recoveries = [k.recovery_s for k in run.kills]
    totals = {
        "seconds": run.ended - run.began,
        "load_seconds": run.load_stopped - run.began,
        "rate": cfg.rate,
        "starts": len(starts),
        "acknowledged": len(parents),
        "unacknowledged": sum(1 for s in starts if not s.workflow_id and not s.refused),
        "refused": sum(1 for s in starts if s.refused),
        "start_retries": sum(s.attempts - 1 for s in starts),
        "start_ack_s": {
            "p99": percentile(ack_delays, 99),
            "max": max(ack_delays, default=float("nan")),
            "over_5s": sum(1 for d in ack_delays if d > 5),
        },
        "sub_workflows": len(verdict.children),
        "status": dict(status),
        "lost": lost,
        "stuck": stuck,
        "failed": failed,
        "task_completions": verdict.task_completions,
        "simple_completions": verdict.simple_completions,
        "executions": len(logs.executions),
        "duplicate_executions": sum(n - 1 for n in executions_per_task.values()),
        "repeated_200_answers": sum(n - 1 for n in answers_200.values()),
        "duplicate_accepted": len(verdict.duplicate_accepted),
        "duplicate_accepted_examples": verdict.duplicate_accepted[:10],
        "unfinished_examples": [_why(wf) for wf in list(verdict.unfinished.values())[:10]],
        "foreign_results": len(verdict.foreign_results),
        "http_calls": sum(run.http_calls.values()),
        "duplicate_http_calls": dup_http,
        "update_failures": sum(1 for u in logs.updates if u[3] == 0 or u[3] >= 500),
        "poll_errors": logs.poll_errors,
        "kills": len(run.kills),
        "latency_s": {
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "max": max(latencies, default=float("nan")),
        },
        "latency_by_shape_p99_s": {
            shape: percentile(
                [
                    verdict.latency_s[s.workflow_id]
                    for s in starts
                    if s.shape == shape and s.workflow_id in verdict.latency_s
                ],
                99,
            )
            for shape in SHAPES
        },
        "restarts": {k: v for k, v in run.restarts.items() if v},
    }
    invariants = {
        "no lost workflow (every acknowledged start exists)": lost == 0,
        "no stuck workflow": stuck == 0,
        "no failed workflow": failed == 0,
        "no duplicate accepted completion": not verdict.duplicate_accepted,
        "every result is from an execution of its task": not verdict.foreign_results,
        "every process kind killed": all(v["kills"] for v in by_kind.values()),
        "the cluster whole again (processes and replicas) after every kill": not run.not_whole,
    }
    # How fast throughput comes back is a figure, not an invariant: on a shared machine a
    # neighbour's burst can hold the rate down past the window.
    goals = {
        "throughput back to half within 15 s of each kill (or before the next)": all(
            r is not None for r in recoveries
        ),
        f"recovery after each kill < {RECOVERY_TARGET_S:g} s": all(
            r is not None and r < RECOVERY_TARGET_S for r in recoveries
        ),
    }
    if not cfg.quick:
        goals[">= 100,000 task completions (all types)"] = verdict.task_completions >= 100_000
        goals[">= 20 kills"] = len(run.kills) >= 20
    return {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "totals": totals,
        "faults": faults,
        "by_kind": by_kind,
        "invariants": invariants,
        "goals": goals,
        "kills": [asdict(k) for k in run.kills],
        "node_restarts": [asdict(k) for k in run.node_restarts],
        "began": run.began,
    }


def chart(run: Run, verdict: Check, path: Path) -> Path:
    chart_style()
    import matplotlib.pyplot as plt

    times = [t - run.began for t in verdict.completion_times if t >= run.began]
    end = max(times, default=1.0)
    fine = [0] * (int(end / 0.25) + 1)
    for t in times:
        fine[int(t / 0.25)] += 1
    fig, ax = plt.subplots(figsize=(11, 4.2))
    ax.plot([0.25 * i for i in range(len(fine))], [4 * n for n in fine], color="tab:blue",
            alpha=0.25, linewidth=0.6, label="task completions/s (0.25 s buckets)")  # fmt: skip
    secs = [sum(fine[i : i + 4]) for i in range(0, len(fine), 4)]
    ax.plot(range(len(secs)), secs, color="tab:blue", linewidth=1.1,
            label="task completions/s (1 s)")  # fmt: skip
    colors = dict(zip((*SERVICES, "shard-primary", "store-primary", "cassandra-node"),
                      ("tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown",
                       "black", "black"), strict=True))  # fmt: skip
    labelled: set[str] = set()
    for k in run.kills:
        ax.axvline(k.t - run.began, color=colors[k.kind], linestyle="--", linewidth=0.9,
                   label=None if k.kind in labelled else f"kill -9 {k.kind}")  # fmt: skip
        labelled.add(k.kind)
    for k in run.node_restarts:
        label = None if k.kind in labelled else "Cassandra node started again"
        ax.axvline(k.t - run.began, color="black", linestyle=":", linewidth=0.9, label=label)
        labelled.add(k.kind)
    ax.axvline(run.load_stopped - run.began, color="grey", linestyle=":", label="load stops")
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("task completions per second")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Task completions under kill -9 ({len(run.kills)} kills)")
    ax.legend(fontsize=7, loc="lower left", ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _s(value: float | None) -> str:
    return "not recovered" if value is None else f"{value:.2f} s"


def report(summary: dict[str, Any], chart_path: Path, out: Path) -> Path:
    t, cfg = summary["totals"], summary["config"]
    quick = cfg["quick"]
    header = report_header(
        "Fault suite: kill -9 under load",
        quick,
        f"store Redis append-only (fsync every second), queue shards without persistence, "
        f"each a primary with {cfg['redis_replicas']} replica(s); three Sentinels; every "
        "acknowledged write is on a replica "
        "(PODIUM_QUEUE_WAIT_REPLICAS=1, PODIUM_STORE_REDIS_WAIT_REPLICAS=1)",
        "workflow input {i}, each SIMPLE task's output {nonce}",
        [
            f"cluster: 2 replicas of each service, {cfg['shards']} queue shard(s), "
            f"store {cfg['store']}, supervised (restart back-off 0.5 s doubling)",
            f"load: {cfg['rate']:g} workflows/s, shapes {', '.join(SHAPES)} round-robin; "
            "task defs retryCount 50, responseTimeoutSeconds 3",
        ],
    )
    lat = t["latency_s"]
    totals_rows = [
        ["duration (load start → checks)",
         f"{t['seconds']:.0f} s (new starts for {t['load_seconds']:.0f} s)"],
        ["kills", t["kills"]],
        ["starts / acknowledged / never acknowledged / refused",
         f"{t['starts']:,} / {t['acknowledged']:,} / {t['unacknowledged']} / {t['refused']}"],
        ["start attempts retried", t["start_retries"]],
        ["first attempt → acknowledged: p99 / max / starts over 5 s",
         f"{t['start_ack_s']['p99']:.2f} s / {t['start_ack_s']['max']:.2f} s / "
         f"{t['start_ack_s']['over_5s']}"],
        ["sub-workflows", f"{t['sub_workflows']:,}"],
        ["final status of every workflow", ", ".join(f"{k} {v:,}" for k, v in sorted(
            t["status"].items()))],
        ["task completions (all COMPLETED tasks)", f"{t['task_completions']:,}"],
        ["... of them SIMPLE, by the workers", f"{t['simple_completions']:,}"],
        ["worker executions / duplicate executions",
         f"{t['executions']:,} / {t['duplicate_executions']:,}"],
        ["second 200 answers to one taskId (refused by the decider)", t["repeated_200_answers"]],
        ["HTTP task calls / repeated", f"{t['http_calls']:,} / {t['duplicate_http_calls']}"],
        ["update attempts without an answer or with 5xx", t["update_failures"]],
        ["lost / stuck / failed", f"{t['lost']} / {t['stuck']} / {t['failed']}"],
        ["duplicate accepted completions", t["duplicate_accepted"]],
        ["workflow latency (start → end) p50 / p99 / max",
         f"{lat['p50']:.2f} / {lat['p99']:.2f} / {lat['max']:.2f} s"],
        ["p99 by shape",
         ", ".join(f"{k} {v:.2f} s" for k, v in t["latency_by_shape_p99_s"].items())],
        ["restarts by the supervisor", ", ".join(f"{k} {v}" for k, v in sorted(
            t["restarts"].items()))],
    ]  # fmt: skip
    kind_rows = [
        [k, v["kills"], _s(v["recovery_median_s"]) if v["kills"] else "-",
         _s(v["recovery_max_s"]) if v["kills"] else "-"]
        for k, v in summary["by_kind"].items()
    ]  # fmt: skip
    fault_rows = [
        [f["fault"], f["kind"], f["victim"], f"{f['at_s']:.1f}",
         _s(f["recovery_s"]) if f["fault"] else "",
         f"{f['lowest_rate']:.0%}" if f["lowest_rate"] is not None else "",
         f"{f['window_s']:.2f}" if f["window_s"] is not None else "",
         f["started"], f["completed"], f["failed"], f["stuck"], f["lost"],
         f["unacknowledged"], f["duplicate executions"], f["duplicate accepted"]]
        for f in summary["faults"]
    ]  # fmt: skip
    checks = [[k, "holds" if v else "BROKEN"] for k, v in summary["invariants"].items()]
    checks += [[k, "met" if v else "short"] for k, v in summary["goals"].items()]
    text = "\n".join(
        [
            header,
            "## Invariants and goals\n",
            markdown_table(["check", ""], checks) + "\n",
            "## Totals\n",
            markdown_table(["figure", "value"], totals_rows) + "\n",
            *(
                ["## Workflows that did not complete\n"]
                + [f"- {line}" for line in t["unfinished_examples"]]
                + [""]
                if t["unfinished_examples"]
                else []
            ),
            "## Recovery by kind\n",
            "Recovery = from the kill to the end of the last window (sliding by 0.25 s over "
            "the 15 s after the kill, cut at the next kill) whose task completions/s are under "
            "50 % of the mean of the 5 s before the kill; 0 if none is. A window lasts 1 s, or "
            f"longer where the rate before would put fewer than {WINDOW_COMPLETIONS:g} "
            "completions in it (the per-fault table gives each one's). A "
            "`cassandra-restart` row is a killed node started again by the suite "
            f"{cfg['cassandra_down_s']:g} s after its kill, measured the same way.\n",
            markdown_table(["kind", "kills", "median", "max"], kind_rows) + "\n",
            "## Per fault\n",
            "Workflows are counted in the window of the kill before their first start attempt; "
            '"lowest" is the lowest window\'s completion rate in those 15 s, as a share '
            "of the 5 s before.\n",
            markdown_table(
                [
                    "#",
                    "kind",
                    "victim",
                    "at s",
                    "recovery",
                    "lowest",
                    "window s",
                    "started",
                    "completed",
                    "failed",
                    "stuck",
                    "lost",
                    "unacked",
                    "dup exec",
                    "dup accepted",
                ],
                fault_rows,
            ),
            "",
            f"![completions per second with the kills]({chart_path.name})",
            "",
        ]
    )
    path = out / "faults.md"
    path.write_text(text)
    return path


async def run_suite(cfg: FaultConfig) -> dict[str, Any]:
    """The whole suite: its summary (also written to ``faults.json``, ``.md`` and ``.png``)."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    run, verdict = await execute(cfg)
    summary = summarize(run, verdict)
    png = chart(run, verdict, cfg.out / "faults.png")
    (cfg.out / "faults.json").write_text(json.dumps(summary, indent=1, default=str))
    report(summary, png, cfg.out)
    with contextlib.suppress(OSError):  # the raw logs, for looking into a broken invariant
        for name, rows in (
            ("executions", [asdict(e) for e in run.logs.executions]),
            ("updates", run.logs.updates),
            ("starts", [asdict(s) for s in run.logs.starts]),
            ("unfinished", list(verdict.unfinished.values())),
            ("completions", sorted(verdict.completion_times)),
        ):
            (cfg.out / f"faults-{name}.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in rows)
            )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every kind killed once")
    parser.add_argument("--store", choices=("redis", "cassandra"), default="redis")
    parser.add_argument("--rate", type=float, help="workflows started per second")
    parser.add_argument("--kills", type=int, help="at least this many kills")
    parser.add_argument("--completions", type=int, help="until this many task completions")
    parser.add_argument("--interval", type=float, help="at least this many seconds between kills")
    parser.add_argument("--redis-replicas", type=int,
                        help="replicas of each queue shard and of the store's Redis")  # fmt: skip
    parser.add_argument("--cassandra-nodes", type=int, help="with --store cassandra")
    parser.add_argument("--cassandra-down", type=float,
                        help="seconds a killed Cassandra node stays down")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cfg = FaultConfig.quick_mode(args.out) if args.quick else FaultConfig(out=args.out)
    cfg.store = args.store
    for name, value in (("rate", args.rate), ("min_kills", args.kills),
                        ("target_completions", args.completions),
                        ("interval_s", args.interval),
                        ("redis_replicas", args.redis_replicas),
                        ("cassandra_nodes", args.cassandra_nodes),
                        ("cassandra_down_s", args.cassandra_down)):  # fmt: skip
        if value is not None:
            setattr(cfg, name, value)
    summary = aio.run(run_suite(cfg))
    print((cfg.out / "faults.md").read_text())
    return 0 if all(summary["invariants"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
