"""EVENT tasks and event handlers, driven with the official SDK (conductor-python).

A producer workflow's EVENT task publishes to Podium's own queue or to the real RabbitMQ broker;
the sweeper's event processor runs the handlers listening there: it starts workflows, completes
a WAIT task, skips messages whose condition is false, runs a redelivered message's action once,
and parks a message whose action keeps failing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aio_pika
import pytest
from conductor.client.configuration.configuration import Configuration
from conductor.client.http.api.event_resource_api import EventResourceApi
from conductor.client.http.api_client import ApiClient
from conductor.client.http.models.action import Action
from conductor.client.http.models.event_handler import EventHandler
from conductor.client.http.models.start_workflow import StartWorkflow
from conductor.client.http.models.start_workflow_request import (
    StartWorkflowRequest,
)
from conductor.client.http.models.task_details import TaskDetails
from conductor.client.http.models.workflow_def import WorkflowDef
from conductor.client.http.models.workflow_task import WorkflowTask
from conductor.client.orkes_clients import OrkesClients
from prometheus_client import CollectorRegistry

from podium import events
from podium.decider_client import DeciderClient
from podium.launch.rabbitmq import RabbitServer
from podium.queue_client import Message
from sweeper.events import EventMetrics, EventProcessor, EventSettings
from sweeper.server import Sweeper
from tests.gateway.conftest import RunningGateway
from tests.polling import eventually
from tests.stack import Stack

from .conftest import MAX_ATTEMPTS

pytestmark = pytest.mark.timeout(60)


class Sdk:
    """The SDK's clients on the test gateway; every call runs in a thread (the SDK blocks)."""

    def __init__(self, gateway: RunningGateway) -> None:
        cfg = Configuration(server_api_url=f"{gateway.url}/api")
        clients = OrkesClients(cfg)
        self.metadata = clients.get_metadata_client()
        self.workflows = clients.get_workflow_client()
        self.events = EventResourceApi(ApiClient(cfg))

    async def define(self, name: str, *tasks: WorkflowTask) -> None:
        definition = WorkflowDef(name=name, version=1, tasks=list(tasks))
        definition.timeout_seconds = 120
        await asyncio.to_thread(self.metadata.register_workflow_def, definition, True)

    async def handler(self, handler: EventHandler) -> None:
        await asyncio.to_thread(self.events.add_event_handler, handler)

    async def start(self, name: str, inp: dict[str, Any], correlation_id: str | None = None) -> str:
        request = StartWorkflowRequest(name=name, version=1, input=inp)
        request.correlation_id = correlation_id
        return str(await asyncio.to_thread(self.workflows.start_workflow, request))

    async def workflow(self, workflow_id: str) -> Any:
        return await asyncio.to_thread(self.workflows.get_workflow, workflow_id, True)

    async def correlated(self, name: str, correlation_id: str) -> list[Any]:
        found = await asyncio.to_thread(
            self.workflows.get_by_correlation_ids, name, [correlation_id], True, False
        )
        return list(found.get(correlation_id) or [])


@pytest.fixture
def sdk(gateway: RunningGateway) -> Sdk:
    return Sdk(gateway)


def event_task(ref: str, sink: str, inputs: dict[str, Any]) -> WorkflowTask:
    task = WorkflowTask(name=ref, task_reference_name=ref, type="EVENT", input_parameters=inputs)
    task.sink = sink
    return task


def wait_task(ref: str) -> WorkflowTask:
    return WorkflowTask(name=ref, task_reference_name=ref, type="WAIT")


def start_action(workflow: str, **inputs: Any) -> Action:
    return Action(
        action="start_workflow",
        start_workflow=StartWorkflow(
            name=workflow, version=1, input=inputs, correlation_id="${correlationId}"
        ),
    )


async def until_loaded(sweeper: Sweeper, event: str) -> None:
    """Wait until the sweeper's processor runs the handlers of ``event``."""
    processor = sweeper.events.processor
    assert processor is not None

    async def consuming() -> bool:
        return event in processor.handlers and event in processor._consumers

    await eventually(consuming, timeout_s=10, what=f"a consumer of {event}")


def messages(sweeper: Sweeper, outcome: str) -> float:
    value = sweeper.registry.get_sample_value("podium_events_messages_total", {"outcome": outcome})
    return value or 0.0


