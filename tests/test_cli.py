"""The command line and the services' console entry points, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.timeout(120)
def test_podium_up_demo_runs_the_workflow_and_stops_cleanly() -> None:
    done = run(["-m", "podium.cli", "up", "--demo", "--port", "0"], timeout=110)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "demo: workflow COMPLETED" in out
    for line in (
        "lookups        FORK         COMPLETED",
        "quote          HTTP         COMPLETED",
        "notify         demo_notify  COMPLETED",
        "pack__3        demo_pack    COMPLETED",
    ):
        assert line in out
    assert "'decision': 'premium'" in out and "'packed': 3" in out
    assert "result: OK" in out
    assert out.rstrip().endswith("podium: stopped")
    # every process the cluster started is gone
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["up", "--shards", "zero"], "'zero' is not a whole number"),
        (["up", "--port", "70000"], "70000 is not a port number"),
        (["up", "--store", "mongo"], "invalid choice: 'mongo'"),
        (["up", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    ],
)
def test_cli_rejects_bad_options_with_one_clear_line(args: list[str], message: str) -> None:
    done = run(["-m", "podium.cli", *args])
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_reports_an_unreachable_server_without_a_traceback() -> None:
    from podium.launch.redis import free_port

    url = f"http://127.0.0.1:{free_port()}/api"
    done = run(["-m", "podium.cli", "workflow", "get", "abc", "--url", url])
    assert done.returncode == 1
    assert "cannot reach" in done.stderr and "podium up" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://127.0.0.1:8080/api"),
        ({"CONDUCTOR_SERVER_URL": "http://conductor:8080/api"}, "http://conductor:8080/api"),
        ({"PODIUM_API_URL": "http://podium:9000/api"}, "http://podium:9000/api"),
        (
            {"PODIUM_API_URL": "http://podium:9000/api", "CONDUCTOR_SERVER_URL": "http://c/api"},
            "http://podium:9000/api",
        ),
        ({"PODIUM_API_URL": " ", "CONDUCTOR_SERVER_URL": "http://c/api"}, "http://c/api"),
    ],
)
def test_the_api_address_comes_from_the_environment_unless_given(
    env: dict[str, str], expected: str
) -> None:
    from podium.cli import build_parser

    parser = build_parser(env)
    for argv in (["status"], ["workflow", "get", "abc"], ["def", "register", "x.json"]):
        assert parser.parse_args(argv).url == expected
    given = ["workflow", "get", "abc", "--url", "http://other/api"]
    assert parser.parse_args(given).url == "http://other/api"


def test_cli_calls_the_address_in_podium_api_url() -> None:
    from podium.launch.redis import free_port

    url = f"http://127.0.0.1:{free_port()}/api"
    env = {"PODIUM_API_URL": url, "CONDUCTOR_SERVER_URL": "http://127.0.0.1:1/api"}
    done = run(["-m", "podium.cli", "workflow", "get", "abc"], env=env)
    assert done.returncode == 1
    assert f"cannot reach {url}/workflow/abc" in done.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PODIUM_QUEUE_PORT": "70000"}, "PODIUM_QUEUE_PORT=70000 is above the maximum 65535"),
        ({"PODIUM_QUEUE_PORT": "abc"}, "PODIUM_QUEUE_PORT='abc' is not an integer"),
        ({"PODIUM_QUEUE_SHARDS": "localhost:6379"}, "is not a redis:// URL"),
        ({"PODIUM_QUEUE_MAX_BATCH": "999"}, "PODIUM_QUEUE_MAX_BATCH=999 is below the minimum 1000"),
    ],
)
def test_queue_service_stops_at_start_on_bad_settings_with_one_line(
    env: dict[str, str], message: str
) -> None:
    done = run(["-m", "queue_service.server"], env=env, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_podium_certs_writes_files_that_secure_rpc(tmp_path: Path) -> None:
    """The printed variables, given to a server and a client, make a mutual-TLS link; the
    server certificate names the hosts asked for."""
    import asyncio

    from cryptography import x509

    from podium.config import rpc_security
    from podium.rpc import CallContext, RpcClient, RpcServer

    folder = tmp_path / "certs"
    done = run(["-m", "podium.cli", "certs", str(folder), "--host", "10.0.0.7", "--host", "podium"])
    assert done.returncode == 0, done.stderr
    env = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert set(env) == {"PODIUM_RPC_TLS_CERT", "PODIUM_RPC_TLS_KEY", "PODIUM_RPC_TLS_CA"}
    cert = x509.load_pem_x509_certificate(Path(env["PODIUM_RPC_TLS_CERT"]).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["podium"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]

    async def ping(params: object, ctx: CallContext) -> str:
        return "pong"

    async def call() -> object:
        security = rpc_security(env)
        server = await RpcServer({"ping": ping}, security=security).start()
        try:
            async with RpcClient([server.address], security=security) as client:
                return await client.call("ping")
        finally:
            await server.stop(grace_s=0.5)

    assert asyncio.run(call()) == "pong"
