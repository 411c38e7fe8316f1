"""Redis with ACL users, passwords and TLS: the store and the queue shards reach it by URL.

A real redis-server serves TLS alone (no plain port), asks every client for a certificate the
test CA signed, and knows one ACL user (``default`` is off). The store, the queue service and a
whole in-process stack (tests/stack.py) run over it from ``rediss://user:password@...`` URLs
whose query names the CA and the client certificate (podium/redis_conn.py). Wrong or missing
credentials and certificates fail with errors that name the URL with its password hidden.
"""

from __future__ import annotations

import asyncio
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from podium.cluster import ClusterSpec, LocalCluster
from podium.devcerts import CertPaths, make_certs
from podium.errors import ConfigError, PodiumError, Unavailable
from podium.launch.redis import RedisServer, ReplicatedRedis
from podium.queue_client import Message, QueueClient
from podium.redis_conn import connect, redact_url, tls_options
from podium.store import StoreConfig, open_store
from podium.store.redis_backend.keys import Keys
from queue_service.server import QueueService, QueueSettings
from queue_service.shards import ShardSpec, parse_shards
from tests.gateway.api_calls import poll_one, register, simple_workflow, start
from tests.polling import eventually
from tests.stack import running_stack
from tests.store.builders import task, workflow

USER = "podium"
#: Characters that must be escaped in a URL, to show the password survives the trip.
PASSWORD = "s3cret/with:odd@chars"

#: A refused login is final: redis-py would otherwise try again three times with backoff.
NO_RETRY = Retry(NoBackoff(), 0)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return make_certs(tmp_path_factory.mktemp("redis-certs"), hosts=["127.0.0.1"])


@pytest.fixture(scope="module")
def tls_redis(certs: CertPaths) -> Iterator[RedisServer]:
    """TLS only, client certificates required, one ACL user with every right."""
    server = RedisServer(
        username=USER, password=PASSWORD, tls=certs, tls_auth_clients="yes"
    ).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def secure_redis(tls_redis: RedisServer) -> RedisServer:
    """The TLS and ACL server, flushed."""
    if not tls_redis.is_running():
        tls_redis.start()
    with tls_redis.client() as r:
        r.flushall()
    return tls_redis


