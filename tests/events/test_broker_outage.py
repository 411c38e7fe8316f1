"""An EVENT task whose broker is down is published again until the broker is back, then
completes; nothing fails and the decider is never held up."""

from __future__ import annotations

import aio_pika
import pytest

from podium.launch.rabbitmq import RabbitServer
from podium.launch.redis import RedisServer, free_port
from podium.types import JSON
from sweeper.events import EventSettings
from sweeper.server import Sweeper
from tests.polling import eventually
from tests.stack import running_stack

pytestmark = pytest.mark.timeout(90)


async def test_event_task_waits_out_a_broker_outage(tag: str) -> None:
    port = free_port()
    settings = EventSettings(
        amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/", processing=False, retry_delay_ms=100
    )
    definition = {
        "name": f"outage_{tag}",
        "version": 1,
        "tasks": [
            {"name": "publish", "taskReferenceName": "publish", "type": "EVENT",
             "sink": f"amqp:outage_{tag}", "inputParameters": {"k": "${workflow.input.k}"}},
            {"name": "after", "taskReferenceName": "after", "type": "NOOP"},
        ],
    }  # fmt: skip
    with RedisServer() as redis:
        async with running_stack(redis, "podium:outage:") as stack:
            sweeper = await Sweeper(stack.sweeper_settings(events=settings)).start()
            try:
                wf_id = await stack.start(definition, {"k": "v"})

                def claimed_again(wf: JSON) -> bool:
                    task = wf["tasks"][0]
                    return bool(task["status"] == "IN_PROGRESS" and task["pollCount"] >= 3)

                # the publish fails, and the task is claimed and tried again, still running
                await stack.until(wf_id, claimed_again, timeout_s=20)
                with RabbitServer(port=port) as rabbit:
                    done = await stack.until(
                        wf_id, lambda wf: wf["status"] == "COMPLETED", timeout_s=30
                    )
                    assert done["tasks"][0]["outputData"]["event_produced"] == f"amqp:outage_{tag}"
                    connection = await aio_pika.connect(rabbit.url)
                    async with connection:
                        channel = await connection.channel()
                        queue = await channel.declare_queue(
                            f"outage_{tag}", durable=True, passive=True
                        )
                        message = await eventually(
                            lambda: queue.get(fail=False), timeout_s=5, what="the message"
                        )
                        assert message.message_id == done["tasks"][0]["taskId"]
                        assert b'"k": "v"' in message.body
            finally:
                await sweeper.stop(grace_s=2.0)