@pytest.mark.parametrize("transport", ["conductor", "amqp", "amqp_exchange"])
async def test_event_task_message_starts_a_workflow(
    sdk: Sdk, sweeper: Sweeper, tag: str, transport: str
) -> None:
    producer, target = f"producer_{tag}", f"target_{tag}"
    sink = {
        "conductor": f"conductor:orders_{tag}",
        "amqp": f"amqp:orders_{tag}",
        "amqp_exchange": f"amqp_exchange:orders_{tag}?routingKey=placed",
    }[transport]
    event = f"conductor:{producer}:orders_{tag}" if transport == "conductor" else sink
    await sdk.define(target, wait_task("hold"))
    await sdk.define(producer, event_task("publish", sink, {"orderId": "${workflow.input.id}"}))
    await sdk.handler(
        EventHandler(
            name=f"on_orders_{tag}",
            event=event,
            actions=[start_action(target, orderId="${orderId}", source="${workflowType}")],
            active=True,
        )
    )
    await until_loaded(sweeper, event)

    producer_id = await sdk.start(producer, {"id": "o-17"}, correlation_id=f"c-{tag}")
    done = await eventually(
        lambda: sdk.workflow(producer_id),
        until=lambda wf: wf.status == "COMPLETED",
        timeout_s=15,
        what="the producer completed",
    )
    output = done.tasks[0].output_data
    assert output["event_produced"] == event and output["orderId"] == "o-17"
    assert output["workflowInstanceId"] == producer_id and output["workflowType"] == producer
    [started] = await eventually(
        lambda: sdk.correlated(target, f"c-{tag}"), timeout_s=15, what="the target started"
    )
    target_wf = await sdk.workflow(started.workflow_id)
    assert target_wf.input["orderId"] == "o-17" and target_wf.input["source"] == producer
    assert target_wf.input["conductor.event.messageId"] == done.tasks[0].task_id
    assert target_wf.input["conductor.event.name"] == event


@pytest.mark.parametrize("by", ["reference", "task id"])
async def test_handler_completes_a_wait_task(sdk: Sdk, sweeper: Sweeper, tag: str, by: str) -> None:
    waiter, signaller = f"waiter_{tag}", f"signaller_{tag}"
    event = f"conductor:{waiter}:release"
    await sdk.define(waiter, wait_task("gate"))
    await sdk.define(
        signaller,
        event_task(
            "signal",
            event,
            {
                "target": "${workflow.input.target}",
                "ref": "gate",
                # not "taskId": the message carries the EVENT task's own id under that name
                "waitTaskId": "${workflow.input.waitTaskId}",
                "note": "${workflow.input.note}",
            },
        ),
    )
    note = {"note": "${note}"}
    details = (
        TaskDetails(workflow_id="${target}", task_ref_name="${ref}", output=note)
        if by == "reference"
        else TaskDetails(workflow_id="${target}", task_id="${waitTaskId}", output=note)
    )
    complete = Action(action="complete_task", complete_task=details)
    await sdk.handler(EventHandler(name=f"release_{tag}", event=event, actions=[complete],
                                   active=True))  # fmt: skip
    await until_loaded(sweeper, event)

    waiter_id = await sdk.start(waiter, {})
    waiting = await eventually(
        lambda: sdk.workflow(waiter_id),
        until=lambda wf: bool(wf.tasks) and wf.tasks[0].status == "IN_PROGRESS",
        timeout_s=15,
        what="the WAIT task in progress",
    )
    wait_id = waiting.tasks[0].task_id
    await sdk.start(signaller, {"target": waiter_id, "waitTaskId": wait_id, "note": "go on"})
    done = await eventually(
        lambda: sdk.workflow(waiter_id),
        until=lambda wf: wf.status == "COMPLETED",
        timeout_s=15,
        what="the waiting workflow completed",
    )
    gate = done.tasks[0]
    assert gate.task_id == wait_id
    assert gate.status == "COMPLETED" and gate.output_data["note"] == "go on"
    assert gate.output_data["conductor.event.name"] == event


