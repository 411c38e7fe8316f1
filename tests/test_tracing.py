"""Tracing: configuration, RPC propagation, and one workflow followed across every service.

The cluster test runs the real services as separate processes, each exporting its spans to its
own JSON-lines file, starts a workflow over HTTP, completes its tasks with a worker, stops the
cluster (SIGTERM: each service flushes its spans) and checks the collected spans: the start
request's trace covers gateway -> decider -> store and queue; every task's poll and update link
back to it; no span is orphaned or left open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from podium.cluster import ClusterSpec, LocalCluster
from podium.errors import ConfigError, NotFound
from podium.rpc import CallContext, RpcClient, RpcServer
from podium.rpc_server import chain
from podium.telemetry import TelemetryConfig, start_telemetry
from podium.telemetry.jsonl import read_spans
from podium.telemetry.propagation import parse_traceparent, traceparent
from podium.telemetry.rpc import batch_operations, client_tracing, server_tracing
from podium.telemetry.workflow import DecideSpans, untraced
from podium.types import JSON
from podium.worker import TaskRunner, Worker
from tests.polling import eventually

TYPES = ("trace_a", "trace_b", "trace_c")


# -- configuration ----------------------------------------------------------------------------


def test_tracing_is_off_unless_an_exporter_is_configured() -> None:
    assert start_telemetry(TelemetryConfig.from_env({}, "podium-decider")).tracer is None
    disabled = {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}
    assert start_telemetry(TelemetryConfig.from_env(disabled, "podium-decider")).tracer is None
    config = TelemetryConfig.from_env({"OTEL_TRACES_EXPORTER": "none"}, "podium-decider")
    assert not config.enabled


def test_standard_variables_configure_the_provider(tmp_path: Path) -> None:
    env = {
        "OTEL_TRACES_EXPORTER": "file,console",
        "PODIUM_TRACE_FILE": str(tmp_path / "{service}-{pid}.jsonl"),
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test,team=a%20b",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
    }
    config = TelemetryConfig.from_env(env, "podium-queue-service")
    assert config.service_name == "podium-queue-service"
    assert config.exporters == ("file", "console")
    telemetry = start_telemetry(config)
    try:
        assert telemetry.provider is not None
        attrs = telemetry.provider.resource.attributes
        assert attrs["service.name"] == "podium-queue-service"
        assert attrs["team"] == "a b"
        assert "0.25" in telemetry.provider.sampler.get_description()
    finally:
        telemetry.shutdown()
    named = TelemetryConfig.from_env({**env, "OTEL_SERVICE_NAME": "q1"}, "podium-queue-service")
    assert named.service_name == "q1"


def test_detail_is_one_span_per_hop_unless_full_is_asked_for(tmp_path: Path) -> None:
    env = {"OTEL_TRACES_EXPORTER": "file", "PODIUM_TRACE_FILE": str(tmp_path / "s.jsonl")}
    hops = start_telemetry(TelemetryConfig.from_env(env, "podium-decider"))
    full_env = {**env, "PODIUM_TRACE_DETAIL": "FULL"}
    full = start_telemetry(TelemetryConfig.from_env(full_env, "podium-decider"))
    try:
        assert not hops.full and full.full
    finally:
        hops.shutdown()
        full.shutdown()


def test_otlp_exporter_comes_from_the_optional_extra() -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    config = TelemetryConfig.from_env({"OTEL_TRACES_EXPORTER": "otlp"}, "podium-gateway")
    telemetry = start_telemetry(config)  # no collector needed to build it
    assert telemetry.tracer is not None
    telemetry.shutdown()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "file"}, "PODIUM_TRACE_FILE"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, "OTEL_RESOURCE_ATTRIBUTES"),
        ({"PODIUM_TRACE_DETAIL": "some"}, "PODIUM_TRACE_DETAIL"),
    ],
)
def test_a_bad_variable_is_named(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        TelemetryConfig.from_env(env, "podium-sweeper")


def test_traceparent_round_trip() -> None:
    ctx = parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03")
    assert ctx is not None and ctx.trace_flags == 3
    assert traceparent(ctx) == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03"
    for bad in (None, "", "00-xyz", "00-" + "0" * 32 + "-" + "1" * 16 + "-01"):
        assert parse_traceparent(bad) is None


def test_a_batch_names_each_operation_once_with_its_count() -> None:
    ops = [
        ["schedule", {"queue": "_deciderQueue", "id": "w1"}],
        ["push", {"queue": "t", "messages": []}],
        ["schedule", {"queue": "_deciderQueue", "id": "w2"}],
        ["ack", {"queue": "t", "ids": ["a"]}],
        "not an operation",
    ]
    assert batch_operations(ops) == ["schedule _deciderQueue x2", "push t", "ack t"]


# -- RPC propagation ----------------------------------------------------------------------------


@pytest.fixture
def exporter() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    yield exp, provider
    provider.shutdown()


async def test_rpc_spans_carry_the_context_in_the_envelope(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    spans, provider = exporter
    tracer = provider.get_tracer("test")
    seen: list[dict[str, str]] = []

    async def claim(params: Any, ctx: CallContext) -> Any:
        seen.append(dict(ctx.headers))
        return {"tasks": []}

    async def missing(params: Any, ctx: CallContext) -> Any:
        raise NotFound("no such workflow")

    handlers = {"decider.claim": claim, "decider.decide": missing}
    server = await RpcServer(handlers, interceptor=chain(server_tracing(tracer), None)).start()
    try:
        async with RpcClient([server.address], tracer=client_tracing(tracer)) as client:
            with tracer.start_as_current_span("caller"):
                await client.call("decider.claim", {"queue": "q", "items": [["t1", "w1"]]})
                with pytest.raises(NotFound):
                    await client.call("decider.decide", {"workflowId": "w1"})
    finally:
        await server.stop()
    by_name: dict[tuple[str, SpanKind], ReadableSpan] = {
        (s.name, s.kind): s for s in spans.get_finished_spans()
    }
    caller = by_name[("caller", SpanKind.INTERNAL)]
    client_span = by_name[("decider.claim", SpanKind.CLIENT)]
    server_span = by_name[("decider.claim", SpanKind.SERVER)]
    assert client_span.parent is not None and server_span.parent is not None
    assert client_span.parent.span_id == caller.context.span_id
    assert server_span.parent.span_id == client_span.context.span_id
    assert server_span.context.trace_id == caller.context.trace_id
    assert seen[0]["traceparent"].split("-")[2] == f"{client_span.context.span_id:016x}"
    for span in (client_span, server_span):
        attrs = span.attributes or {}
        assert attrs["rpc.system.name"] == "podium_msgpack"
        assert attrs["rpc.method"] == "decider.claim"
        assert attrs["conductor.task.id"] == "t1" and attrs["conductor.workflow.id"] == "w1"
    failed_client = by_name[("decider.decide", SpanKind.CLIENT)].attributes or {}
    failed_server = by_name[("decider.decide", SpanKind.SERVER)].attributes or {}
    assert failed_client["error.type"] == "NOT_FOUND"
    assert failed_server["rpc.response.status_code"] == "NOT_FOUND"
    assert "error.type" not in failed_server  # the caller's problem, not a server failure


async def test_without_client_spans_the_server_span_is_the_callers_child(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    spans, provider = exporter
    tracer = provider.get_tracer("test")

    async def claim(params: Any, ctx: CallContext) -> Any:
        return {"tasks": []}

    server = await RpcServer({"decider.claim": claim}, interceptor=server_tracing(tracer)).start()
    try:
        tracing = client_tracing(tracer, spans=False)
        async with RpcClient([server.address], tracer=tracing) as client:
            with tracer.start_as_current_span("caller"):
                await client.call("decider.claim", {"queue": "q", "items": [["t1", "w1"]]})
            await client.call("decider.claim", {"queue": "q", "items": [["t2", "w2"]]})
    finally:
        await server.stop()
    finished = spans.get_finished_spans()
    assert [s.kind for s in finished].count(SpanKind.CLIENT) == 0
    caller = next(s for s in finished if s.name == "caller")
    served = [s for s in finished if s.kind is SpanKind.SERVER]
    assert len(served) == 2
    assert served[0].parent is not None and served[0].parent.span_id == caller.context.span_id
    assert served[0].context.trace_id == caller.context.trace_id
    assert served[1].parent is None  # a call outside any span starts a trace of its own


@pytest.mark.parametrize("client_spans", [True, False])
async def test_an_unsampled_trace_is_passed_on_and_records_nothing(
    exporter: tuple[InMemorySpanExporter, TracerProvider], client_spans: bool
) -> None:
    spans, provider = exporter  # parent-based (the default sampler)
    tracer = provider.get_tracer("test")
    seen: list[dict[str, str]] = []

    async def ping(params: Any, ctx: CallContext) -> Any:
        seen.append(dict(ctx.headers))
        return "pong"

    server = await RpcServer({"ping": ping}, interceptor=server_tracing(tracer)).start()
    try:
        tracing = client_tracing(tracer, spans=client_spans)
        async with RpcClient([server.address], tracer=tracing) as client:
            with untraced():
                assert await client.call("ping") == "pong"
    finally:
        await server.stop()
    assert seen[0]["traceparent"].endswith("-00")
    assert spans.get_finished_spans() == ()


@pytest.mark.parametrize("each_in_batch", [False, True], ids=["hops", "full"])
async def test_a_decide_is_the_span_of_the_call_about_its_workflow(
    exporter: tuple[InMemorySpanExporter, TracerProvider], each_in_batch: bool
) -> None:
    """One workflow per call: the SERVER span carries the decide. Another workflow reached
    from the call: a ``decide`` span. Several in one call (a batch of claims): recorded on the
    call's span, or (``full`` detail) a ``decide`` span each."""
    spans, provider = exporter
    tracer = provider.get_tracer("test")
    decides = DecideSpans(tracer, each_in_batch=each_in_batch)

    async def update_task(params: Any, ctx: CallContext) -> Any:
        with decides.decide("update_task", "w1", "t1") as span:
            span.done({"status": "RUNNING"}, created=1)
            with decides.decide("child_status", "w0"):  # its parent, told of the change
                pass
        return {}

    async def claim(params: Any, ctx: CallContext) -> Any:
        for task_id, workflow_id in params["items"]:
            with decides.decide("claim", workflow_id, task_id):
                pass
        return {}

    async def start_workflow(params: Any, ctx: CallContext) -> Any:
        with decides.decide("start_workflow") as span:
            span.done({"status": "RUNNING"}, created=2)
        return {}

    handlers = {
        "decider.update_task": update_task,
        "decider.claim": claim,
        "decider.start_workflow": start_workflow,
    }
    server = await RpcServer(handlers, interceptor=server_tracing(tracer)).start()
    try:
        async with RpcClient([server.address], tracer=client_tracing(tracer)) as client:
            result = {"workflowInstanceId": "w1", "taskId": "t1", "status": "COMPLETED"}
            await client.call("decider.update_task", {"result": result})
            await client.call("decider.claim", {"queue": "q", "items": [["t2", "w2"]]})
            await client.call(
                "decider.claim", {"queue": "q", "items": [["t3", "w3"], ["t4", "w4"]]}
            )
            await client.call("decider.start_workflow", {"request": {"name": "x"}})
    finally:
        await server.stop()
    finished = spans.get_finished_spans()
    servers = {s.name: s for s in finished if s.kind is SpanKind.SERVER}
    by_op = {
        (s.attributes or {}).get("podium.decide.operation"): s
        for s in finished
        if s.kind is not SpanKind.CLIENT and "conductor.task.id" not in (s.attributes or {})
    }
    update = servers["decider.update_task"]
    assert (update.attributes or {})["podium.decide.operation"] == "update_task"
    assert (update.attributes or {})["podium.decide.tasks_scheduled"] == 1
    parent_decide = by_op["child_status"]
    assert parent_decide.name == "decide child_status" and parent_decide.parent is not None
    assert parent_decide.parent.span_id == update.context.span_id
    assert (by_op["start_workflow"].attributes or {})["podium.decide.tasks_scheduled"] == 2
    assert by_op["start_workflow"] is servers["decider.start_workflow"]
    claims = [s for s in finished if (s.attributes or {}).get("podium.decide.operation") == "claim"]
    one = [s for s in claims if (s.attributes or {}).get("conductor.task.id") == "t2"]
    assert [s.kind for s in one] == [SpanKind.SERVER]
    batched = [s for s in claims if s not in one]
    if each_in_batch:
        assert sorted(str((s.attributes or {})["conductor.task.id"]) for s in batched) == [
            "t3",
            "t4",
        ]
        assert {s.name for s in batched} == {"decide claim"}
        assert all(s.kind is SpanKind.INTERNAL for s in batched)
    else:
        assert [s.name for s in batched] == ["decider.claim"]
        attrs = batched[0].attributes or {}
        assert attrs["podium.decide.task_ids"] == ("t3", "t4")
        assert attrs["podium.decide.workflow_ids"] == ("w3", "w4")
        assert not [s for s in finished if s.name == "decide claim"]


