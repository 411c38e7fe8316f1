"""Events: EVENT tasks published to their sink, and event handlers run on what arrives.

Two parts, both run by every sweeper replica (so they scale with the sweepers):

* :class:`EventPublisher` sends an EVENT task's message: to Podium's own queue service for
  ``conductor`` events, to RabbitMQ for ``amqp`` / ``amqp_queue`` / ``amqp_exchange`` ones.
  The sweeper publishes first and completes the task after, so a crash in between publishes
  again (at-least-once); a publish that fails leaves the task leased and it is tried again.
* :class:`EventProcessor` consumes the event of every ACTIVE handler (the queue service: pop
  with a lease, ack after; RabbitMQ: a consumer with manual acks), evaluates each handler's
  condition on the message's payload and runs its actions through the decider. A message is
  acknowledged only after every action of every matching handler is done. A failing message
  is tried again after ``retry_delay_ms``, up to ``max_attempts`` tries; then it is parked on
  the queue-service queue ``_events_parked:<event>`` (logged and counted), never dropped.

Redelivered messages do not repeat an action's effect: a workflow start carries the
idempotency key ``event:<handler>:<message id>:<action index>`` (``RETURN_EXISTING``), and
completing, failing or terminating something already finished changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import aio_pika
import jsonpath
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from prometheus_client import CollectorRegistry, Counter

from podium import events, javascript
from podium.aio import OwnedTasks
from podium.clone import clone
from podium.config import Environ, env_bool, env_float, env_int
from podium.decider_client import DeciderClient
from podium.definitions.expressions import find_expressions
from podium.errors import Conflict, PodiumError
from podium.queue_client import Message, QueueClient, Received
from podium.store import Store
from podium.types import JSON

log = logging.getLogger("podium.events")

#: The RabbitMQ header that counts the tries of a message put back after a failure.
ATTEMPTS_HEADER = "x-podium-attempts"


@dataclass(frozen=True)
class EventSettings:
    """How events are published and processed (``PODIUM_AMQP_URL``, ``PODIUM_EVENTS_*``)."""

    #: ``amqp://user:password@host:port/vhost``; None: AMQP sinks and handlers are refused.
    amqp_url: str | None = None
    #: whether this sweeper runs the event handlers (EVENT tasks are published regardless)
    processing: bool = True
    #: tries of a message before it is parked
    max_attempts: int = 5
    retry_delay_ms: int = 1000
    #: how often the handlers are read again
    refresh_s: float = 2.0
    #: messages of one event in flight at once in one sweeper
    prefetch: int = 32
    lease_ms: int = 30_000

    @classmethod
    def from_env(cls, env: Environ) -> EventSettings:
        url = (env.get("PODIUM_AMQP_URL") or "").strip() or None
        return cls(
            amqp_url=url,
            processing=env_bool(env, "PODIUM_EVENTS_PROCESSING", True),
            max_attempts=env_int(env, "PODIUM_EVENTS_MAX_ATTEMPTS", 5, minimum=1),
            retry_delay_ms=env_int(env, "PODIUM_EVENTS_RETRY_DELAY_MS", 1000, minimum=0),
            refresh_s=env_float(env, "PODIUM_EVENTS_REFRESH_S", 2.0, minimum=0.05),
            prefetch=env_int(env, "PODIUM_EVENTS_PREFETCH", 32, minimum=1, maximum=1000),
            lease_ms=env_int(env, "PODIUM_EVENTS_LEASE_MS", 30_000, minimum=100),
        )


class EventMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "podium_events_published", "EVENT task messages published", ["type"], registry=registry
        )
        self.messages = Counter(
            "podium_events_messages",
            "Event messages processed, by outcome (done, retried, parked)",
            ["outcome"],
            registry=registry,
        )
        self.actions = Counter(
            "podium_events_actions",
            "Event handler actions run, by action and outcome",
            ["action", "outcome"],
            registry=registry,
        )


# -- RabbitMQ -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmqpTarget:
    """Where an AMQP event lives: a queue, or an exchange with a routing key (then consumed
    through the durable queue ``podium.<exchange>.<routing key>`` bound to it, characters
    AMQP refuses in a queue name written ``_``)."""

    queue: str
    exchange: str | None = None
    exchange_type: str = "topic"
    routing_key: str = ""

    @classmethod
    def of(cls, event: events.Event) -> AmqpTarget:
        name, _, query = event.queue.partition("?")
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        if event.type == events.AMQP_EXCHANGE:
            kind = params.get("exchangeType", "topic")
            key = params.get("routingKey", "#" if kind == "topic" else "")
            queue = re.sub(r"[^A-Za-z0-9_.:-]", "_", f"podium.{name}.{key}")
            return cls(queue, name, kind, key)
        return cls(name)


class AmqpBroker:
    """One robust connection to RabbitMQ: publishes with publisher confirms, and runs
    consumers with manual acks (each on its own channel, ``prefetch`` messages in flight)."""

    def __init__(self, url: str, prefetch: int) -> None:
        self.url = url
        self.prefetch = prefetch
        self._connection: AbstractRobustConnection | None = None
        self._publishing: AbstractChannel | None = None
        self._lock = asyncio.Lock()
        self._declared: set[str] = set()

    async def _channel(self) -> AbstractChannel:
        async with self._lock:
            if self._connection is None:
                self._connection = await aio_pika.connect_robust(self.url)
            if self._publishing is None or self._publishing.is_closed:
                self._publishing = await self._connection.channel(publisher_confirms=True)
                self._declared.clear()
            return self._publishing

    async def _declare(self, channel: AbstractChannel, target: AmqpTarget) -> AbstractQueue:
        queue = await channel.declare_queue(target.queue, durable=True)
        if target.exchange is not None:
            exchange = await channel.declare_exchange(
                target.exchange, target.exchange_type, durable=True
            )
            await queue.bind(exchange, routing_key=target.routing_key)
        return queue

    async def publish(
        self, event: events.Event, message_id: str, body: bytes, attempts: int = 0
    ) -> None:
        """Publish one persistent message, waiting for the broker's confirm."""
        target = AmqpTarget.of(event)
        channel = await self._channel()
        message = aio_pika.Message(
            body,
            message_id=message_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={ATTEMPTS_HEADER: attempts} if attempts else None,
        )
        if target.exchange is None:
            if target.queue not in self._declared:
                await channel.declare_queue(target.queue, durable=True)
                self._declared.add(target.queue)
            await channel.default_exchange.publish(message, routing_key=target.queue)
            return
        if target.exchange not in self._declared:
            await self._declare(channel, target)
            self._declared.add(target.exchange)
        exchange = await channel.get_exchange(target.exchange, ensure=False)
        await exchange.publish(message, routing_key=target.routing_key)

    async def consume(
        self,
        event: events.Event,
        on_message: Callable[[AbstractIncomingMessage], Awaitable[None]],
    ) -> Callable[[], Awaitable[None]]:
        """Start consuming ``event``; returns what stops the consumer (and its channel)."""
        await self._channel()
        assert self._connection is not None
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await self._declare(channel, AmqpTarget.of(event))
        tag = await queue.consume(on_message, no_ack=False)

        async def stop() -> None:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
            with contextlib.suppress(Exception):
                await channel.close()

        return stop

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


