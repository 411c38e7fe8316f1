"""Database client spans around the store, whichever backend it is (Redis or Cassandra).

The stock instrumentations do not fit: the Cassandra one ends its span when the query is
*sent* (so it measures nothing), and the Redis one would show the Lua scripts and pipelines of
one logical operation as a dozen command spans. Instead every store method (``read_workflow``,
``commit``, ...) is one CLIENT span around the awaited result, named by the method, with
``db.system.name`` (``redis`` or ``cassandra``), ``db.operation.name`` (the method),
``db.namespace`` (the keyspace, or the Redis database index) and the workflow or task id when
the call names one. The server's address is left out: every attribute costs on every span, and
a store has one address per deployment (it is in the service's configuration).

Store calls outside a traced request (a background pass with no span) make no span: a
database span is only useful as part of the operation that caused it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, cast
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from podium.store import ExecutionStore, MetadataStore, Store, StoreConfig
from podium.telemetry import names as n
from podium.telemetry.errors import mark_error

_WORKFLOW_ID_ARG = frozenset({"read_workflow", "get_workflow", "get_tasks", "remove_workflow"})
_WORKFLOW_RECORD_ARG = frozenset({"create_workflow", "commit"})
_TASK_ID_ARG = frozenset({"get_task", "add_task_logs", "get_task_logs"})


def store_attributes(config: StoreConfig) -> dict[str, Any]:
    """The attributes every span of this store carries."""
    if config.backend == "cassandra":
        return {n.DB_SYSTEM: "cassandra", n.DB_NAMESPACE: config.cassandra_keyspace}
    return {n.DB_SYSTEM: "redis", n.DB_NAMESPACE: urlsplit(config.redis_url).path.strip("/") or "0"}


class _TracedPart:
    """Proxies a MetadataStore or ExecutionStore; each coroutine method gets a span."""

    def __init__(self, inner: object, tracer: Tracer, base: dict[str, Any]) -> None:
        self._inner = inner
        self._tracer = tracer
        self._base = base

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attr):
            return attr
        wrapped = self._wrap(name, attr)
        setattr(self, name, wrapped)  # later lookups find it without __getattr__
        return wrapped

    def _wrap(
        self, name: str, method: Callable[..., Coroutine[Any, Any, Any]]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        tracer = self._tracer
        base = {**self._base, n.DB_OPERATION: name}

        async def traced(*args: Any, **kwargs: Any) -> Any:
            if not trace.get_current_span().is_recording():
                return await method(*args, **kwargs)
            attrs = dict(base)
            if args:
                _ids(name, args[0], attrs)
            span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
            try:
                return await method(*args, **kwargs)
            except BaseException as exc:
                mark_error(span, exc)
                raise
            finally:
                span.end()

        traced.__name__ = name
        return traced


def _ids(method: str, first: Any, attrs: dict[str, Any]) -> None:
    if method in _WORKFLOW_ID_ARG and isinstance(first, str):
        attrs[n.WORKFLOW_ID] = first
    elif method in _WORKFLOW_RECORD_ARG and isinstance(first, dict):
        wf_id = first.get("workflowId")
        if isinstance(wf_id, str):
            attrs[n.WORKFLOW_ID] = wf_id
    elif method in _TASK_ID_ARG and isinstance(first, str):
        attrs[n.TASK_ID] = first


class TracedStore(Store):
    """A Store whose metadata and execution calls are traced; ``close`` closes the inner one."""

    def __init__(self, inner: Store, tracer: Tracer, config: StoreConfig) -> None:
        self.inner = inner
        base = store_attributes(config)
        self.metadata = cast(MetadataStore, _TracedPart(inner.metadata, tracer, base))
        self.executions = cast(ExecutionStore, _TracedPart(inner.executions, tracer, base))
        # Audit records are filed in the background, outside any request's trace.
        self.audit = inner.audit
        # A sweeper reads the schedules every second: not worth a span each.
        self.schedules = inner.schedules

    async def close(self) -> None:
        await self.inner.close()


def traced(store: Store, tracer: Tracer | None, config: StoreConfig, spans: bool = True) -> Store:
    """``store`` with database spans, or ``store`` itself when tracing is off or ``spans`` is
    False (``PODIUM_TRACE_DETAIL=hops``)."""
    if tracer is None or not spans:
        return store
    return TracedStore(store, tracer, config)
