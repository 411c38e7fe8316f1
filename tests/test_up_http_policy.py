"""`podium up` lets HTTP tasks call the demo's endpoint, never the local API itself."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

import httpx
import pytest

from podium.cli import build_parser, up_spec
from podium.cluster import LocalCluster
from podium.demo import quote_service
from podium.errors import ConfigError
from podium.types import JSON
from sweeper.http_task import HttpPolicy
from tests.polling import eventually


async def test_podium_up_allows_only_the_demo_endpoint() -> None:
    args = build_parser({}).parse_args(["up"])
    assert up_spec(args).allow_http_hosts == ""
    demo = up_spec(build_parser({}).parse_args(["up", "--demo"]), demo_port=43210)
    assert demo.allow_http_hosts == "127.0.0.1:43210"
    sweeper_env = LocalCluster(demo)._env("sweeper.server", 0, 0)
    policy = HttpPolicy.from_env(sweeper_env)
    assert await policy.refusal("127.0.0.1", 43210) is None
    assert await policy.refusal("localhost", 43210) is None
    for port in (demo.gateway_port, 43211):
        refusal = await policy.refusal("127.0.0.1", port)
        assert refusal is not None and f"127.0.0.1:{port} is listed" in refusal


def http_wf(name: str, uri: str) -> JSON:
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": f"{name}_call",
                "taskReferenceName": "call",
                "type": "HTTP",
                "inputParameters": {"http_request": {"uri": uri, "method": "GET"}},
            }
        ],
    }


async def finished(http: httpx.AsyncClient, url: str, timeout_s: float = 30) -> JSON:
    async def read() -> JSON:
        wf: JSON = (await http.get(url)).json()
        return wf

    return await eventually(
        read,
        until=lambda wf: wf["status"] != "RUNNING",
        timeout_s=timeout_s,
        what=f"{url} finished",
        interval_s=0.05,
    )


@pytest.mark.timeout(150)
async def test_an_http_task_of_podium_up_cannot_call_the_api() -> None:
    args = build_parser({}).parse_args(["up", "--demo", "--shards", "1", "--port", "0"])
    async with quote_service() as quote_url, httpx.AsyncClient(timeout=30) as http:
        spec = up_spec(args, urlsplit(quote_url).port)
        cluster = await LocalCluster(
            dataclasses.replace(spec, supervise=False), progress=lambda _: None
        ).start()
        try:
            api = cluster.gateway_urls[0]
            ids = {}
            for name, uri in (("to_api", f"{api}/metadata/taskdefs"), ("to_demo", quote_url)):
                wf = http_wf(f"policy_{name}", uri)
                assert (await http.put(f"{api}/metadata/workflow", json=[wf])).status_code < 300
                started = await http.post(f"{api}/workflow/{wf['name']}", json={})
                ids[name] = started.text
            to_api = await finished(http, f"{api}/workflow/{ids['to_api']}")
            to_demo = await finished(http, f"{api}/workflow/{ids['to_demo']}")
        finally:
            await cluster.stop()
    assert to_api["status"] == "FAILED"
    (task,) = to_api["tasks"]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    reason = task["reasonForIncompletion"]
    assert reason.startswith("HTTP task refused: host '127.0.0.1'")
    assert f"127.0.0.1:{urlsplit(api).port} is listed in PODIUM_HTTP_ALLOW_HOSTS" in reason
    assert to_demo["status"] == "COMPLETED"
    assert to_demo["tasks"][0]["outputData"]["response"]["body"]["price"] == 42.5


async def test_allow_list_entries_may_name_a_port() -> None:
    policy = HttpPolicy.build(allow=["127.0.0.1:8081", "[::1]:8082", "localhost:8083"])
    assert await policy.refusal("127.0.0.1", 8081) is None
    assert await policy.refusal("127.0.0.1", 8080) is not None
    assert await policy.refusal("::1", 8082) is None
    assert await policy.refusal("::1", 8081) is not None
    assert await policy.refusal("localhost", 8083) is None
    network = HttpPolicy.build(allow=["127.0.0.0/8"])  # without a port: every port
    assert await network.refusal("127.0.0.1", 1) is None
    for bad in ("127.0.0.1:0", "127.0.0.1:65536", "host:port", "[::1]x", "a b"):
        with pytest.raises(ConfigError, match="PODIUM_HTTP_ALLOW_HOSTS has an invalid entry"):
            HttpPolicy.build(allow=[bad])
