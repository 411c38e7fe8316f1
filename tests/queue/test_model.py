"""A hypothesis state machine that runs the queue against a simple model of it.

The engine's clock is injected, so delays and leases are exercised without waiting.
One shard, so that the order of pops is fully determined (the model sorts exactly as the
scripts score: priority, then due time, then id).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from podium.launch.redis import RedisServer
from podium.queue_client import RawMessage
from queue_service.engine import QueueEngine
from queue_service.shards import ShardSpec

Q = "model"
IDS = st.sampled_from([f"id{i}" for i in range(8)])
DELAYS = st.sampled_from([0, 0, 1, 5, 50, 1000])
PRIOS = st.integers(0, 99)


@dataclass
class Entry:
    state: str  # ready | delayed | leased
    time: int  # due (ready, delayed) or lease expiry (leased)
    rank: int  # 99 - priority
    body: bytes


class QueueModel(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        with redis.Redis.from_url(self.url) as r:
            r.flushall()
        self.now = 1_700_000_000_000
        self.loop = asyncio.new_event_loop()
        self.engine = QueueEngine([ShardSpec("s0", self.url)], notify=False, clock=lambda: self.now)
        self.model: dict[str, Entry] = {}
        self.counter = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.engine.stop())
        self.loop.close()

    def body(self) -> bytes:
        self.counter += 1
        return b"b%d" % self.counter

    def _place(self, msg_id: str, delay: int, prio: int, body: bytes) -> None:
        if delay <= 0:
            self.model[msg_id] = Entry("ready", self.now, 99 - prio, body)
        else:
            self.model[msg_id] = Entry("delayed", self.now + delay, 99 - prio, body)

    @rule(msg_id=IDS, delay=DELAYS, prio=PRIOS, if_absent=st.booleans())
    def push(self, msg_id: str, delay: int, prio: int, if_absent: bool) -> None:
        body = self.body()
        got = self.run(
            self.engine.push(Q, [RawMessage(msg_id, body, delay, prio)], if_absent=if_absent)
        )
        existing = self.model.get(msg_id)
        assert got == [existing is None]
        if existing is None or (not if_absent and existing.state != "leased"):
            self._place(msg_id, delay, prio, body)

    @rule(count=st.integers(1, 5), lease=st.sampled_from([1, 10, 100, 5000]))
    def pop(self, count: int, lease: int) -> None:
        got = self.run(self.engine.pop(Q, count, lease))
        for e in self.model.values():
            if e.state == "leased" and e.time < self.now:
                e.state, e.time = "ready", self.now
            elif e.state == "delayed" and e.time <= self.now:
                e.state = "ready"
        ready = sorted(
            (e.rank * 10**13 + e.time, i) for i, e in self.model.items() if e.state == "ready"
        )
        expected = [i for _, i in ready[:count]]
        assert [m[0] for m in got] == expected
        for msg_id, body, prio in got:
            e = self.model[msg_id]
            assert body == e.body and prio == 99 - e.rank
            e.state, e.time = "leased", self.now + lease

    @rule(msg_id=IDS)
    def ack(self, msg_id: str) -> None:
        (ok,) = self.run(self.engine.ack(Q, [msg_id]))
        e = self.model.get(msg_id)
        assert ok == (e is not None and e.state == "leased")
        if ok:
            del self.model[msg_id]

    @rule(msg_id=IDS)
    def remove(self, msg_id: str) -> None:
        (ok,) = self.run(self.engine.remove(Q, [msg_id]))
        assert ok == (msg_id in self.model)
        self.model.pop(msg_id, None)

    @rule(msg_id=IDS, lease=st.sampled_from([0, 0, 20, 3000]))
    def set_unack_timeout(self, msg_id: str, lease: int) -> None:
        ok = self.run(self.engine.set_unack_timeout(Q, msg_id, lease))
        e = self.model.get(msg_id)
        assert ok == (e is not None and e.state == "leased")
        if e is not None and ok:
            if lease == 0:
                e.state, e.time = "ready", self.now
            else:
                e.time = self.now + lease

    @rule(msg_id=IDS, delay=DELAYS, prio=PRIOS)
    def postpone(self, msg_id: str, delay: int, prio: int) -> None:
        ok = self.run(self.engine.postpone(Q, msg_id, delay, prio))
        e = self.model.get(msg_id)
        assert ok == (e is not None)
        if e is not None:
            self._place(msg_id, delay, prio, e.body)

    @rule(msg_id=IDS, delay=DELAYS, prio=PRIOS, fence=st.integers(0, 60))
    def schedule(self, msg_id: str, delay: int, prio: int, fence: int) -> None:
        applied = self.run(self.engine.schedule(Q, msg_id, delay, fence, prio))
        e = self.model.get(msg_id)
        stored = e.body[1:] if e is not None else b""
        expect = not (stored.isdigit() and fence < int(stored))
        assert applied == expect
        if not applied:
            return
        body = b"b%d" % fence
        if e is not None and e.state == "leased":
            e.time, e.rank, e.body = self.now + delay, 99 - prio, body
        else:
            self._place(msg_id, delay, prio, body)

    @rule(ms=st.sampled_from([1, 3, 20, 200, 2000]))
    def advance(self, ms: int) -> None:
        self.now += ms

    @rule(msg_id=IDS)
    def get(self, msg_id: str) -> None:
        info = self.run(self.engine.get(Q, msg_id))
        e = self.model.get(msg_id)
        if e is None:
            assert info is None
        else:
            assert info is not None
            assert (info.state, info.time_ms, info.priority, info.payload) == (
                e.state,
                e.time,
                99 - e.rank,
                e.body,
            )

    @invariant()
    def sizes_agree(self) -> None:
        details = self.run(self.engine.details(Q))["s0"]
        states = [e.state for e in self.model.values()]
        assert details == {
            "ready": states.count("ready"),
            "delayed": states.count("delayed"),
            "leased": states.count("leased"),
        }


def test_queue_behaves_like_its_model(redis_server: RedisServer) -> None:
    QueueModel.url = redis_server.url
    run_state_machine_as_test(
        QueueModel,
        settings=settings(max_examples=60, stateful_step_count=40, deadline=None),
    )
