"""The decider service: :class:`~decider.shell.DeciderShell` served over msgpack RPC.

Every method takes a map of params and answers a map, ``{"workflowId", "status", ...}``
(``"workflow"`` too when ``returnWorkflow`` is set). Errors are Podium errors with Conductor's
messages; the gateway maps them to HTTP.

=========================  ================================================================
method                     params
=========================  ================================================================
decider.start_workflow     request (StartWorkflowRequest) -> {"workflowId"}
decider.test_workflow      request (WorkflowTestRequest) -> {"workflow"} (nothing is stored)
decider.decide             workflowId
decider.claim              queue, items [[taskId, workflowId]], workerId, ack -> {"tasks"}
decider.update_task        result (TaskResult), returnTaskType -> + taskType, domain of the task
decider.update_task_by_ref workflowId, ref, status, output, workerId
decider.signal             workflowId, status, output
decider.terminate          workflowId, reason
decider.pause / resume     workflowId
decider.retry              workflowId, resumeSubworkflowTasks
decider.restart            workflowId, useLatestDefinitions
decider.rerun              workflowId, request (RerunWorkflowRequest)
decider.skip_task          workflowId, ref, taskInput, taskOutput
decider.set_variables      workflowId, variables
decider.remove             workflowId
decider.ping               -
=========================  ================================================================
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from decider import dry_run
from decider.decision import DeciderConfig, Decision
from decider.script_host import ScriptHost
from decider.shell import DeciderShell
from podium import logs
from podium.codec import CodecLimits
from podium.config import (
    Environ,
    env_address_list,
    env_int,
    env_str,
    rpc_limits,
    rpc_security,
)
from podium.errors import InvalidArgument
from podium.health import HealthServer
from podium.metrics import rpc_metrics
from podium.queue_client import QueueClient
from podium.rpc import CallContext, Handler, RpcClient, RpcServer
from podium.rpc_security import RpcSecurity
from podium.rpc_server import chain
from podium.service import run_main, until_stopped
from podium.store import Store, StoreConfig, open_store
from podium.telemetry import Telemetry
from podium.telemetry.rpc import client_tracing, server_tracing
from podium.telemetry.store import traced

log = logging.getLogger("podium.decider")

DEFAULT_PORT = 7302
DEFAULT_HEALTH_PORT = 7312


@dataclass(frozen=True)
class DeciderSettings:
    store: StoreConfig
    queue_addresses: list[str]
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    codec: CodecLimits = field(default_factory=CodecLimits)
    health_host: str = "127.0.0.1"
    #: -1 turns the health port off (tests that run many services in one process).
    health_port: int = -1
    config: DeciderConfig = field(default_factory=DeciderConfig)
    #: threads for decisions that evaluate scripts, and processes for jq (both limited by
    #: ``config.script_timeout_s`` and ``config.script_max_memory_bytes``)
    script_threads: int = 4
    jq_processes: int = 2
    #: workflow records kept in memory between decisions (decider.records; 0: none)
    cached_workflows: int = 10_000
    #: who may call, and how this replica calls the queue service (podium/rpc_security.py)
    rpc: RpcSecurity = field(default_factory=RpcSecurity)

    @classmethod
    def from_env(cls, env: Environ) -> DeciderSettings:
        return cls(
            config=DeciderConfig(
                workflow_offset_s=env_int(
                    env, "PODIUM_DECIDER_WORKFLOW_OFFSET_S", 30, minimum=1, maximum=86_400
                ),
                max_subworkflow_depth=env_int(
                    env, "PODIUM_DECIDER_MAX_SUBWORKFLOW_DEPTH", 32, minimum=1, maximum=1000
                ),
                script_timeout_s=env_int(
                    env, "PODIUM_DECIDER_SCRIPT_TIMEOUT_S", 4, minimum=1, maximum=60
                ),
                script_max_memory_bytes=env_int(
                    env, "PODIUM_DECIDER_SCRIPT_MAX_MEMORY_MB", 64, minimum=16, maximum=4096
                )
                * 1024
                * 1024,
            ),
            script_threads=env_int(env, "PODIUM_DECIDER_SCRIPT_THREADS", 4, minimum=1, maximum=64),
            jq_processes=env_int(env, "PODIUM_DECIDER_JQ_PROCESSES", 2, minimum=1, maximum=64),
            cached_workflows=env_int(
                env, "PODIUM_DECIDER_CACHED_WORKFLOWS", 10_000, minimum=0, maximum=10_000_000
            ),
            store=StoreConfig.from_env(env),
            queue_addresses=env_address_list(env, "PODIUM_QUEUE_ADDRESSES", ["127.0.0.1:7301"]),
            host=env_str(env, "PODIUM_DECIDER_HOST", "127.0.0.1"),
            port=env_int(env, "PODIUM_DECIDER_PORT", DEFAULT_PORT, minimum=0, maximum=65535),
            codec=rpc_limits(env),
            rpc=rpc_security(env),
            health_host=env_str(env, "PODIUM_DECIDER_HEALTH_HOST", "127.0.0.1"),
            health_port=env_int(
                env, "PODIUM_DECIDER_HEALTH_PORT", DEFAULT_HEALTH_PORT, minimum=0, maximum=65535
            ),
        )


def _param(params: Any, name: str, kind: type | tuple[type, ...] = object) -> Any:
    if not isinstance(params, Mapping) or name not in params:
        raise InvalidArgument(f"missing parameter {name!r}", field=name)
    value = params[name]
    if not isinstance(value, kind):
        raise InvalidArgument(f"parameter {name!r} has the wrong type", field=name)
    return value


def _opt(params: Any, name: str, default: Any = None) -> Any:
    return params.get(name, default) if isinstance(params, Mapping) else default


def _answer(decision: Decision, params: Any) -> dict[str, Any]:
    wf = decision.workflow
    out: dict[str, Any] = {
        "workflowId": wf.get("workflowId"),
        "status": wf.get("status"),
        "accepted": decision.accepted,
        "changedTaskIds": [t["taskId"] for t in decision.changed_tasks],
    }
    if _opt(params, "returnWorkflow"):
        out["workflow"] = wf
    return out


def handlers(shell: DeciderShell) -> dict[str, Handler]:
    """The RPC methods of the decider, bound to ``shell``."""

    def wid(p: Any) -> str:
        return str(_param(p, "workflowId", str))

    async def start_workflow(p: Any, ctx: CallContext) -> Any:
        return {"workflowId": await shell.start_workflow(_param(p, "request", Mapping))}

    async def test_workflow(p: Any, ctx: CallContext) -> Any:
        return {"workflow": await dry_run.run_with_mocks(shell, _param(p, "request", Mapping))}

    async def decide(p: Any, ctx: CallContext) -> Any:
        return _answer(await shell.decide(wid(p)), p)

    async def claim(p: Any, ctx: CallContext) -> Any:
        items = _param(p, "items", list)
        pairs = [(str(i[0]), str(i[1])) for i in items if isinstance(i, list) and len(i) == 2]
        tasks = await shell.claim(
            str(_param(p, "queue", str)), pairs, _opt(p, "workerId"), ack=bool(_opt(p, "ack", True))
        )
        return {"tasks": tasks}

    async def update_task(p: Any, ctx: CallContext) -> Any:
        result = _param(p, "result", Mapping)
        decision = await shell.update_task(result)
        answer = _answer(decision, p)
        if _opt(p, "returnTaskType"):
            # update-v2 hands the worker its next task of the same type and domain; a task
            # the update did not change (refused, late) is not named, and is read instead.
            task_id = result.get("taskId")
            for task in decision.changed_tasks:
                if task["taskId"] == task_id:
                    answer["taskType"] = task.get("taskType")
                    answer["domain"] = task.get("domain")
                    break
        return answer

    async def update_task_by_ref(p: Any, ctx: CallContext) -> Any:
        decision = await shell.update_task_by_ref(
            wid(p),
            str(_param(p, "ref", str)),
            str(_param(p, "status", str)),
            _opt(p, "output") or {},
            _opt(p, "workerId"),
        )
        return _answer(decision, p)

    async def signal_(p: Any, ctx: CallContext) -> Any:
        decision = await shell.signal(
            wid(p), str(_param(p, "status", str)), _opt(p, "output") or {}
        )
        return _answer(decision, p)

    async def terminate(p: Any, ctx: CallContext) -> Any:
        return _answer(await shell.terminate(wid(p), _opt(p, "reason")), p)

    async def pause(p: Any, ctx: CallContext) -> Any:
        return _answer(await shell.pause(wid(p)), p)

    async def resume(p: Any, ctx: CallContext) -> Any:
        return _answer(await shell.resume(wid(p)), p)

    async def retry(p: Any, ctx: CallContext) -> Any:
        decision = await shell.retry(wid(p), bool(_opt(p, "resumeSubworkflowTasks", False)))
        return _answer(decision, p)

    async def restart(p: Any, ctx: CallContext) -> Any:
        decision = await shell.restart(wid(p), bool(_opt(p, "useLatestDefinitions", False)))
        return _answer(decision, p)

    async def rerun(p: Any, ctx: CallContext) -> Any:
        return _answer(await shell.rerun(wid(p), _opt(p, "request") or {}), p)

    async def skip_task(p: Any, ctx: CallContext) -> Any:
        decision = await shell.skip_task(
            wid(p), str(_param(p, "ref", str)), _opt(p, "taskInput"), _opt(p, "taskOutput")
        )
        return _answer(decision, p)

    async def set_variables(p: Any, ctx: CallContext) -> Any:
        return _answer(await shell.set_variables(wid(p), _param(p, "variables", Mapping)), p)

    async def remove(p: Any, ctx: CallContext) -> Any:
        await shell.remove(wid(p))
        return {"workflowId": wid(p)}

    async def ping(p: Any, ctx: CallContext) -> Any:
        return "pong"

    table: dict[str, Handler] = {
        "start_workflow": start_workflow,
        "test_workflow": test_workflow,
        "decide": decide,
        "claim": claim,
        "update_task": update_task,
        "update_task_by_ref": update_task_by_ref,
        "signal": signal_,
        "terminate": terminate,
        "pause": pause,
        "resume": resume,
        "retry": retry,
        "restart": restart,
        "rerun": rerun,
        "skip_task": skip_task,
        "set_variables": set_variables,
        "remove": remove,
        "ping": ping,
    }
    return {f"decider.{name}": fn for name, fn in table.items()}


class DeciderService:
    """The shell, its store and queue connections, the RPC server and the health port."""

    def __init__(self, settings: DeciderSettings, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.telemetry = telemetry or Telemetry.off("podium-decider")
        tracer = self.telemetry.tracer
        self.store: Store | None = None
        self.queues = QueueClient(
            RpcClient(
                settings.queue_addresses,
                limits=settings.codec,
                tracer=client_tracing(tracer, spans=self.telemetry.full),
                security=settings.rpc,
            )
        )
        self.shell: DeciderShell | None = None
        self.scripts: ScriptHost | None = None
        self.rpc: RpcServer | None = None
        self.registry = CollectorRegistry()
        self.health = HealthServer(
            "decider", self.registry, host=settings.health_host, port=settings.health_port
        )
        self._stopping = False
        self.health.add_check("accepting", lambda: "stopping" if self._stopping else None)

    @property
    def address(self) -> str:
        return self.rpc.address if self.rpc else ""

    async def start(self) -> DeciderService:
        tracer = self.telemetry.tracer
        store = await open_store(self.settings.store)
        self.store = traced(store, tracer, self.settings.store, spans=self.telemetry.full)
        self.scripts = ScriptHost(
            threads=self.settings.script_threads, jq_processes=self.settings.jq_processes
        )
        self.shell = DeciderShell(
            self.store,
            self.queues,
            config=self.settings.config,
            tracer=tracer,
            scripts=self.scripts,
            cached_workflows=self.settings.cached_workflows,
            trace_each_decide=self.telemetry.full,
        )
        ShellCollector(self.shell, self.registry)
        self.rpc = RpcServer(
            handlers(self.shell),
            host=self.settings.host,
            port=self.settings.port,
            limits=self.settings.codec,
            interceptor=chain(server_tracing(tracer), rpc_metrics(self.registry, "decider")),
            security=self.settings.rpc,
        )
        await self.rpc.start()
        if self.settings.health_port >= 0:
            await self.health.start()
        return self

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop accepting calls, let in-flight decisions finish their writes, then close."""
        self._stopping = True
        if self.rpc is not None:
            await self.rpc.stop(grace_s)
        if self.shell is not None:
            await self.shell.drain(grace_s)
        await self.health.stop()
        if self.scripts is not None:
            self.scripts.close()
        await self.queues.close()
        if self.store is not None:
            await self.store.close()


