"""The pure parts of event handling: sinks to events, ``${...}`` from a payload, conditions."""

from __future__ import annotations

from typing import Any

import pytest

from podium import events, javascript
from sweeper.events import AmqpTarget, condition_holds, resolve

PAYLOAD = {"order": {"id": "o1", "total": 12.5, "lines": [1, 2]}, "ok": True, "n": 0}


@pytest.mark.parametrize(
    ("sink", "name"),
    [
        ("conductor", "conductor:wf:ref"),
        ("conductor:q", "conductor:wf:q"),
        ("conductor:other:q", "conductor:other:q"),
        ("amqp:jobs", "amqp:jobs"),
        ("amqp_queue:jobs", "amqp_queue:jobs"),
    ],
)
def test_sinks_name_events_as_conductor_does(sink: str, name: str) -> None:
    assert events.event_of_sink(sink, "wf", "ref").name == name


@pytest.mark.parametrize("sink", [None, "", "sqs:q", "nocolon", "amqp:"])
def test_sinks_no_transport_carries_are_refused(sink: Any) -> None:
    with pytest.raises(events.SinkError):
        events.event_of_sink(sink, "wf", "ref")


def test_amqp_targets() -> None:
    assert AmqpTarget.of(events.parse_event("amqp:jobs")) == AmqpTarget("jobs")
    exchange = AmqpTarget.of(events.parse_event("amqp_exchange:ex?routingKey=k"))
    assert (exchange.exchange, exchange.exchange_type, exchange.routing_key) == ("ex", "topic", "k")
    assert exchange.queue == "podium.ex.k"
    assert AmqpTarget.of(events.parse_event("amqp_exchange:ex")).queue == "podium.ex._"
    fanout = AmqpTarget.of(events.parse_event("amqp_exchange:ex?exchangeType=fanout"))
    assert (fanout.exchange_type, fanout.routing_key) == ("fanout", "")


def test_parameters_resolve_from_the_payload() -> None:
    params = {
        "id": "${order.id}",
        "total": "${order.total}",
        "lines": "${$.order.lines}",
        "text": "order ${order.id} ok=${ok} missing=${nope}",
        "nested": [{"x": "${n}"}],
        "literal": "plain",
    }
    assert resolve(params, PAYLOAD) == {
        "id": "o1",
        "total": 12.5,
        "lines": [1, 2],
        "text": "order o1 ok=true missing=null",
        "nested": [{"x": 0}],
        "literal": "plain",
    }


@pytest.mark.parametrize(
    ("evaluator", "condition", "holds"),
    [
        (None, None, True),
        (None, "", True),
        (None, "$.order.total > 10", True),
        ("javascript", "$.order.total > 100", False),
        ("graaljs", "$.n", False),
        ("jsonpath", "$.ok", True),
        ("jsonpath", "$.missing", False),
        ("value-param", "ok", True),
        ("value-param", "n", False),
    ],
)
def test_conditions(evaluator: str | None, condition: str | None, holds: bool) -> None:
    handler = {"condition": condition, "evaluatorType": evaluator}
    assert condition_holds(handler, PAYLOAD) is holds


def test_a_condition_that_throws_or_an_unknown_evaluator_raises() -> None:
    with pytest.raises(javascript.ScriptError):
        condition_holds({"condition": "$.a.b.c"}, PAYLOAD)
    with pytest.raises(javascript.ScriptError):
        condition_holds({"condition": "x", "evaluatorType": "python"}, PAYLOAD)