def with_query(url: str, **changes: str | None) -> str:
    """``url`` with query parameters set (a value) or dropped (None)."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{USER}:{password}@{parts.hostname}:{parts.port}"))


def assert_hidden(message: str) -> None:
    """The message names the server but shows no password."""
    assert "127.0.0.1" in message
    assert PASSWORD not in message and "s3cret" not in message and "wrong-pass" not in message


# -- the launcher ------------------------------------------------------------------------------


def test_the_launched_server_speaks_tls_alone_and_only_to_its_acl_user(
    secure_redis: RedisServer, certs: CertPaths
) -> None:
    url = secure_redis.url
    assert url.startswith(f"rediss://{USER}:") and "ssl_ca_certs=" in url
    # no plain-text Redis on the port: a PING in clear gets no +PONG
    with socket.create_connection((secure_redis.host, secure_redis.port), timeout=2) as s:
        s.settimeout(2)
        s.sendall(b"PING\r\n")
        try:
            reply = s.recv(16)
        except OSError:
            reply = b""
    assert not reply.startswith(b"+PONG")
    with secure_redis.client() as r:
        assert r.acl_whoami() == USER
        assert r.config_get("port") == {"port": "0"}
    # the default user is off: TLS alone is not enough
    anonymous = urlunsplit(urlsplit(url)._replace(netloc=secure_redis.address))
    with (
        redis.Redis.from_url(anonymous, socket_timeout=2, retry=NO_RETRY) as r,
        pytest.raises(redis.AuthenticationError),
    ):
        r.ping()
    # the security settings stay off the command line, in a file only the owner reads
    assert secure_redis.data_dir is not None
    conf = secure_redis.data_dir / "security.conf"
    assert conf.stat().st_mode & 0o777 == 0o600


def test_a_password_alone_sets_requirepass(tmp_path: Path) -> None:
    with RedisServer(password=PASSWORD, data_dir=tmp_path / "redis") as server:
        assert server.url.startswith("redis://:") and server.url.count("@") == 1
        with server.client() as r:
            assert r.ping() and r.acl_whoami() == "default"
        with (
            redis.Redis(server.host, server.port, socket_timeout=2, retry=NO_RETRY) as r,
            pytest.raises(redis.AuthenticationError),
        ):
            r.ping()
    assert not server.is_running()  # stopped through an authenticated SHUTDOWN


def test_defaults_stay_plain(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path / "redis")
    assert not server.secured
    assert server.url == f"redis://127.0.0.1:{server.port}/0"


# -- the store ---------------------------------------------------------------------------------


async def test_the_redis_store_works_over_tls_with_an_acl_user(secure_redis: RedisServer) -> None:
    config = StoreConfig(backend="redis", redis_url=secure_redis.url, key_prefix="podium:sec:")
    assert PASSWORD not in repr(config)
    store = await open_store(config)
    try:
        name = f"wf_{uuid.uuid4().hex[:8]}"
        definition = {
            "name": name,
            "version": 1,
            "schemaVersion": 2,
            "tasks": [{"name": f"{name}_t", "taskReferenceName": "t", "type": "SIMPLE"}],
        }
        await store.metadata.update_workflow_def(definition)
        assert (await store.metadata.get_workflow_def(name, 1))["name"] == name

        wf = workflow(name)
        a = task(wf, "a")
        assert await store.executions.create_workflow(wf, [a]) == 1
        done = {**a, "status": "COMPLETED"}
        ended = {**wf, "status": "COMPLETED"}
        assert await store.executions.commit(ended, [done], expected_version=1) == 2
        snap = await store.executions.read_workflow(wf["workflowId"])
        assert snap.version == 2 and snap.workflow["status"] == "COMPLETED"
        assert snap.workflow["tasks"] == [done]
    finally:
        await store.close()
    # the data really is on the TLS server
    with secure_redis.client() as r:
        assert r.keys("podium:sec:*")


async def test_a_wrong_password_names_the_url_without_the_password(
    secure_redis: RedisServer,
) -> None:
    url = with_password(secure_redis.url, "wrong-pass")
    with pytest.raises(Unavailable) as caught:
        await open_store(StoreConfig(backend="redis", redis_url=url))
    message = str(caught.value)
    assert "invalid username-password pair" in message
    assert f"rediss://{USER}:***@127.0.0.1:{secure_redis.port}/0" in message
    assert_hidden(message)


async def test_a_server_certificate_from_an_unknown_ca_is_refused(
    secure_redis: RedisServer,
) -> None:
    # without ssl_ca_certs the client trusts only the system's CAs, which did not sign it
    url = with_query(secure_redis.url, ssl_ca_certs=None)
    with pytest.raises(Unavailable) as caught:
        await open_store(StoreConfig(backend="redis", redis_url=url))
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert_hidden(str(caught.value))


async def test_a_client_without_a_certificate_is_refused(secure_redis: RedisServer) -> None:
    url = with_query(secure_redis.url, ssl_certfile=None, ssl_keyfile=None)
    with pytest.raises(Unavailable) as caught:
        await open_store(StoreConfig(backend="redis", redis_url=url))
    # TLS 1.3 reports the refusal after the handshake: an alert, or the reset that follows it
    assert re.search("certificate required|Connection reset", str(caught.value))
    assert_hidden(str(caught.value))


async def test_a_missing_ca_file_is_a_config_error_before_any_connection(
    secure_redis: RedisServer, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-ca.pem")
    url = with_query(secure_redis.url, ssl_ca_certs=missing)
    with pytest.raises(ConfigError) as caught:
        await open_store(StoreConfig(backend="redis", redis_url=url))
    message = str(caught.value)
    assert caught.value.data["variable"] == "PODIUM_STORE_REDIS_URL"
    assert "ssl_ca_certs" in message and "no-such-ca.pem" in message
    assert_hidden(message)


# -- the queue shards ---------------------------------------------------------------------------


async def test_the_queue_service_pushes_pops_and_acks_over_tls_with_an_acl_user(
    secure_redis: RedisServer,
) -> None:
    [spec] = parse_shards(f"s0={secure_redis.url}")
    assert PASSWORD not in repr(spec) and "***" in repr(spec)
    service = await QueueService(QueueSettings(shards=[spec], port=0)).start()
    client = QueueClient.connect([service.address])
    try:
        assert await client.push("secure", [Message("m1", b"one"), Message("m2", b"two")]) == [
            True,
            True,
        ]
        got = await client.pop("secure", count=2, lease_ms=30_000)
        assert sorted((m.id, m.payload) for m in got) == [("m1", b"one"), ("m2", b"two")]
        assert await client.ack("secure", ["m1", "m2"]) == [True, True]
        assert await client.size("secure") == 0
    finally:
        await client.close()
        await service.stop()


async def test_a_queue_shard_with_a_wrong_password_is_reported_without_it(
    secure_redis: RedisServer,
) -> None:
    spec = ShardSpec("s0", with_password(secure_redis.url, "wrong-pass"))
    service = QueueService(QueueSettings(shards=[spec], port=0))
    try:
        with pytest.raises(Unavailable) as caught:
            await service.start()
    finally:
        await service.stop()
    message = str(caught.value)
    assert "queue shard s0" in message and "invalid username-password pair" in message
    assert f"rediss://{USER}:***@" in message
    assert_hidden(message)


def test_shard_urls_with_a_query_parse_named_or_not(secure_redis: RedisServer) -> None:
    url = secure_redis.url
    named, unnamed = parse_shards(f"a={url},{url}")
    assert (named.name, named.url) == ("a", url)
    assert (unnamed.name, unnamed.url) == ("s1", url)


def test_tls_settings_are_checked_when_the_shard_is_opened(
    secure_redis: RedisServer, certs: CertPaths
) -> None:
    plain = secure_redis.url.replace("rediss://", "redis://", 1)
    with pytest.raises(ConfigError, match="need a rediss:// URL") as caught:
        QueueService(QueueSettings(shards=[ShardSpec("s0", plain)], port=0))
    assert caught.value.data["variable"] == "PODIUM_QUEUE_SHARDS"
    assert_hidden(str(caught.value))


def test_tls_options_refuse_what_redis_py_would_fail_on_later(certs: CertPaths) -> None:
    base = f"rediss://u:{quote(PASSWORD, safe='')}@127.0.0.1:6380/0"
    ok = f"{base}?ssl_ca_certs={certs.ca}&ssl_cert_reqs=required&ssl_check_hostname=false"
    assert tls_options(ok, "V") == {
        "ssl_ca_certs": str(certs.ca),
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": False,
    }
    assert tls_options("redis://127.0.0.1:6379/0", "V") is None
    assert tls_options(base, "V") == {}
    bad = {
        f"{base}?ssl_ca_cert={certs.ca}": "unknown TLS parameter",
        f"{base}?ssl_password=x": "unknown TLS parameter",
        f"{base}?ssl_keyfile={certs.client_key}": "needs ssl_certfile",
        f"{base}?ssl_cert_reqs=maybe": "ssl_cert_reqs must be",
        f"{base}?ssl_min_version=TLSv1_2": "ssl_min_version must be a number",
        f"unix:///tmp/redis.sock?ssl_ca_certs={certs.ca}": "need a rediss:// URL",
        "sentinel://u:p@mymaster/0?ssl=maybe": "ssl must be true or false",
    }
    for url, problem in bad.items():
        with pytest.raises(ConfigError, match=problem) as caught:
            tls_options(url, "V")
        assert PASSWORD not in str(caught.value)
    sentinel = tls_options(f"sentinel://u:p@mymaster/0?ssl=true&ssl_ca_certs={certs.ca}", "V")
    assert sentinel == {"ssl_ca_certs": str(certs.ca)}


def test_redact_url_hides_only_the_password() -> None:
    url = f"rediss://{USER}:{PASSWORD.replace('/', '%2F').replace('@', '%40')}@h:6380/0?a=b"
    assert redact_url(url) == f"rediss://{USER}:***@h:6380/0?a=b"
    assert redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


async def test_connect_reaches_a_password_only_server(tmp_path: Path) -> None:
    with RedisServer(password=PASSWORD, data_dir=tmp_path / "redis") as server:
        client = connect(server.url, variable="V")
        try:
            assert await client.ping()
        finally:
            await client.aclose()


# -- a whole stack ------------------------------------------------------------------------------


#: The rights docs/persistence.md suggests for the services' user: no administration commands.
LEAST_PRIVILEGE = "~* &* +@all -@dangerous"


async def test_a_workflow_completes_with_store_and_queue_on_tls_and_acl_redis(
    certs: CertPaths, tmp_path: Path
) -> None:
    """Queue service, decider and store over a TLS server, as a user barred from the
    @dangerous commands (KEYS, FLUSHALL, CONFIG, SHUTDOWN...): start, poll, claim, complete."""
    server = RedisServer(
        username=USER,
        password=PASSWORD,
        acl=LEAST_PRIVILEGE,
        tls=certs,
        tls_auth_clients="yes",
        data_dir=tmp_path / "redis",
    )
    with server, server.client() as r:
        with pytest.raises(redis.exceptions.NoPermissionError):
            r.keys("*")
        await run_one_workflow(server)
    assert not server.is_running()  # stopped without the right to SHUTDOWN


async def run_one_workflow(server: RedisServer) -> None:
    name = f"wf_{uuid.uuid4().hex[:8]}"
    task_type = f"{name}_t"
    definition = {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": task_type, "taskReferenceName": "t", "type": "SIMPLE"}],
    }
    async with running_stack(server, "podium:secstack:") as stack:
        wf_id = await stack.start(definition)
        got = await eventually(
            lambda: stack.queues.pop(task_type, count=1, lease_ms=30_000, wait_ms=200),
            timeout_s=10,
            what="the task's message",
            interval_s=0,
        )
        items = [[m.id, m.payload.decode()] for m in got]
        claimed = await stack.rpc.call(
            "decider.claim", {"queue": task_type, "items": items, "workerId": "w"}
        )
        [claimed_task] = claimed["tasks"]
        await stack.rpc.call(
            "decider.update_task",
            {
                "result": {
                    "workflowInstanceId": wf_id,
                    "taskId": claimed_task["taskId"],
                    "status": "COMPLETED",
                    "outputData": {"ok": True},
                }
            },
        )
        done = await stack.until(wf_id, lambda w: w["status"] == "COMPLETED")
        assert done["tasks"][0]["outputData"] == {"ok": True}


# -- through Redis Sentinel ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_sentinels(
    certs: CertPaths, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReplicatedRedis]:
    """A primary and its replica, TLS only with an ACL user, watched by one TLS Sentinel."""
    topology = ReplicatedRedis(
        ["s0"],
        replicas=1,
        sentinel_count=1,
        data_root=tmp_path_factory.mktemp("sentinel-tls"),
        username=USER,
        password=PASSWORD,
        tls=certs,
        tls_auth_clients="yes",
    )
    try:
        yield topology.start().wait_ready()
    finally:
        topology.cleanup()


@pytest.mark.timeout(60)
async def test_store_and_queue_reach_a_tls_primary_through_tls_sentinels_across_a_failover(
    tls_sentinels: ReplicatedRedis,
) -> None:
    url = tls_sentinels.url_of("s0")
    assert url.startswith(f"sentinel://{USER}:") and "ssl=true" in url
    sentinels = tls_sentinels.sentinel_addresses
    config = StoreConfig(
        backend="redis",
        redis_url=url,
        redis_sentinels=sentinels,
        redis_wait_replicas=1,
        key_prefix="podium:sentinel:",
    )
    assert PASSWORD not in repr(config)
    wf = workflow(f"wf_{uuid.uuid4().hex[:8]}")
    # writes are acknowledged once the replica holds them (WAIT): none is lost in the failover
    [spec] = parse_shards(f"s0={url}", sentinels=sentinels, wait_replicas=1)
    store = await open_store(config)
    service = await QueueService(QueueSettings(shards=[spec], port=0)).start()
    client = QueueClient.connect([service.address])
    try:
        assert await store.executions.create_workflow(wf, [task(wf, "a")]) == 1
        assert await client.push("sentinel", [Message("m1", b"one")]) == [True]

        before = tls_sentinels.primary_address("s0")
        with tls_sentinels.sentinels[0].client() as r:
            r.execute_command("SENTINEL", "FAILOVER", "s0")

        def moved() -> tuple[str, int] | None:
            now = tls_sentinels.agreed_primary("s0")
            return now if now != before else None

        after = await eventually(
            lambda: asyncio.to_thread(moved),
            timeout_s=30,
            what="the Sentinel's failover to the replica",
        )
        # The Sentinel turns the old primary into a replica only at its next INFO round (every
        # ten seconds); doing it now keeps the test short. The old primary then syncs from the
        # new one over TLS, as the ACL user.
        servers = {(s.host, s.port): s for _, s in tls_sentinels.servers()}
        old, new = servers[before], servers[after]
        with old.client() as r:
            r.replicaof(*after)

        # both clients find the new primary through the Sentinel, over TLS, as the ACL user
        async def committed() -> int | None:
            try:
                return await store.executions.commit(
                    {**wf, "status": "COMPLETED"}, [], expected_version=1
                )
            except Unavailable:
                return None

        assert await eventually(committed, timeout_s=15, what="a commit after the failover") == 2

        async def popped() -> list[str]:
            try:
                return [m.id for m in await client.pop("sentinel", count=1, lease_ms=30_000)]
            except PodiumError:
                return []

        assert await eventually(popped, timeout_s=15, what="the queue after failover") == ["m1"]
        # the commit is on the new primary
        direct = await open_store(StoreConfig(redis_url=new.url, key_prefix="podium:sentinel:"))
        try:
            assert (await direct.executions.read_workflow(wf["workflowId"])).version == 2
        finally:
            await direct.close()
    finally:
        await client.close()
        await service.stop()
        await store.close()


@pytest.mark.timeout(120)
async def test_a_local_cluster_of_processes_runs_on_tls_and_acl_redis(
    secure_redis: RedisServer,
) -> None:
    """Every service as its own process, the store and the queue shard on the TLS server as
    the ACL user (given as the services' environment, as a deployment gives it)."""
    spec = ClusterSpec(
        shards=1,
        gateway_port=0,
        extra_env={
            "PODIUM_QUEUE_SHARDS": f"s0={secure_redis.url}",
            "PODIUM_STORE_REDIS_URL": secure_redis.url,
        },
    )
    cluster = await LocalCluster(spec, progress=lambda _: None).start()
    try:
        async with httpx.AsyncClient(base_url=cluster.gateway_urls[0][: -len("/api")]) as http:
            name = f"wf_{uuid.uuid4().hex[:8]}"
            await register(http, simple_workflow(name, f"{name}_t"))
            wf_id = await start(http, name, {"x": 1})
            polled = await poll_one(http, f"{name}_t")
            r = await http.post(
                "/api/tasks",
                json={
                    "workflowInstanceId": wf_id,
                    "taskId": polled["taskId"],
                    "status": "COMPLETED",
                    "outputData": {"result": 42},
                },
            )
            assert r.status_code == 200, r.text

            async def finished() -> dict[str, object] | None:
                wf: dict[str, object] = (await http.get(f"/api/workflow/{wf_id}")).json()
                return wf if wf["status"] == "COMPLETED" else None

            wf = await eventually(finished, timeout_s=15, what="the workflow's completion")
            assert wf["output"] == {"result": 42}
    finally:
        await cluster.stop()
    # the workflow and its queue lived on the TLS server
    with secure_redis.client() as r:
        assert r.exists(Keys(StoreConfig().key_prefix).workflow(wf_id))
        assert r.keys("pq:*")
