"""deploy/compose/replicated.yaml: replicated Redis groups that agree with the code and each other.

The start script itself runs for real in tests/test_redis_start_script.py; here the compose
override is read as compose merges it over docker-compose.yaml, and each setting is checked
against what the code reads and what the Sentinels monitor.
"""

from __future__ import annotations

import re
import subprocess
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


# -- Kubernetes: deploy/k8s/overlays/replicated-redis --------------------------------------------


def _overlay() -> list[dict[str, Any]]:
    from tests.test_deploy import K8S_OVERLAYS, kustomize_build

    return kustomize_build(K8S_OVERLAYS / "replicated-redis")


def _one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _start_env(sts: dict[str, Any], ordinal: int, tmp_path: Path) -> dict[str, str]:
    """What the pod's start command hands start-replicated.sh, run for real with a stub."""
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["sh", "-c"]
    stub = tmp_path / "stub.sh"
    stub.write_text('env | grep ^REDIS_; printf "ARGS=%s\\n" "$*"\n')
    script = container["args"][0].replace("/podium/start-replicated.sh", str(stub))
    name = f"{sts['metadata']['name']}-{ordinal}"
    env = {"PATH": "/usr/bin:/bin", "HOSTNAME": name}
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                         timeout=10, check=True)  # fmt: skip
    return dict(line.split("=", 1) for line in out.stdout.splitlines())


def test_the_overlay_pairs_pods_into_groups_the_sentinels_watch(tmp_path: Path) -> None:
    objs = _overlay()
    queue = QueueSettings.from_env(_one(objs, "ConfigMap", "podium-queue-service")["data"])
    shards = [s.name for s in queue.shards]
    assert all(s.url == f"sentinel://{s.name}/0" and s.wait_replicas == 1 for s in queue.shards)
    redis_sts = _one(objs, "StatefulSet", "podium-queue-redis")
    assert redis_sts["spec"]["replicas"] == 2 * len(shards)

    sentinel_sts = _one(objs, "StatefulSet", "podium-sentinel")
    n = sentinel_sts["spec"]["replicas"]
    pods = {f"podium-sentinel-{i}.podium-sentinel" for i in range(n)}
    assert {h for h, _ in queue.shards[0].sentinels} == pods
    config = sentinel_sts["spec"]["template"]["spec"]["containers"][0]["args"][0]
    monitors = {m[0]: (m[1], int(m[3])) for m in
                re.findall(r"sentinel monitor (\S+) (\S+) (\d+) (\d+)", config)}  # fmt: skip
    assert set(monitors) == {*shards, "store"}
    assert all(quorum == n // 2 + 1 for _, quorum in monitors.values())

    for ordinal in range(2 * len(shards)):
        env = _start_env(redis_sts, ordinal, tmp_path)
        group = f"s{ordinal // 2}"
        first = f"podium-queue-redis-{ordinal // 2 * 2}.podium-queue-redis"
        assert env["REDIS_GROUP"] == group
        assert env["REDIS_SELF"] == f"podium-queue-redis-{ordinal}.podium-queue-redis:6379"
        assert env["REDIS_FIRST_PRIMARY"] == f"{first}:6379"
        assert monitors[group][0] == first  # the Sentinels start from the first primary
        assert (
            f"--replica-announce-ip podium-queue-redis-{ordinal}.podium-queue-redis" in env["ARGS"]
        )
        assert "--appendonly yes" in env["ARGS"] and "noeviction" in env["ARGS"]
        assert {h.split(":")[0] for h in env["REDIS_SENTINELS"].split(",")} == pods

    store_sts = _one(objs, "StatefulSet", "podium-store-redis")
    assert store_sts["spec"]["replicas"] == 2
    for ordinal in (0, 1):
        env = _start_env(store_sts, ordinal, tmp_path)
        assert env["REDIS_GROUP"] == "store"
        assert env["REDIS_FIRST_PRIMARY"] == f"{monitors['store'][0]}:6379"
    store = StoreConfig.from_env(_one(objs, "ConfigMap", "podium-store")["data"])
    assert store.redis_wait_replicas == 1
    assert {h for h, _ in store.redis_sentinels} == pods

    # the script the pods run is the repository's, mounted from its ConfigMap
    script = (Path(__file__).resolve().parents[1] / "deploy/redis/start-replicated.sh").read_text()
    assert _one(objs, "ConfigMap", "podium-redis-start")["data"]["start-replicated.sh"] == script
    for sts in (redis_sts, store_sts):
        volumes = sts["spec"]["template"]["spec"]["volumes"]
        assert {"name": "start", "configMap": {"name": "podium-redis-start"}} in volumes