# -- publishing -----------------------------------------------------------------------------------


class EventPublisher:
    """Publishes messages to events: the queue service for ``conductor`` ones, RabbitMQ for the
    others (refused when no ``amqp_url`` is set)."""

    def __init__(self, queues: QueueClient, broker: AmqpBroker | None) -> None:
        self.queues = queues
        self.broker = broker

    async def publish(
        self, event: events.Event, message_id: str, payload: JSON, attempts: int = 0
    ) -> None:
        if event.is_internal:
            body = {"payload": payload, "attempts": attempts}
            await self.queues.push(events.internal_queue(event), [Message(message_id, body)])
            return
        if self.broker is None:
            raise events.SinkError(
                f"event {event.name} needs RabbitMQ, and PODIUM_AMQP_URL is unset"
            )
        await self.broker.publish(event, message_id, json.dumps(payload).encode(), attempts)


def event_task_result(task: Mapping[str, Any]) -> tuple[events.Event, JSON]:
    """The event an EVENT task publishes to and the TaskResult that completes it after."""
    output = dict(task.get("outputData") or {})
    event = events.parse_event(str(output.get("event_produced")))
    async_complete = (task.get("inputData") or {}).get("asyncComplete") is True
    result = {
        "workflowInstanceId": task["workflowInstanceId"],
        "taskId": task["taskId"],
        "status": "IN_PROGRESS" if async_complete else "COMPLETED",
        "outputData": output,
    }
    return event, result