async def test_a_batch_call_links_each_task_to_its_scheduler_and_notes_each_failure(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    """Claims of several tasks on one span: a ``scheduled_by`` link per task, and a failed
    claim an event, not the call's status (the other claims went through)."""
    spans, provider = exporter
    tracer = provider.get_tracer("test")
    decides = DecideSpans(tracer)
    schedulers = {
        "t1": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "t2": "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01",
    }

    async def claim(params: Any, ctx: CallContext) -> Any:
        refused = []
        for task_id, workflow_id in params["items"]:
            record = {
                "workflowId": workflow_id,
                "traceParent": "00-9af7651916cd43dd8448eb211c80319c-a7ad6b7169203331-01",
                "tasks": [{"taskId": task_id, "traceParent": schedulers.get(task_id)}],
            }
            try:
                with decides.decide("claim", workflow_id, task_id) as span:
                    span.read(record, task_id)
                    if task_id == "t3":
                        raise NotFound(f"no task {task_id}")
                    span.done({"status": "RUNNING"}, created=0)
            except NotFound:
                refused.append(task_id)
        return refused

    server = await RpcServer({"decider.claim": claim}, interceptor=server_tracing(tracer)).start()
    try:
        async with RpcClient([server.address], tracer=client_tracing(tracer)) as client:
            items = [["t1", "w1"], ["t2", "w2"], ["t3", "w3"]]
            assert await client.call("decider.claim", {"queue": "q", "items": items}) == ["t3"]
    finally:
        await server.stop()
    (call,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert call.status.status_code is StatusCode.UNSET
    linked = {
        (f"{link.context.trace_id:032x}", (link.attributes or {})["podium.link.kind"])
        for link in call.links
    }
    assert linked == {
        ("0af7651916cd43dd8448eb211c80319c", "scheduled_by"),
        ("1af7651916cd43dd8448eb211c80319c", "scheduled_by"),
    }
    (event,) = call.events
    assert event.name == "decide failed"
    assert dict(event.attributes or {}) == {
        "podium.decide.operation": "claim",
        "error.type": "NOT_FOUND",
        "conductor.workflow.id": "w3",
        "conductor.task.id": "t3",
    }
    assert (call.attributes or {})["podium.decide.task_ids"] == ("t1", "t2", "t3")
    # One workflow's status or counts would stand for all of them: none is set.
    assert "conductor.workflow.status" not in (call.attributes or {})
    assert "podium.decide.tasks_scheduled" not in (call.attributes or {})


async def test_the_worker_runs_each_task_in_a_span_its_update_continues(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    spans, provider = exporter
    scheduler = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    task = {"taskId": "t1", "workflowInstanceId": "w1", "taskType": "greet"}
    handed = [[{**task, "traceParent": scheduler}]]
    updates: list[httpx.Request] = []
    updated = asyncio.Event()

    async def server(request: httpx.Request) -> httpx.Response:  # the task API's answers
        if request.url.path.endswith("/tasks/poll/batch/greet"):
            assert "traceparent" not in request.headers  # a poll belongs to no task
            if handed:
                return httpx.Response(200, json=handed.pop())
            await updated.wait()  # a long poll that finds nothing more
            return httpx.Response(204)
        updates.append(request)
        runner.stop()
        updated.set()
        return httpx.Response(204)

    async def greet(t: JSON) -> JSON:
        return {"hello": t["taskId"]}

    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
        runner = TaskRunner(
            "http://podium.test", [Worker("greet", greet)], http=http,
            tracer=provider.get_tracer("worker"),
        )  # fmt: skip
        await asyncio.wait_for(runner.run(), 10)
    [span] = spans.get_finished_spans()
    assert span.name == "process greet" and span.kind is SpanKind.CONSUMER
    attrs = span.attributes or {}
    assert attrs["conductor.task.id"] == "t1" and attrs["conductor.workflow.id"] == "w1"
    assert [f"{link.context.span_id:016x}" for link in span.links] == [scheduler.split("-")[2]]
    [update] = updates
    sent = parse_traceparent(update.headers["traceparent"])
    assert sent is not None and sent.span_id == span.context.span_id
    assert sent.trace_id == span.context.trace_id != int(scheduler.split("-")[1], 16)


async def test_no_tracer_no_headers() -> None:
    seen: list[dict[str, str]] = []

    async def ping(params: Any, ctx: CallContext) -> Any:
        seen.append(dict(ctx.headers))
        return "pong"

    server = await RpcServer({"ping": ping}).start()
    try:
        async with RpcClient([server.address]) as client:
            assert await client.call("ping") == "pong"
    finally:
        await server.stop()
    assert seen == [{}]


# -- one workflow across the cluster -----------------------------------------------------------


@pytest.fixture(
    params=[("redis", "hops"), ("cassandra", "full")], ids=["redis-hops", "cassandra-full"]
)
async def traced_cluster(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[LocalCluster, Path]]:
    """The whole cluster as separate processes, each exporting spans to its own file; the
    store is Redis, or the session's Cassandra node (a keyspace of this test's own). With
    Redis the spans are the default ones (``PODIUM_TRACE_DETAIL=hops``), with Cassandra all
    of them (``full``: RPC client and store spans too)."""
    store, detail = request.param
    spans_dir = tmp_path / "spans"
    env = {
        "OTEL_TRACES_EXPORTER": "file",
        "PODIUM_TRACE_FILE": str(spans_dir / "{service}-{pid}.jsonl"),
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "PODIUM_TRACE_DETAIL": detail,
    }
    hosts = ""
    if store == "cassandra":
        node = request.getfixturevalue("cassandra_node")
        hosts = node.host
        env |= {**node.store_env(), "PODIUM_CASSANDRA_KEYSPACE": "traced"}
    spec = ClusterSpec(
        shards=1,
        gateways=1,
        deciders=1,
        sweepers=1,
        gateway_port=0,
        store=store,
        cassandra_hosts=hosts,
        work_dir=tmp_path / "cluster",
        extra_env=env,
    )
    cluster = await LocalCluster(spec, progress=lambda _: None).start()
    try:
        yield cluster, spans_dir
    finally:
        await cluster.stop()


async def _handler(task: JSON) -> JSON:
    return {"ref": task["referenceTaskName"]}


async def _run_workflow(cluster: LocalCluster) -> tuple[JSON, str]:
    """Start one workflow over HTTP, let a worker finish it; its record and the start's trace."""
    url = cluster.gateway_urls[0]
    tasks: list[JSON] = [{"name": t, "taskReferenceName": t, "type": "SIMPLE"} for t in TYPES]
    # A WAIT between the tasks: the sweeper must decide the workflow once it is due.
    tasks.insert(
        1,
        {
            "name": "pause",
            "taskReferenceName": "pause",
            "type": "WAIT",
            "inputParameters": {"duration": "1 seconds"},
        },
    )
    definition = {"name": "traced", "version": 1, "schemaVersion": 2, "tasks": tasks}
    task_defs = [{"name": t, "retryCount": 0, "responseTimeoutSeconds": 60} for t in TYPES]
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.post(f"{url}/metadata/taskdefs", json=task_defs)).status_code == 200
        assert (await http.put(f"{url}/metadata/workflow", json=[definition])).status_code == 200
        started = await http.post(f"{url}/workflow/traced", json={"x": 1})
        assert started.status_code == 200, started.text
        workflow_id = started.text
        runner = TaskRunner(url.removesuffix("/api"), [Worker(t, _handler) for t in TYPES])
        running = asyncio.ensure_future(runner.run())
        try:

            async def read() -> JSON:
                body: JSON = (await http.get(f"{url}/workflow/{workflow_id}")).json()
                return body

            wf = await eventually(
                read,
                until=lambda w: w["status"] != "RUNNING",
                timeout_s=90,
                what=f"workflow {workflow_id} ended",
                interval_s=0.2,
            )
        finally:
            runner.stop()
            await running
    assert wf["status"] == "COMPLETED", wf
    return wf, started.headers["traceresponse"]


def _children(spans: list[JSON]) -> dict[str, list[JSON]]:
    out: dict[str, list[JSON]] = {}
    for s in spans:
        if s["parent_id"]:
            out.setdefault(s["parent_id"], []).append(s)
    return out


def _descendants(span: JSON, children: dict[str, list[JSON]]) -> list[JSON]:
    out, todo = [], list(children.get(span["span_id"], []))
    while todo:
        s = todo.pop()
        out.append(s)
        todo.extend(children.get(s["span_id"], []))
    return out


def _one(spans: list[JSON], **match: Any) -> JSON:
    found = [s for s in spans if all(s.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [(s["service"], s["name"]) for s in found])
    return found[0]


def _links_to(span: JSON, trace_id: str) -> bool:
    return any(link["trace_id"] == trace_id for link in span["links"])


@pytest.mark.timeout(240)
async def test_one_workflow_is_followed_across_every_service(
    traced_cluster: tuple[LocalCluster, Path],
) -> None:
    cluster, spans_dir = traced_cluster
    wf, trace_response = await _run_workflow(cluster)
    await cluster.stop()  # SIGTERM: every service exports what it still holds
    spans = read_spans(sorted(spans_dir.glob("*.jsonl")))
    services = {s["service"] for s in spans}
    assert services == {"podium-gateway", "podium-decider", "podium-queue-service",
                        "podium-sweeper"}, services  # fmt: skip

    # Nothing open, nothing orphaned: every span ended, every parent was exported too.
    ids = {(s["trace_id"], s["span_id"]) for s in spans}
    assert len(ids) == len(spans)
    for s in spans:
        assert s["end_ns"] is not None and s["end_ns"] >= s["start_ns"], s
        assert s["parent_id"] is None or (s["trace_id"], s["parent_id"]) in ids, s

    # The start: stored on the workflow, answered in the start's traceresponse header.
    start_trace = wf["traceId"]
    assert len(start_trace) == 32 and trace_response.split("-")[1] == start_trace
    in_start = [s for s in spans if s["trace_id"] == start_trace]
    children = _children(in_start)
    root = _one(in_start, parent_id=None)
    assert root["service"] == "podium-gateway" and root["kind"] == "SERVER"
    assert root["name"] == "POST /api/workflow/{name}"
    assert root["attributes"]["http.response.status_code"] == 200
    full = cluster.spec.extra_env["PODIUM_TRACE_DETAIL"] == "full"
    client_spans = [s for s in spans if s["kind"] == "CLIENT"]
    store_spans = [s for s in spans if "db.system.name" in s["attributes"]]
    if full:
        call = _one(children[root["span_id"]], kind="CLIENT", name="decider.start_workflow")
    else:  # one span per hop: the decider's SERVER span is the request's child
        assert client_spans == [] and store_spans == []
        call = root
    # The decide a call asks for is that call's SERVER span (no child span doing the same).
    decide = _one(children[call["span_id"]], service="podium-decider", kind="SERVER")
    assert decide["name"] == "decider.start_workflow"
    assert decide["attributes"]["podium.decide.operation"] == "start_workflow"
    assert decide["attributes"]["conductor.workflow.id"] == wf["workflowId"]
    assert decide["attributes"]["podium.decide.tasks_scheduled"] == 1
    assert wf["traceParent"].split("-")[2] == decide["span_id"]
    below = _descendants(decide, children)
    if full:
        assert {s["service"] for s in client_spans} == services - {"podium-queue-service"}
        writes = [s for s in below if s["attributes"].get("db.operation.name") == "create_workflow"]
        assert writes and writes[0]["attributes"]["db.system.name"] == cluster.spec.store
        assert writes[0]["attributes"]["db.namespace"] == "traced"  # the keyspace
        assert writes[0]["attributes"]["conductor.workflow.id"] == wf["workflowId"]
    pushed = [s for s in below if s["name"] == f"push {TYPES[0]}"]
    if full:  # a PRODUCER span per push of a queue.batch
        assert pushed and pushed[0]["service"] == "podium-queue-service"
        assert pushed[0]["attributes"]["messaging.destination.name"] == TYPES[0]
        assert pushed[0]["kind"] == "PRODUCER"
    else:  # the batch's SERVER span names its pushes
        assert pushed == []
        batches = [s for s in below if s["name"] == "queue.batch" and s["kind"] == "SERVER"]
        assert any(
            f"push {TYPES[0]}" in s["attributes"].get("podium.queue.operations", ())
            for s in batches
        ), batches

    # Each task: its poll (claim) and its update run in their own traces, linked to the start.
    first = wf["tasks"][0]
    assert first["traceParent"] == wf["traceParent"]  # scheduled by the start
    for task in (t for t in wf["tasks"] if t["taskType"] in TYPES):
        for operation, route in (
            ("claim", "GET /api/tasks/poll/batch/{tasktype}"),
            ("update_task", "POST /api/tasks/update-v2"),
        ):
            found = [
                s
                for s in spans
                if s["attributes"].get("podium.decide.operation") == operation
                and s["attributes"].get("conductor.task.id") == task["taskId"]
            ]
            assert found, (operation, task["referenceTaskName"])
            span = found[0]
            assert span["trace_id"] != start_trace
            assert _links_to(span, start_trace), span["links"]
            scheduler = parse_traceparent(task["traceParent"])
            assert scheduler is not None
            assert any(link["span_id"] == f"{scheduler.span_id:016x}" for link in span["links"]), (
                span["links"],
                task["traceParent"],
            )
            roots = [
                s for s in spans if s["trace_id"] == span["trace_id"] and s["parent_id"] is None
            ]
            assert [r["name"] for r in roots] == [route]

    # The sweeper decided the workflow when its WAIT was due: its own trace, linked to the start.
    swept = [
        s
        for s in spans
        if s["service"] == "podium-sweeper"
        and s["name"] == "process _deciderQueue"
        and s["attributes"].get("conductor.workflow.id") == wf["workflowId"]
    ]
    assert swept and swept[0]["parent_id"] is None and swept[0]["kind"] == "CONSUMER"
    in_sweep = [s for s in spans if s["trace_id"] == swept[0]["trace_id"]]
    sweep_decide = _one(in_sweep, kind="SERVER", name="decider.decide")
    assert sweep_decide["attributes"]["podium.decide.operation"] == "decide"
    assert _links_to(sweep_decide, start_trace)