async def test_false_condition_does_nothing(
    sdk: Sdk, sweeper: Sweeper, stack: Stack, tag: str
) -> None:
    target = f"gated_{tag}"
    event = f"conductor:gate_{tag}:in"
    await sdk.define(target, wait_task("hold"))
    await sdk.handler(
        EventHandler(
            name=f"gated_{tag}",
            event=event,
            condition="$.kind == 'go'",
            evaluator_type="javascript",
            actions=[start_action(target)],
            active=True,
        )
    )
    await until_loaded(sweeper, event)
    queue = events.internal_queue(event)
    stop = {"payload": {"kind": "stop", "correlationId": f"stop-{tag}"}, "attempts": 0}
    await stack.queues.push(queue, [Message(f"m-stop-{tag}", stop)])

    async def consumed() -> bool:
        return await stack.queues.size(queue) == 0 and not await stack.queues.contains(
            queue, f"m-stop-{tag}"
        )

    await eventually(consumed, timeout_s=10, what="the message acked")
    assert await sdk.correlated(target, f"stop-{tag}") == []
    # the same handler, live all along, acts on a message whose condition holds
    go = {"payload": {"kind": "go", "correlationId": f"go-{tag}"}, "attempts": 0}
    await stack.queues.push(queue, [Message(f"m-go-{tag}", go)])
    await eventually(
        lambda: sdk.correlated(target, f"go-{tag}"), timeout_s=10, what="the go message acted"
    )
    assert await sdk.correlated(target, f"stop-{tag}") == []


async def test_redelivered_message_runs_its_action_once_internal(
    sdk: Sdk, sweeper: Sweeper, stack: Stack, tag: str
) -> None:
    target = f"once_{tag}"
    event = f"conductor:once_{tag}:in"
    await sdk.define(target, wait_task("hold"))
    await sdk.handler(EventHandler(name=f"once_{tag}", event=event,
                                   actions=[start_action(target)], active=True))  # fmt: skip
    await until_loaded(sweeper, event)
    queue = events.internal_queue(event)
    body = {"payload": {"correlationId": f"c-{tag}"}, "attempts": 0}
    for _ in range(2):  # delivered, acked, then delivered again with the same id
        await stack.queues.push(queue, [Message(f"dup-{tag}", body)])

        async def acked() -> bool:
            return not await stack.queues.contains(queue, f"dup-{tag}")

        await eventually(acked, timeout_s=10, what="the message acked")
    assert len(await sdk.correlated(target, f"c-{tag}")) == 1


async def test_redelivered_message_runs_its_action_once_amqp(
    sdk: Sdk, sweeper: Sweeper, rabbit: RabbitServer, tag: str
) -> None:
    target = f"amqponce_{tag}"
    queue_name = f"dups_{tag}"
    event = f"amqp:{queue_name}"
    await sdk.define(target, wait_task("hold"))
    await sdk.handler(EventHandler(name=f"amqponce_{tag}", event=event,
                                   actions=[start_action(target)], active=True))  # fmt: skip
    await until_loaded(sweeper, event)
    before = messages(sweeper, "done")
    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        channel = await connection.channel()
        body = json.dumps({"correlationId": f"c-{tag}"}).encode()
        for _ in range(2):
            await channel.default_exchange.publish(
                aio_pika.Message(body, message_id=f"dup-{tag}"), routing_key=queue_name
            )

        async def both_handled() -> bool:
            declared = await channel.declare_queue(queue_name, durable=True, passive=True)
            pending = declared.declaration_result.message_count
            return messages(sweeper, "done") - before >= 2 and pending == 0

        await eventually(both_handled, timeout_s=10, what="both deliveries handled")
    assert len(await sdk.correlated(target, f"c-{tag}")) == 1


async def test_failing_action_is_retried_then_parked(
    sdk: Sdk, sweeper: Sweeper, stack: Stack, tag: str
) -> None:
    event = f"conductor:broken_{tag}:in"
    await sdk.handler(
        EventHandler(
            name=f"broken_{tag}",
            event=event,
            actions=[start_action(f"no_such_workflow_{tag}")],
            active=True,
        )
    )
    await until_loaded(sweeper, event)
    retried = messages(sweeper, "retried")
    body = {"payload": {"correlationId": f"c-{tag}"}, "attempts": 0}
    await stack.queues.push(events.internal_queue(event), [Message(f"bad-{tag}", body)])
    parked = events.parked_queue(event)
    info = await eventually(
        lambda: stack.queues.get(parked, f"bad-{tag}"), timeout_s=10, what="the message parked"
    )
    assert info.payload["attempts"] == MAX_ATTEMPTS
    assert (
        info.payload["payload"] == body["payload"] and "no_such_workflow" in info.payload["error"]
    )
    assert messages(sweeper, "retried") - retried >= MAX_ATTEMPTS - 1
    assert not await stack.queues.contains(events.internal_queue(event), f"bad-{tag}")


