"""Every service stops at start with one clear line on a configuration error."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from decider.server import DeciderSettings
from podium.errors import ConfigError
from podium.launch.redis import free_port
from podium.service import DEFAULT_GC_THRESHOLD, _serve_tuned, gc_threshold

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {
    "queue": ("queue_service.server", "PODIUM_QUEUE_PORT", "--queue-port"),
    "decider": ("decider.server", "PODIUM_DECIDER_PORT", "--decider-port"),
    "gateway": ("api_gateway.server", "PODIUM_GATEWAY_PORT", "--gateway-port"),
    "sweeper": ("sweeper.server", "PODIUM_SWEEPER_HEALTH_PORT", "--sweeper-health-port"),
}


def start(module: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    base = {
        **os.environ,
        "PODIUM_QUEUE_SHARDS": dead,
        "PODIUM_STORE_REDIS_URL": dead,
        "PODIUM_QUEUE_HEALTH_PORT": "0",
        "PODIUM_DECIDER_HEALTH_PORT": "0",
        "PODIUM_SWEEPER_HEALTH_PORT": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    # Besides the failure, only the start-up notice that RPC is open (no secret set here).
    lines = [
        ln
        for ln in done.stderr.splitlines()
        if " INFO " not in ln and "RPC is unauthenticated" not in ln and ln.strip()
    ]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_bad_port_names_the_variable(service: str) -> None:
    module, variable, _ = SERVICES[service]
    line = one_line(start(module, {variable: "99999"}))
    assert f"{variable}=99999 is above the maximum 65535" in line


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_short_rpc_secret_stops_the_service_without_showing_it(service: str) -> None:
    module, _, _ = SERVICES[service]
    line = one_line(start(module, {"PODIUM_RPC_SECRET": "hunter2hunter2"}))
    assert "PODIUM_RPC_SECRET is too short: at least 32 characters" in line
    assert "hunter2" not in line


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_same_setting_as_a_flag_is_checked_the_same_way(service: str) -> None:
    module, variable, flag = SERVICES[service]
    line = one_line(start(module, {}, flag, "port"))
    assert f"{variable}='port' is not an integer" in line


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_an_unknown_option_is_refused(service: str) -> None:
    module, _, _ = SERVICES[service]
    line = one_line(start(module, {}, "--no-such-option", "1"))
    assert "unknown option '--no-such-option'" in line


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_an_unreachable_redis_stops_the_service_at_start(service: str) -> None:
    module, _, _ = SERVICES[service]
    line = one_line(start(module, {}))
    assert "unavailable" in line or "not reachable" in line
    assert "Connection refused" in line


def test_an_unreachable_cassandra_stops_the_decider_at_start() -> None:
    env = {
        "PODIUM_STORE": "cassandra",
        "PODIUM_CASSANDRA_HOSTS": "127.0.0.1",
        "PODIUM_CASSANDRA_PORT": str(free_port()),
    }
    line = one_line(start("decider.server", env))
    assert "cassandra" in line.lower()


def test_a_bad_collector_threshold_names_the_variable() -> None:
    line = one_line(start("decider.server", {"PODIUM_GC_THRESHOLD": "700,10"}))
    assert "PODIUM_GC_THRESHOLD='700,10' is not three positive integers" in line


def test_the_collector_threshold_setting() -> None:
    assert gc_threshold({}) == DEFAULT_GC_THRESHOLD
    assert gc_threshold({"PODIUM_GC_THRESHOLD": "1000, 5, 5"}) == (1000, 5, 5)
    assert gc_threshold({"PODIUM_GC_THRESHOLD": "default"}) is None
    for bad in ("0,1,1", "a,b,c", "1,2,3,4"):
        with pytest.raises(ConfigError, match="PODIUM_GC_THRESHOLD"):
            gc_threshold({"PODIUM_GC_THRESHOLD": bad})


def test_a_service_runs_with_the_collector_tuned() -> None:
    seen: list[tuple[tuple[int, ...], int]] = []

    async def serve() -> None:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))

    before = gc.get_threshold()
    try:
        asyncio.run(_serve_tuned(serve(), (1234, 5, 6)))
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    [(threshold, frozen)] = seen
    assert threshold == (1234, 5, 6) and frozen > 0


def test_the_sub_workflow_nesting_limit_setting() -> None:
    assert DeciderSettings.from_env({}).config.max_subworkflow_depth == 32
    env = {"PODIUM_DECIDER_MAX_SUBWORKFLOW_DEPTH": "5"}
    assert DeciderSettings.from_env(env).config.max_subworkflow_depth == 5
    with pytest.raises(ConfigError, match="PODIUM_DECIDER_MAX_SUBWORKFLOW_DEPTH"):
        DeciderSettings.from_env({"PODIUM_DECIDER_MAX_SUBWORKFLOW_DEPTH": "0"})