class ShellCollector(Collector):
    """Exposes the shell's counters (decisions, commits, lost races) on /metrics."""

    def __init__(self, shell: DeciderShell, registry: CollectorRegistry) -> None:
        self.shell = shell
        registry.register(self)

    def collect(self) -> Iterable[Metric]:
        stats = self.shell.stats
        for name, value, doc in (
            ("podium_decider_decisions", stats.decisions, "Pure operations run"),
            ("podium_decider_commits", stats.commits, "Conditional writes that succeeded"),
            ("podium_decider_conflicts", stats.conflicts, "Writes that lost a race and retried"),
            (
                "podium_decider_record_hits",
                self.shell.records.hits,
                "Decisions that began on a record kept in memory",
            ),
            (
                "podium_decider_record_misses",
                self.shell.records.misses,
                "Decisions that began by reading the workflow",
            ),
        ):
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], value)
            yield counter


async def serve(settings: DeciderSettings, telemetry: Telemetry) -> None:
    with logs.quiet_start():
        service = await DeciderService(settings, telemetry).start()
    print(f"podium-decider listening on {service.address}", flush=True)
    await until_stopped()
    await service.stop()


def main(argv: list[str] | None = None) -> int:
    return run_main("podium-decider", argv, DeciderSettings.from_env, serve)


if __name__ == "__main__":
    sys.exit(main())