async def test_handlers_set_variables_fail_a_task_by_id_and_terminate(
    sdk: Sdk, sweeper: Sweeper, stack: Stack, tag: str
) -> None:
    waiter = f"ops_{tag}"
    event = f"conductor:ops_{tag}:in"
    await sdk.define(waiter, wait_task("gate"))
    fail = {
        "name": f"fail_{tag}",
        "event": event,
        "condition": "$.op == 'fail'",
        "active": True,
        "actions": [
            {"action": "update_workflow_variables",
             "update_workflow_variables": {"workflowId": "${wf}", "variables": {"why": "${why}"}}},
            {"action": "fail_task",
             "fail_task": {"taskId": "${taskId}", "output": {"by": "event"},
                           "reasonForIncompletion": "${why}"}},
        ],
    }  # fmt: skip
    terminate = {
        "name": f"terminate_{tag}",
        "event": event,
        "condition": "$.op == 'terminate'",
        "active": True,
        "actions": [
            {"action": "terminate_workflow",
             "terminate_workflow": {"workflowId": "${wf}", "terminationReason": "${why}"}}
        ],
    }  # fmt: skip
    for handler in (fail, terminate):
        await stack.store.metadata.add_event_handler(handler)
    processor = sweeper.events.processor
    assert processor is not None
    await eventually(
        lambda: _loaded(processor.handlers.get(event), 2), timeout_s=10, what="both handlers"
    )
    first, second = await sdk.start(waiter, {}), await sdk.start(waiter, {})
    gate = (await sdk.workflow(first)).tasks[0]
    queue = events.internal_queue(event)
    messages_out = [
        (f"f-{tag}", {"op": "fail", "wf": first, "taskId": gate.task_id, "why": "refused"}),
        (f"t-{tag}", {"op": "terminate", "wf": second, "why": "cancelled"}),
    ]
    for message_id, payload in messages_out:
        await stack.queues.push(queue, [Message(message_id, {"payload": payload, "attempts": 0})])
    failed = await eventually(
        lambda: sdk.workflow(first),
        until=lambda wf: wf.status == "FAILED",
        timeout_s=15,
        what="the first workflow failed",
    )
    assert failed.variables == {"why": "refused"}
    assert failed.tasks[0].status == "FAILED" and failed.tasks[0].output_data["by"] == "event"
    assert failed.tasks[0].reason_for_incompletion == "refused"
    terminated = await eventually(
        lambda: sdk.workflow(second),
        until=lambda wf: wf.status == "TERMINATED",
        timeout_s=15,
        what="the second workflow terminated",
    )
    assert terminated.reason_for_incompletion == "cancelled"
    assert not terminated.variables


async def _loaded(found: list[Any] | None, count: int) -> bool:
    return found is not None and len(found) == count


async def test_a_processor_that_dies_between_action_and_ack_starts_nothing_twice(
    sdk: Sdk, sweeper: Sweeper, stack: Stack, tag: str
) -> None:
    """One processor pops a message with a short lease, runs its action and dies before the
    ack; the lease expires, the sweeper's processor gets the message again, runs the action
    again and acks: still one workflow."""
    target = f"crash_{tag}"
    event = f"conductor:crash_{tag}:in"
    queue = events.internal_queue(event)
    await sdk.define(target, wait_task("hold"))
    handler = {
        "name": f"crash_{tag}",
        "event": event,
        "active": True,
        "actions": [{"action": "start_workflow",
                     "start_workflow": {"name": target, "correlationId": "${correlationId}"}}],
    }  # fmt: skip
    payload = {"correlationId": f"c-{tag}"}
    await stack.queues.push(queue, [Message(f"m-{tag}", {"payload": payload, "attempts": 0})])
    [popped] = await stack.queues.pop(queue, count=1, lease_ms=300, wait_ms=1000)
    dying = EventProcessor(
        EventSettings(),
        store=stack.store,
        queues=stack.queues,
        decider=DeciderClient(stack.rpc),
        broker=None,
        metrics=EventMetrics(CollectorRegistry()),
        worker_id="dying",
    )
    dying.handlers = {event: [handler]}
    assert await dying.handle(events.parse_event(event), popped.id, payload) is None
    assert len(await sdk.correlated(target, f"c-{tag}")) == 1  # done, never acked
    await stack.store.metadata.add_event_handler(handler)  # the sweeper now consumes the event

    async def acked() -> bool:
        return not await stack.queues.contains(queue, f"m-{tag}")

    await eventually(acked, timeout_s=10, what="the redelivered message acked")
    assert len(await sdk.correlated(target, f"c-{tag}")) == 1
