"""Event names, sinks and queues, shared by the decider (EVENT tasks) and the sweeper.

An event is named ``<type>:<queue>`` as in Conductor. Two types reach a transport here:

* ``conductor`` events travel on Podium's own queue service, on the queue
  ``_events:conductor:<workflow>:<queue>`` (:func:`internal_queue`).
* ``amqp`` / ``amqp_queue`` events travel on a RabbitMQ queue of that name, and ``amqp_exchange``
  events on an exchange (Conductor's AMQP module names them so); see sweeper/events.py.

An EVENT task's ``sink`` names where it publishes: ``conductor`` alone is the event
``conductor:<workflow name>:<task reference name>``, ``conductor:<queue>`` is
``conductor:<workflow name>:<queue>``, and any other ``<type>:<queue>`` is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The event type carried by Podium's queue service.
CONDUCTOR = "conductor"
#: Event types carried by RabbitMQ (``amqp`` and ``amqp_queue`` are one thing: a queue).
AMQP_QUEUE_TYPES = frozenset({"amqp", "amqp_queue"})
AMQP_EXCHANGE = "amqp_exchange"
SUPPORTED_TYPES = frozenset({CONDUCTOR, AMQP_EXCHANGE, *AMQP_QUEUE_TYPES})

#: Prefix of the queue-service queues that hold ``conductor`` events.
INTERNAL_PREFIX = "_events:"
#: The queue-service queue of EVENT tasks waiting to be published by a sweeper.
EVENT_TASK_QUEUE = "EVENT"
#: Prefix of the queue-service queues of messages whose actions kept failing (one per event).
PARKED_PREFIX = "_events_parked:"


class SinkError(ValueError):
    """A sink or event name Podium cannot publish to or consume from."""


@dataclass(frozen=True)
class Event:
    """A parsed event name: its ``type`` and the ``queue`` part after the first colon."""

    type: str
    queue: str

    @property
    def name(self) -> str:
        return f"{self.type}:{self.queue}"

    @property
    def is_internal(self) -> bool:
        return self.type == CONDUCTOR


def parse_event(name: str) -> Event:
    """``<type>:<queue>`` split at its first colon; :class:`SinkError` for other shapes and
    for types no transport carries."""
    kind, sep, queue = str(name).partition(":")
    if not sep or not kind or not queue:
        raise SinkError(f"event {name!r} is not of the form <type>:<queue>")
    if kind not in SUPPORTED_TYPES:
        known = ", ".join(sorted(SUPPORTED_TYPES))
        raise SinkError(f"event type {kind!r} of {name!r} is not supported (supported: {known})")
    return Event(kind, queue)


def event_of_sink(sink: object, workflow_name: str, task_ref: str) -> Event:
    """The event an EVENT task with ``sink`` publishes (Conductor's ``Event.getQueueName``)."""
    if sink is None or str(sink).strip() == "":
        raise SinkError("EVENT task has no sink")
    text = str(sink).strip()
    if text == CONDUCTOR:
        return Event(CONDUCTOR, f"{workflow_name}:{task_ref}")
    event = parse_event(text)
    if event.is_internal and ":" not in event.queue:
        return Event(CONDUCTOR, f"{workflow_name}:{event.queue}")
    return event


def internal_queue(event: Event | str) -> str:
    """The queue-service queue of a ``conductor`` event."""
    name = event.name if isinstance(event, Event) else event
    return f"{INTERNAL_PREFIX}{name}"


def parked_queue(event: Event | str) -> str:
    """The queue-service queue where messages of ``event`` are parked after their last try."""
    name = event.name if isinstance(event, Event) else event
    return f"{PARKED_PREFIX}{name}"
