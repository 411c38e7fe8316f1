"""The pipelined Redis connection of the hot paths (podium/redis_pipe.py), on a real server."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from podium.launch.redis import RedisServer
from podium.redis_pipe import PipedScript, RedisPipe

pytestmark = pytest.mark.timeout(60)

NAME = "pipe-under-test"
COUNTER = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_server.url, client_name=NAME)
    yield c
    await c.aclose()


@pytest.fixture
async def pipe(client: aioredis.Redis) -> AsyncIterator[RedisPipe]:
    p = RedisPipe(client, timeout_s=2.0)
    yield p
    await p.aclose()


async def test_calls_of_many_coroutines_share_one_connection_in_order(
    redis_server: RedisServer, pipe: RedisPipe
) -> None:
    replies = await asyncio.gather(*(pipe.execute("INCR", "n") for _ in range(500)))
    assert replies == list(range(1, 501))  # each caller got its own reply
    assert await pipe.execute("GET", "n") == b"500"
    assert await pipe.execute("GET", "absent") is None
    lister = aioredis.Redis.from_url(redis_server.url)
    try:
        ours = [c for c in await lister.client_list() if c["name"] == NAME]
    finally:
        await lister.aclose()
    assert len(ours) == 1  # the pipe opened one connection (named by its redis-py client)


async def test_an_error_reply_fails_its_call_alone(pipe: RedisPipe) -> None:
    ok = pipe.execute("SET", "k", "v")
    bad = pipe.execute("INCR", "k")  # not an integer
    after = pipe.execute("GET", "k")
    results = await asyncio.gather(ok, bad, after, return_exceptions=True)
    assert results[0] == b"OK"
    assert isinstance(results[1], ResponseError) and "not an integer" in str(results[1])
    assert results[2] == b"v"


async def test_a_script_unknown_to_the_server_is_loaded_and_run(
    client: aioredis.Redis, pipe: RedisPipe
) -> None:
    script = PipedScript(client, pipe, COUNTER)
    assert await script(keys=["c"], args=[2]) == 2
    await client.script_flush()  # as after a restart: the server forgot every script
    assert await script(keys=["c"], args=[3]) == 5


async def test_a_lost_server_fails_the_waiting_calls_and_the_next_call_reconnects(
    redis_server: RedisServer, pipe: RedisPipe
) -> None:
    assert await pipe.execute("SET", "k", "v") == b"OK"
    redis_server.kill()
    try:
        with pytest.raises(RedisConnectionError):
            await pipe.execute("GET", "k")
    finally:
        redis_server.start()
    assert await pipe.execute("PING") == b"PONG"  # a new connection, on first use


async def test_a_demoted_primary_ends_the_connection(
    client: aioredis.Redis, pipe: RedisPipe, redis_pool: list[RedisServer]
) -> None:
    other = redis_pool[1]
    await pipe.execute("SET", "k", "v")
    await client.replicaof(other.host, other.port)
    try:
        with pytest.raises(ReadOnlyError):
            await pipe.execute("SET", "k", "w")
        first = pipe._protocol
        assert first is not None and first.lost is not None  # dropped, not reused
    finally:
        await client.replicaof("NO", "ONE")
    assert await pipe.execute("SET", "k", "x") == b"OK"
    assert pipe._protocol is not first


async def test_a_server_that_does_not_answer_fails_the_call_within_the_timeout(
    redis_server: RedisServer, client: aioredis.Redis
) -> None:
    pipe = RedisPipe(client, timeout_s=0.3)
    try:
        assert await pipe.execute("PING") == b"PONG"
        pid = redis_server.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(RedisTimeoutError):
                await pipe.execute("PING")
        finally:
            os.kill(pid, signal.SIGCONT)
        assert await pipe.execute("PING") == b"PONG"
    finally:
        await pipe.aclose()


async def test_a_closed_pipe_refuses_calls(client: aioredis.Redis) -> None:
    pipe = RedisPipe(client, timeout_s=1.0)
    await pipe.execute("PING")
    await pipe.aclose()
    with pytest.raises(RedisConnectionError):
        await pipe.execute("PING")