# -- handlers -------------------------------------------------------------------------------------


def resolve(value: Any, payload: Any) -> Any:
    """``${...}`` in every string of ``value`` read from the message payload (JSONPath, as
    Conductor's ``ParametersUtils.replace``): a whole-string expression keeps its value's type,
    one inside text is written into it. A missing path reads as null."""
    if isinstance(value, str):
        spans = find_expressions(value)
        if not spans:
            return value
        if len(spans) == 1 and spans[0] == (0, len(value)):
            return _read(payload, value[2:-1])
        parts, last = [], 0
        for start, end in spans:
            parts += [value[last:start], _text(_read(payload, value[start + 2 : end - 1]))]
            last = end
        return "".join(parts) + value[last:]
    if isinstance(value, Mapping):
        return {k: resolve(v, payload) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, payload) for v in value]
    return value


def _text(value: Any) -> str:
    """A value written into a string: JSON's spelling for null, booleans, lists and maps."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | list | dict):
        return json.dumps(value)
    return str(value)


def _read(payload: Any, path: str) -> Any:
    path = path.strip()
    expr = path if path.startswith("$") else f"$.{path}"
    try:
        found = jsonpath.findall(expr, payload)
    except jsonpath.JSONPathError:
        return None
    return clone(found[0]) if len(found) == 1 else (clone(found) if found else None)


def condition_holds(handler: Mapping[str, Any], payload: Any) -> bool:
    """Whether the handler's ``condition`` holds for ``payload`` (no condition: it does).

    ``evaluatorType`` ``javascript`` (the default) or ``graaljs`` runs the condition with ``$``
    bound to the payload; ``jsonpath`` reads the path and holds when it finds a truthy value;
    ``value-param`` reads the payload's key of that name. Numbers hold when above zero, as in
    Conductor's ``evalBool``. Raises :class:`javascript.ScriptError` for a script that fails.
    """
    condition = handler.get("condition")
    if condition is None or str(condition).strip() == "":
        return True
    evaluator = str(handler.get("evaluatorType") or "javascript")
    if evaluator in ("javascript", "graaljs"):
        return javascript.eval_bool(javascript.eval_js(str(condition), payload))
    if evaluator == "jsonpath":
        found = _read(payload, str(condition))
        return javascript.eval_bool(found) if isinstance(found, bool | int | float) else bool(found)
    if evaluator == "value-param":
        value = payload.get(str(condition)) if isinstance(payload, Mapping) else None
        return javascript.eval_bool(value) if isinstance(value, bool | int | float) else bool(value)
    raise javascript.ScriptError(f"There is no evaluator registered for evaluatorType: {evaluator}")


class ActionFailed(Exception):
    """An action could not be done now; the message is tried again later."""


class EventProcessor:
    """Consumes the events of the active handlers and runs their actions (see the module)."""

    def __init__(
        self,
        settings: EventSettings,
        *,
        store: Store,
        queues: QueueClient,
        decider: DeciderClient,
        broker: AmqpBroker | None,
        metrics: EventMetrics,
        worker_id: str,
    ) -> None:
        self.settings = settings
        self.store = store
        self.queues = queues
        self.decider = decider
        self.broker = broker
        self.metrics = metrics
        self.worker_id = worker_id
        #: the active handlers, by event name
        self.handlers: dict[str, list[JSON]] = {}
        self._consumers: dict[str, Callable[[], Awaitable[None]]] = {}
        self._tasks = OwnedTasks("events", log)
        self._stopping = asyncio.Event()
        self._scripts = asyncio.Semaphore(4)

    # -- the handlers and their consumers

    async def refresh(self) -> None:
        """Read the active handlers again; start consumers of new events, stop those of events
        no active handler listens to any more."""
        by_event: dict[str, list[JSON]] = {}
        for handler in await self.store.metadata.list_event_handlers():
            if handler.get("active") and handler.get("event"):
                by_event.setdefault(str(handler["event"]), []).append(handler)
        self.handlers = by_event
        for name in list(self._consumers):
            if name not in by_event:
                stop = self._consumers.pop(name)
                await stop()
        for name in by_event:
            if name not in self._consumers:
                try:
                    event = events.parse_event(name)
                    self._consumers[name] = await self._start_consumer(event)
                except events.SinkError as exc:
                    log.warning("event handlers of %s are not run: %s", name, exc)
                    self._consumers[name] = _nothing
                except Exception as exc:
                    # the broker unreachable: tried again on the next refresh
                    log.warning("cannot consume %s now: %s", name, exc)

    async def _start_consumer(self, event: events.Event) -> Callable[[], Awaitable[None]]:
        if event.is_internal:
            task = self._tasks.spawn(self._consume_internal(event), f"events-{event.name}")

            async def stop() -> None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

            return stop
        if self.broker is None:
            raise events.SinkError("PODIUM_AMQP_URL is unset")

        async def on_message(message: AbstractIncomingMessage) -> None:
            await self._on_amqp(event, message)

        return await self.broker.consume(event, on_message)

    async def stop(self) -> None:
        self._stopping.set()
        for stop in self._consumers.values():
            await stop()
        self._consumers.clear()
        await self._tasks.cancel_all()

    # -- the queue service

    async def _consume_internal(self, event: events.Event) -> None:
        queue = events.internal_queue(event)
        while not self._stopping.is_set():
            try:
                got = await self.queues.pop(
                    queue,
                    count=self.settings.prefetch,
                    lease_ms=self.settings.lease_ms,
                    wait_ms=1000,
                )
                await asyncio.gather(*(self._internal_one(event, queue, m) for m in got))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("consuming %s failed; going on", queue)
                await asyncio.sleep(0.5)

    async def _internal_one(self, event: events.Event, queue: str, msg: Received) -> None:
        body = msg.payload if isinstance(msg.payload, Mapping) else {"payload": msg.payload}
        payload, attempts = body.get("payload"), int(body.get("attempts") or 0)
        error = await self.handle(event, msg.id, payload)
        if error is None:
            await self.queues.ack(queue, [msg.id])
            return
        if attempts + 1 < self.settings.max_attempts:
            self.metrics.messages.labels("retried").inc()
            log.warning("event %s message %s failed (try %d): %s", event.name, msg.id,
                        attempts + 1, error)  # fmt: skip
            # back to queued, then re-timed with the count of tries in its body
            await self.queues.nack(queue, msg.id)
            retry = {"payload": payload, "attempts": attempts + 1}
            await self.queues.push(
                queue, [Message(msg.id, retry, delay_ms=self.settings.retry_delay_ms)]
            )
            return
        await self._park(event, msg.id, payload, attempts + 1, error)
        await self.queues.ack(queue, [msg.id])

    # -- RabbitMQ

    async def _on_amqp(self, event: events.Event, message: AbstractIncomingMessage) -> None:
        message_id = message.message_id or hashlib.sha256(message.body).hexdigest()
        counted = (message.headers or {}).get(ATTEMPTS_HEADER)
        attempts = counted if isinstance(counted, int) else 0
        try:
            payload = json.loads(message.body)
        except ValueError as exc:
            await self._park(event, message_id, message.body.decode(errors="replace"), 1, str(exc))
            await message.ack()
            return
        error = await self.handle(event, message_id, payload)
        if error is None:
            await message.ack()
            return
        try:
            if attempts + 1 < self.settings.max_attempts:
                self.metrics.messages.labels("retried").inc()
                log.warning("event %s message %s failed (try %d): %s", event.name, message_id,
                            attempts + 1, error)  # fmt: skip
                await self._pause(self.settings.retry_delay_ms / 1000)
                assert self.broker is not None
                # a copy with the count of tries goes back before the original is acked
                await self.broker.publish(event, message_id, message.body, attempts + 1)
            else:
                await self._park(event, message_id, payload, attempts + 1, error)
            await message.ack()
        except Exception as exc:
            log.warning("event %s message %s goes back to RabbitMQ: %s", event.name, message_id,
                        exc)  # fmt: skip
            await message.nack(requeue=True)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- both

    async def _park(
        self, event: events.Event, message_id: str, payload: Any, attempts: int, error: str
    ) -> None:
        """Keep a message whose actions kept failing on ``_events_parked:<event>``."""
        self.metrics.messages.labels("parked").inc()
        log.error("event %s message %s parked after %d tries: %s", event.name, message_id,
                  attempts, error)  # fmt: skip
        body = {"event": event.name, "payload": payload, "attempts": attempts, "error": error}
        await self.queues.push(events.parked_queue(event), [Message(message_id, body)])

    async def handle(self, event: events.Event, message_id: str, payload: Any) -> str | None:
        """Run the actions of every active handler of ``event`` whose condition holds; None when
        all are done, else why one failed (the message is then tried again)."""
        for handler in self.handlers.get(event.name, []):
            name = str(handler.get("name"))
            condition = handler.get("condition")
            try:
                if condition is None or str(condition).strip() == "":
                    holds = True
                else:  # V8 blocks: off the event loop, a few at a time
                    async with self._scripts:
                        holds = await asyncio.to_thread(condition_holds, handler, payload)
            except Exception as exc:  # a script error, or a payload it cannot read
                return f"the condition of handler {name} failed: {exc}"
            if not holds:
                continue
            for index, action in enumerate(handler.get("actions") or []):
                kind = str(action.get("action"))
                try:
                    await self.run_action(event, name, message_id, index, action, payload)
                except Exception as exc:  # refused, unreachable, or parameters of a wrong shape
                    self.metrics.actions.labels(kind, "failed").inc()
                    return f"handler {name} action {index} ({kind}): {exc}"
                self.metrics.actions.labels(kind, "done").inc()
        self.metrics.messages.labels("done").inc()
        return None

    async def run_action(
        self,
        event: events.Event,
        handler: str,
        message_id: str,
        index: int,
        action: Mapping[str, Any],
        payload: Any,
    ) -> None:
        """One action, its parameters resolved from the payload (Conductor's
        ``SimpleActionProcessor``, plus terminate_workflow and update_workflow_variables)."""
        kind = action.get("action")
        marks = {"conductor.event.messageId": message_id, "conductor.event.name": event.name}
        params = resolve(action.get(str(kind)) or {}, payload)
        if kind == "start_workflow":
            inp = dict(params.get("input") or {}) | marks
            request: JSON = {
                "name": params.get("name"),
                "input": inp,
                "correlationId": params.get("correlationId"),
                "taskToDomain": params.get("taskToDomain") or {},
                "idempotencyKey": f"event:{handler}:{message_id}:{index}",
                "idempotencyStrategy": "RETURN_EXISTING",
            }
            if params.get("version") not in (None, ""):
                request["version"] = int(params["version"])
            await self.decider.start_workflow(request)
        elif kind in ("complete_task", "fail_task"):
            await self._update_task(params, "COMPLETED" if kind == "complete_task" else "FAILED",
                                    marks)  # fmt: skip
        elif kind == "terminate_workflow":
            with contextlib.suppress(Conflict):  # already finished
                await self.decider.terminate(
                    _required(params, "workflowId"), params.get("terminationReason")
                )
        elif kind == "update_workflow_variables":
            await self.decider.set_variables(
                _required(params, "workflowId"), dict(params.get("variables") or {})
            )
        else:
            raise ActionFailed(f"unknown action {kind!r}")

    async def _update_task(self, params: JSON, status: str, marks: JSON) -> None:
        output = dict(params.get("output") or {}) | marks
        workflow_id = params.get("workflowId")
        task_id = params.get("taskId")
        if task_id:
            if not workflow_id:
                workflow_id = (await self.store.executions.get_task(str(task_id)))[
                    "workflowInstanceId"
                ]
            result: JSON = {
                "workflowInstanceId": str(workflow_id),
                "taskId": str(task_id),
                "status": status,
                "outputData": output,
                "workerId": self.worker_id,
            }
            if params.get("reasonForIncompletion"):
                result["reasonForIncompletion"] = params["reasonForIncompletion"]
            await self.decider.update_task(result)
            return
        ref = _required(params, "taskRefName")
        await self.decider.update_task_by_ref(
            _required(params, "workflowId"), ref, status, output, self.worker_id
        )


def _required(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if value is None or value == "":
        raise ActionFailed(f"{key} is missing or resolved to nothing")
    return str(value)


async def _nothing() -> None:
    return None


# -- the sweeper's part ---------------------------------------------------------------------------


class SweeperEvents:
    """What a sweeper does with events: it publishes the EVENT tasks of the queue ``EVENT``
    (:meth:`publish_once`, a loop body) and, unless processing is off, keeps the consumers of
    the active handlers' events going (:meth:`refresh_once`, another)."""

    def __init__(
        self,
        settings: EventSettings,
        queues: QueueClient,
        decider: DeciderClient,
        registry: CollectorRegistry,
        *,
        worker_id: str,
        inflight: OwnedTasks,
        batch: int,
        lease_ms: int,
    ) -> None:
        self.settings = settings
        self.queues = queues
        self.decider = decider
        self.metrics = EventMetrics(registry)
        self.worker_id = worker_id
        self.batch = batch
        self.lease_ms = lease_ms
        self._inflight = inflight
        self.broker = (
            AmqpBroker(settings.amqp_url, settings.prefetch) if settings.amqp_url else None
        )
        self.publisher = EventPublisher(queues, self.broker)
        self.processor: EventProcessor | None = None

    def open(self, store: Store) -> None:
        if self.settings.processing:
            self.processor = EventProcessor(
                self.settings,
                store=store,
                queues=self.queues,
                decider=self.decider,
                broker=self.broker,
                metrics=self.metrics,
                worker_id=self.worker_id,
            )

    async def publish_once(self) -> None:
        """Pop EVENT tasks, claim them (their messages stay leased), publish each, then report
        it done. A publish that fails leaves the message leased a little longer, then the task
        is claimed and published again."""
        queue = events.EVENT_TASK_QUEUE
        got = await self.queues.pop(queue, count=self.batch, lease_ms=self.lease_ms, wait_ms=1000)
        if not got:
            return
        items = [(m.id, str(m.payload.decode() if isinstance(m.payload, bytes) else m.payload))
                 for m in got]  # fmt: skip
        for task in await self.decider.claim(queue, items, self.worker_id, ack=False):
            self._inflight.spawn(self._publish(task), f"event-{task.get('taskId')}")

    async def _publish(self, task: JSON) -> None:
        queue, task_id = events.EVENT_TASK_QUEUE, str(task["taskId"])
        try:
            event, result = event_task_result(task)
            await self.publisher.publish(event, task_id, dict(result["outputData"]))
        except events.SinkError as exc:
            result = {
                "workflowInstanceId": task["workflowInstanceId"],
                "taskId": task_id,
                "status": "FAILED",
                "reasonForIncompletion": str(exc),
                "outputData": dict(task.get("outputData") or {}),
            }
        except Exception as exc:
            log.warning("EVENT task %s not published, tried again: %s", task_id, exc)
            with contextlib.suppress(Exception):
                await self.queues.set_unack_timeout(queue, task_id, self.settings.retry_delay_ms)
            return
        else:
            self.metrics.published.labels(event.type).inc()
        try:
            await self.decider.update_task(result)
            if result["status"] == "IN_PROGRESS":  # asyncComplete: completed from outside
                await self.queues.ack(queue, [task_id])
        except PodiumError as exc:
            log.warning("EVENT task %s could not be reported: %s", task_id, exc.message)

    async def refresh_once(self) -> None:
        if self.processor is not None:
            await self.processor.refresh()

    async def close(self) -> None:
        if self.processor is not None:
            await self.processor.stop()
        if self.broker is not None:
            await self.broker.close()
