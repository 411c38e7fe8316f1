"""deploy/compose/replicated.yaml: replicated Redis groups that agree with the code and each other.

The start script itself runs for real in tests/test_redis_start_script.py; here the compose
override is read as compose merges it over docker-compose.yaml, and each setting is checked
against what the code reads and what the Sentinels monitor.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from podium.store import StoreConfig
from queue_service.server import QueueSettings

COMPOSE = Path(__file__).resolve().parents[1] / "deploy" / "compose"


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((COMPOSE / name).read_text())
    assert isinstance(data, dict)
    return data


def _merged_env(service: str) -> dict[str, str]:
    base, over = _load("docker-compose.yaml"), _load("replicated.yaml")
    env = {**base["services"][service].get("environment", {})}
    env.update(over["services"].get(service, {}).get("environment", {}))
    return {k: str(v) for k, v in env.items() if "${" not in str(v)}


def _sentinel_config() -> str:
    command = _load("replicated.yaml")["services"]["podium-sentinel-0"]["command"]
    return str(command[-1])


def test_every_redis_group_has_a_replica_started_by_the_script() -> None:
    services = _load("replicated.yaml")["services"]
    data = {n: s for n, s in services.items() if s.get("environment", {}).get("REDIS_GROUP")}
    groups: dict[str, list[str]] = {}
    for name, service in data.items():
        env = service["environment"]
        assert service["entrypoint"] == ["sh", "/podium/start-replicated.sh"]
        assert any(v.endswith(":/podium/start-replicated.sh:ro") for v in service["volumes"])
        assert env["REDIS_SELF"] == f"{name}:6379", name
        command = service["command"]
        assert command[command.index("--replica-announce-ip") + 1] == name
        assert command[command.index("--appendonly") + 1] == "yes"
        assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
        groups.setdefault(env["REDIS_GROUP"], []).append(name)
        first = env["REDIS_FIRST_PRIMARY"].split(":")[0]
        assert first in data and data[first]["environment"]["REDIS_GROUP"] == env["REDIS_GROUP"]
    assert set(groups) == {"s0", "s1", "store"}
    assert all(len(members) == 2 for members in groups.values())
    script = Path(__file__).resolve().parents[1] / "deploy" / "redis" / "start-replicated.sh"
    assert script.is_file()


def test_the_sentinels_watch_every_group_at_its_first_primary() -> None:
    config = _sentinel_config()
    assert "sentinel resolve-hostnames yes" in config
    monitors = re.findall(r"sentinel monitor (\S+) (\S+) (\d+) (\d+)", config)
    services = _load("replicated.yaml")["services"]
    sentinels = [n for n in services if n.startswith("podium-sentinel-")]
    assert len(sentinels) == 3
    for group, host, port, quorum in monitors:
        assert int(quorum) == len(sentinels) // 2 + 1
        env = services[host]["environment"]
        assert env["REDIS_GROUP"] == group and env["REDIS_FIRST_PRIMARY"] == f"{host}:{port}"
    assert {m[0] for m in monitors} == {"s0", "s1", "store"}


def test_services_reach_the_groups_through_the_sentinels_and_wait_for_a_replica() -> None:
    services = _load("replicated.yaml")["services"]
    sentinel_hosts = {n for n in services if n.startswith("podium-sentinel-")}
    queue = QueueSettings.from_env(_merged_env("podium-queue-service"))
    assert [s.name for s in queue.shards] == ["s0", "s1"]
    for shard in queue.shards:
        assert shard.url == f"sentinel://{shard.name}/0"
        assert {h for h, _ in shard.sentinels} == sentinel_hosts
        assert shard.wait_replicas == 1
    for name in ("podium-decider", "podium-gateway", "podium-sweeper"):
        store = StoreConfig.from_env(_merged_env(name))
        assert store.redis_url == "sentinel://store/0"
        assert {h for h, _ in store.redis_sentinels} == sentinel_hosts
        assert store.redis_wait_replicas == 1
