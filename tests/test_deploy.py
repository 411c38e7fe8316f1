"""Offline checks of ``deploy/``: Kubernetes manifests, the compose file, systemd units, the image.

Nothing here needs a cluster or a Docker engine. Every figure is compared with the code rather
than with a copy of it: ports with the services' ``DEFAULT_*`` constants, variable names with
what each service's settings actually read (recorded while they read an empty environment),
values by building each service's settings from the environment a deployment gives it, probe
paths with what the health server and the gateway serve, drain times with the services'
``stop`` grace periods, and commands with ``[project.scripts]``.
"""

from __future__ import annotations

import functools
import inspect
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import CollectorRegistry

from api_gateway import admin
from api_gateway import settings as gateway_settings
from api_gateway.auth import PUBLIC_PATHS
from api_gateway.server import create_app, uvicorn_config
from api_gateway.settings import GatewaySettings, parse_keys
from decider import server as decider_server
from decider.server import DeciderService, DeciderSettings
from podium.cli import build_parser
from podium.config import env_bool
from podium.health import HealthServer
from podium.store.config import StoreConfig
from queue_service import server as queue_server
from queue_service.server import QueueService, QueueSettings
from queue_service.shards import parse_shards
from sweeper import server as sweeper_server
from sweeper.server import Sweeper, SweeperSettings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S_BASE = DEPLOY / "k8s" / "base"
K8S_OVERLAYS = DEPLOY / "k8s" / "overlays"
COMPOSE = DEPLOY / "compose" / "docker-compose.yaml"
SYSTEMD = DEPLOY / "systemd"
DOCKERFILE = DEPLOY / "Dockerfile"
SOURCE_PACKAGES = ("podium", "queue_service", "decider", "api_gateway", "sweeper")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS: dict[str, str] = PYPROJECT["project"]["scripts"]
#: A stand-in for secrets the deploy files leave to the operator.
TEST_AUTH_KEYS = "ops:0123456789abcdef"
TEST_RPC_SECRET = "0123456789abcdef" * 4
#: The stand-in for each secret variable (others get TEST_AUTH_KEYS).
OPERATOR_VALUES = {"PODIUM_AUTH_KEYS": TEST_AUTH_KEYS, "PODIUM_RPC_SECRET": TEST_RPC_SECRET}
RPC_SERVICES = ("podium-queue-service", "podium-decider", "podium-gateway", "podium-sweeper")
VAR_RE = re.compile(r"\bPODIUM_[A-Z0-9_]*[A-Z0-9]\b")

Env = dict[str, str]


# -- what the code reads, serves and waits for ------------------------------------------------


class RecordingEnv(Mapping[str, str]):
    """An empty environment that notes every variable name looked up in it."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.names.add(key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.names.add(key)
        return default

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.names.add(key)
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def variables_read(from_env: Callable[[Any], Any]) -> frozenset[str]:
    env = RecordingEnv()
    from_env(env)
    return frozenset(env.names)


def health_server_paths() -> frozenset[str]:
    """The paths the services' health port answers (anything but a 404)."""
    server = HealthServer("probe", CollectorRegistry())
    candidates = ("/health", "/ready", "/metrics", "/livez", "/readyz", "/healthz", "/")
    return frozenset(p for p in candidates if not server._route(p)[0].startswith("404"))


def stop_grace(stop: Callable[..., Any]) -> float:
    return float(inspect.signature(stop).parameters["grace_s"].default)


def gateway_grace() -> float:
    settings = GatewaySettings()
    return float(uvicorn_config(create_app(settings), settings).timeout_graceful_shutdown or 0)


@dataclass(frozen=True)
class Service:
    """One of the four services, as the code defines it."""

    name: str  # Deployment, compose service, systemd template and console script
    settings: Callable[[Any], Any]  # XSettings.from_env
    #: the main port (RPC, or the gateway's HTTP): variable and code default
    main_port: tuple[str, int] | None
    #: the /health, /ready, /metrics port: variable and code default (None: no default)
    health_port: tuple[str, int | None]
    #: variables that must be 0.0.0.0 for probes and other pods to reach the service
    bind_vars: tuple[str, ...]
    #: seconds the service may spend draining after SIGTERM
    drain_s: float

    @property
    def reads(self) -> frozenset[str]:
        return variables_read(self.settings)


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service(
            "podium-queue-service",
            QueueSettings.from_env,
            ("PODIUM_QUEUE_PORT", queue_server.DEFAULT_PORT),
            ("PODIUM_QUEUE_HEALTH_PORT", queue_server.DEFAULT_HEALTH_PORT),
            ("PODIUM_QUEUE_HOST", "PODIUM_QUEUE_HEALTH_HOST"),
            stop_grace(QueueService.stop),
        ),
        Service(
            "podium-decider",
            DeciderSettings.from_env,
            ("PODIUM_DECIDER_PORT", decider_server.DEFAULT_PORT),
            ("PODIUM_DECIDER_HEALTH_PORT", decider_server.DEFAULT_HEALTH_PORT),
            ("PODIUM_DECIDER_HOST", "PODIUM_DECIDER_HEALTH_HOST"),
            stop_grace(DeciderService.stop),
        ),
        Service(
            "podium-gateway",
            GatewaySettings.from_env,
            ("PODIUM_GATEWAY_PORT", gateway_settings.DEFAULT_PORT),
            # The gateway's health port is optional and has no default; deployments set it.
            ("PODIUM_GATEWAY_HEALTH_PORT", None),
            ("PODIUM_GATEWAY_HOST",),
            gateway_grace(),
        ),
        Service(
            "podium-sweeper",
            SweeperSettings.from_env,
            None,
            ("PODIUM_SWEEPER_HEALTH_PORT", sweeper_server.DEFAULT_HEALTH_PORT),
            ("PODIUM_SWEEPER_HEALTH_HOST",),
            stop_grace(Sweeper.stop),
        ),
    )
}
MIGRATE_READS = variables_read(StoreConfig.from_env)
MIGRATE_COMMAND = ["podium", "db", "migrate"]


def served_paths(svc: Service, env: Mapping[str, str], port: int) -> frozenset[str]:
    """What ``svc`` answers on ``port`` given its environment ``env`` (empty: not served)."""
    health_var, health_default = svc.health_port
    health = int(env.get(health_var) or health_default or -1)
    if port == health:
        return health_server_paths()
    if svc.name == "podium-gateway" and svc.main_port is not None:
        main_var, main_default = svc.main_port
        if port == int(env.get(main_var) or main_default):
            # The gateway's own health endpoints; a probe cannot carry a token.
            return frozenset(e.path for e in admin.HEALTH) & PUBLIC_PATHS
    return frozenset()


def check_env(svc: Service, env: Mapping[str, str], where: str) -> None:
    """Names, ports and binds of one service's environment, then its settings must build."""
    unread = sorted(k for k in env if k.startswith("PODIUM_") and k not in svc.reads)
    assert not unread, f"{where}: {svc.name} does not read {unread}"
    for var, default in filter(None, (svc.main_port, svc.health_port)):
        if default is not None and var in env:
            assert int(env[var]) == default, f"{where}: {var}={env[var]}, the code says {default}"
    for var in svc.bind_vars:
        assert env.get(var) == "0.0.0.0", f"{where}: {svc.name} needs {var}=0.0.0.0"
    assert env.get(svc.health_port[0]), f"{where}: {svc.name} must set {svc.health_port[0]}"
    svc.settings(env)  # raises ConfigError on a bad value


# -- the source-wide variable list --------------------------------------------------------------


def source_variables() -> frozenset[str]:
    names: set[str] = set()
    for package in SOURCE_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            names.update(VAR_RE.findall(path.read_text()))
    return frozenset(names)


def deploy_text_files() -> list[Path]:
    files = [
        p
        for p in DEPLOY.rglob("*")
        if p.is_file()
        and p.suffix not in (".xml",)
        and "cassandra" not in p.relative_to(DEPLOY).parts
    ]
    return [*files, ROOT / "docs" / "deploy.md"]


def test_every_podium_variable_in_deploy_files_is_read_by_the_code() -> None:
    known = source_variables()
    assert {"PODIUM_QUEUE_SHARDS", "PODIUM_STORE", "PODIUM_AUTH_KEYS"} <= known
    problems = []
    for path in deploy_text_files():
        for name in sorted(set(VAR_RE.findall(path.read_text()))):
            if name not in known:
                problems.append(f"{path.relative_to(ROOT)}: {name}")
    assert not problems, f"variables no code reads: {problems}"


def test_the_recorded_variable_sets_are_plausible() -> None:
    """Guards the recording trick: each service reads its ports and the store where it has one."""
    for svc in SERVICES.values():
        for var, _ in filter(None, (svc.main_port, svc.health_port)):
            assert var in svc.reads, (svc.name, var)
        assert set(svc.bind_vars) <= svc.reads
    assert "PODIUM_QUEUE_SHARDS" in SERVICES["podium-queue-service"].reads
    assert "PODIUM_STORE" not in SERVICES["podium-queue-service"].reads
    for name in ("podium-decider", "podium-gateway", "podium-sweeper"):
        assert {"PODIUM_STORE", "PODIUM_CASSANDRA_HOSTS"} <= SERVICES[name].reads
    assert "PODIUM_AUTH_KEYS" in SERVICES["podium-gateway"].reads
    assert "PODIUM_CASSANDRA_MIGRATE" in MIGRATE_READS
    assert health_server_paths() >= {"/health", "/ready", "/metrics"}


# -- Kubernetes ----------------------------------------------------------------------------------


@functools.cache
def _parse(path: Path) -> tuple[dict[str, Any], ...]:
    with path.open() as f:
        return tuple(d for d in yaml.safe_load_all(f) if d is not None)


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    """Every document of a (multi-document) YAML file; parsed once, never to be modified."""
    return list(_parse(path))


def k8s_files() -> list[Path]:
    return sorted(p for p in (DEPLOY / "k8s").rglob("*.yaml") if p.name != "kustomization.yaml")


def k8s_objects(files: list[Path] | None = None) -> list[dict[str, Any]]:
    return [d for p in (files or k8s_files()) for d in load_yaml_docs(p)]


def base_objects() -> list[dict[str, Any]]:
    """The objects of the base, with the Secret the operator creates (from its example)."""
    return k8s_objects(sorted(K8S_BASE.glob("*.yaml")))


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def find_all(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def workloads(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "Job")]


def main_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    container: dict[str, Any] = containers[0]
    return container


def container_env(container: dict[str, Any], objs: list[dict[str, Any]]) -> Env:
    """The environment a container gets: envFrom ConfigMaps and Secrets, then env entries."""
    env: Env = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(find(objs, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            secret = find(objs, "Secret", source["secretRef"]["name"])
            env.update(secret.get("stringData", {}))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "configMapKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = find(objs, "ConfigMap", ref["name"])["data"][ref["key"]]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            secret = find(objs, "Secret", ref["name"])
            assert ref["key"] in secret["stringData"], f"Secret {ref['name']} lacks {ref['key']}"
            # the example's value is the operator's to set
            env[item["name"]] = OPERATOR_VALUES.get(item["name"], TEST_AUTH_KEYS)
    return env


def resolve_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise AssertionError(f"container {container['name']} has no port named {port}")


def test_every_manifest_parses_and_is_a_kubernetes_object() -> None:
    files = k8s_files()
    assert files
    for path in files:
        docs = load_yaml_docs(path)
        assert docs, path
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path
            assert doc["metadata"].get("name"), path
    for path in (DEPLOY / "k8s").rglob("kustomization.yaml"):
        kust = yaml.safe_load(path.read_text())
        for resource in kust.get("resources", []):
            assert (path.parent / resource).exists(), f"{path}: {resource} does not exist"


def test_the_base_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    kust = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    listed = set(kust["resources"])
    present = {p.name for p in K8S_BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present - {"secret.example.yaml"}
    gateway = main_container(find(base_objects(), "Deployment", "podium-gateway"))
    assert [i["name"] for i in kust.get("images", [])] == [gateway["image"].split(":")[0]]


def test_manifests_validate_against_the_kubernetes_schemas() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    for doc in k8s_objects():
        try:
            kv.validate(doc, "1.30.0", strict=True)
        except kv.ValidationError as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {exc.message}")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_service_has_deployment_service_autoscaler_and_disruption_budget(name: str) -> None:
    objs = base_objects()
    deployment = find(objs, "Deployment", name)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()

    hpa = find(objs, "HorizontalPodAutoscaler", name)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
    }
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert any(
        m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"]
    )

    pdb = find(objs, "PodDisruptionBudget", name)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    services = [
        s for s in find_all(objs, "Service") if s["spec"]["selector"].items() <= labels.items()
    ]
    if name != "podium-sweeper":  # nothing calls the sweeper
        assert [s["metadata"]["name"] for s in services] == [name]
    container = main_container(deployment)
    port_names = {p["name"] for p in container["ports"]}
    for svc in services:
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names or isinstance(port["targetPort"], int)
            assert resolve_port(container, port["targetPort"]) == port["port"]


@pytest.mark.parametrize("name", ["podium-queue-service", "podium-decider"])
def test_rpc_services_are_found_through_headless_services(name: str) -> None:
    service = find(base_objects(), "Service", name)
    assert service["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_containers_have_probes_on_what_the_code_serves(name: str) -> None:
    objs = base_objects()
    svc = SERVICES[name]
    container = main_container(find(objs, "Deployment", name))
    env = container_env(container, objs)
    probes = {k: container.get(k) for k in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes["readinessProbe"] and probes["livenessProbe"], name
    for kind, probe in probes.items():
        if probe is None:
            continue
        get = probe["httpGet"]
        port = resolve_port(container, get["port"])
        paths = served_paths(svc, env, port)
        assert get["path"] in paths, f"{name} {kind}: nothing serves {get['path']} on {port}"
    if svc.name != "podium-gateway":
        # Readiness follows the service's checks; liveness must not depend on them.
        assert probes["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert probes["livenessProbe"]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_container_ports_and_environment_agree_with_the_code(name: str) -> None:
    objs = base_objects()
    svc = SERVICES[name]
    container = main_container(find(objs, "Deployment", name))
    assert container["command"] == [name]
    assert name in SCRIPTS
    env = container_env(container, objs)
    check_env(svc, env, f"k8s {name}")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    if svc.main_port is not None:
        expected = svc.main_port[1]
        assert expected in ports.values(), f"{name}: no containerPort {expected}"
    health_port = int(env[svc.health_port[0]])
    assert ports.get("health") == health_port, f"{name}: health port {ports} vs {health_port}"
    annotations = find(objs, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == health_port
    assert "/metrics" in served_paths(svc, env, health_port)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_termination_grace_covers_the_drain(name: str) -> None:
    deployment = find(base_objects(), "Deployment", name)
    spec = pod_spec(deployment)
    pre_stop = main_container(deployment).get("lifecycle", {}).get("preStop")
    sleep = int(pre_stop["exec"]["command"][-1]) if pre_stop else 0
    assert spec["terminationGracePeriodSeconds"] > sleep + SERVICES[name].drain_s


def test_every_workload_has_resources_and_a_locked_down_security_context() -> None:
    for workload in workloads(k8s_objects()):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec.get("automountServiceAccountToken") is False, name
        pod_security = spec.get("securityContext", {})
        for container in spec.get("initContainers", []) + spec["containers"]:
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= resources.get("requests", {}).keys(), name
            assert "memory" in resources.get("limits", {}), name
            security = {**pod_security, **container.get("securityContext", {})}
            assert security.get("runAsNonRoot") is True, name
            assert security.get("runAsUser", 0) != 0, name
            assert security.get("readOnlyRootFilesystem") is True, name
            assert security.get("allowPrivilegeEscalation") is False, name
            assert security.get("capabilities", {}).get("drop") == ["ALL"], name
            assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", name


def test_all_podium_containers_run_one_image_built_by_the_dockerfile() -> None:
    images = {
        c["image"]
        for w in workloads(k8s_objects())
        for c in pod_spec(w)["containers"]
        if c["image"].split(":")[0].endswith("podium")
    }
    assert len(images) == 1, images
    assert DOCKERFILE.exists()


def test_rpc_addresses_name_headless_services_on_the_rpc_ports() -> None:
    objs = base_objects()
    targets = {
        "PODIUM_QUEUE_ADDRESSES": SERVICES["podium-queue-service"],
        "PODIUM_DECIDER_ADDRESSES": SERVICES["podium-decider"],
    }
    for name in SERVICES:
        env = container_env(main_container(find(objs, "Deployment", name)), objs)
        for var, target in targets.items():
            if var not in SERVICES[name].reads:
                continue
            assert var in env, f"{name} must set {var}"
            assert target.main_port is not None
            for address in env[var].split(","):
                host, _, port = address.rpartition(":")
                service = find(objs, "Service", host.split(".")[0])
                assert service["spec"]["clusterIP"] == "None", f"{name}: {var} is not headless"
                assert int(port) == target.main_port[1]
                assert int(port) in {p["port"] for p in service["spec"]["ports"]}


def test_queue_shards_are_the_redis_statefulset_pods_each_by_name() -> None:
    objs = base_objects()
    container = main_container(find(objs, "Deployment", "podium-queue-service"))
    shards = parse_shards(container_env(container, objs)["PODIUM_QUEUE_SHARDS"])
    redis = find(objs, "StatefulSet", "podium-queue-redis")
    governing = find(objs, "Service", redis["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"
    replicas = redis["spec"]["replicas"]
    redis_port = main_container(redis)["ports"][0]["containerPort"]
    hosts = []
    for shard in shards:
        url = urlsplit(shard.url)
        pod, service = str(url.hostname).split(".")[:2]
        assert service == governing["metadata"]["name"]
        assert url.port == redis_port
        hosts.append(pod)
    assert hosts == [f"podium-queue-redis-{i}" for i in range(replicas)], "one shard per pod"


def test_redis_servers_persist_append_only_and_never_evict() -> None:
    statefulsets = [
        s for s in find_all(k8s_objects(), "StatefulSet") if "redis" in s["metadata"]["name"]
    ]
    assert {s["metadata"]["name"] for s in statefulsets} >= {
        "podium-queue-redis",
        "podium-store-redis",
    }
    for sts in statefulsets:
        args = main_container(sts)["args"]
        assert args[args.index("--appendonly") + 1] == "yes", sts["metadata"]["name"]
        assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
        assert sts["spec"]["volumeClaimTemplates"], "persistence needs a volume"


def test_the_migration_job_runs_podium_db_migrate_against_the_store_settings() -> None:
    objs = base_objects()
    job = find(objs, "Job", "podium-db-migrate")
    container = main_container(job)
    assert container["command"] == MIGRATE_COMMAND
    assert MIGRATE_COMMAND[0] in SCRIPTS
    args = build_parser().parse_args(MIGRATE_COMMAND[1:])
    assert (args.command, args.db_command) == ("db", "migrate")
    assert pod_spec(job)["restartPolicy"] in ("OnFailure", "Never")
    env = container_env(container, objs)
    unread = sorted(k for k in env if k.startswith("PODIUM_") and k not in MIGRATE_READS)
    assert not unread
    store = StoreConfig.from_env(env)
    assert store.backend == "cassandra"
    # The Job migrates; the services must not race it (or each other) on schema changes.
    assert store.cassandra_migrate_on_open is False


@pytest.mark.parametrize("name", RPC_SERVICES)
def test_rpc_needs_the_shared_secret_in_every_deployment(name: str) -> None:
    """Kubernetes, compose and systemd give each service PODIUM_RPC_SECRET from a secret the
    operator makes (never a value in the repository), and no service starts without it."""
    objs = base_objects()
    env = main_container(find(objs, "Deployment", name))["env"]
    [ref] = [e["valueFrom"]["secretKeyRef"] for e in env if e["name"] == "PODIUM_RPC_SECRET"]
    assert ref == {"name": "podium-rpc", "key": "secret"}  # not optional
    assert "stringData" in find(objs, "Secret", "podium-rpc")  # the example, not in kustomize
    raw = compose()["services"][name]["environment"]["PODIUM_RPC_SECRET"]
    assert raw.startswith("${PODIUM_RPC_SECRET:?"), raw
    unit = read_unit(SYSTEMD / f"{name}@.service")
    assert "/etc/podium/rpc-secret.env" in values(unit, "Service", "EnvironmentFile")
    example = read_env_file(SYSTEMD / "env" / "rpc-secret.env.example")
    assert set(example) == {"PODIUM_RPC_SECRET"}
    assert not (SYSTEMD / "env" / "rpc-secret.env").exists()


def test_auth_is_on_with_keys_from_a_secret() -> None:
    objs = base_objects()
    container = main_container(find(objs, "Deployment", "podium-gateway"))
    env = container_env(container, objs)
    assert env_bool(env, "PODIUM_AUTH_ENABLED", False) is True
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if e["name"] == "PODIUM_AUTH_KEYS" and "secretKeyRef" in e.get("valueFrom", {})
    ]
    assert refs, "PODIUM_AUTH_KEYS must come from a Secret"
    secret = find(objs, "Secret", refs[0]["name"])
    parse_keys(secret["stringData"][refs[0]["key"]].split(","))  # the example has the right shape
    assert GatewaySettings.from_env(env).auth.enabled
    configmaps = [c for c in find_all(objs, "ConfigMap") if "PODIUM_AUTH_KEYS" in c["data"]]
    assert not configmaps, "API keys belong in a Secret"


def kustomize_build(target: Path) -> list[dict[str, Any]]:
    """The objects ``kustomize build`` makes of ``target`` (skips without kustomize)."""
    local = sorted(ROOT.glob(".cache/tools/kustomize-*/kustomize"))
    tool = str(local[-1]) if local else shutil.which("kustomize")
    command = [tool, "build", str(target)] if tool else None
    if command is None and shutil.which("kubectl"):
        command = [str(shutil.which("kubectl")), "kustomize", str(target)]
    if command is None:
        pytest.skip("neither kustomize (scripts/bootstrap.sh --test-tools) nor kubectl")
    out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize("overlay", ["", "redis-store", "replicated-redis"])
def test_kustomize_builds(overlay: str) -> None:
    target = K8S_OVERLAYS / overlay if overlay else K8S_BASE
    objs = kustomize_build(target)
    kinds = {o["kind"] for o in objs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    kv = pytest.importorskip("kubernetes_validate")
    for doc in objs:
        try:
            kv.validate(doc, "1.30.0", strict=True)
        except kv.ValidationError as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{overlay or 'base'}: {doc['kind']} {doc['metadata']['name']}: {exc}")
    store = StoreConfig.from_env(find(objs, "ConfigMap", "podium-store")["data"])
    if overlay == "replicated-redis":
        assert store.backend == "redis" and store.redis_url == "sentinel://store/0"
        assert "Job" not in kinds
    elif overlay == "redis-store":
        assert store.backend == "redis"
        assert "Job" not in kinds
        host = str(urlsplit(store.redis_url).hostname)
        find(objs, "StatefulSet", host.split(".")[1])
    else:
        assert store.backend == "cassandra"
        find(objs, "Job", "podium-db-migrate")


# -- compose -------------------------------------------------------------------------------------

INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` with nothing set."""

    def one(m: re.Match[str]) -> str:
        name, op, rest = m.group(1), m.group(2), m.group(3)
        assert name.startswith("PODIUM_"), f"unexpected variable {name} in compose"
        if op == "?":
            return OPERATOR_VALUES.get(name, "x")
        return rest or ""

    return INTERPOLATION.sub(one, value)


def compose() -> dict[str, Any]:
    [data] = load_yaml_docs(COMPOSE)
    return data


def compose_env(service: dict[str, Any]) -> Env:
    env = service.get("environment", {})
    assert isinstance(env, dict), "use the map form of environment"
    return {str(k): interpolate(str(v)) for k, v in env.items()}


def compose_health_url(service: dict[str, Any]) -> tuple[int, str]:
    test = " ".join(service["healthcheck"]["test"])
    m = re.search(r"http://127\.0\.0\.1:(\d+)(/[^'\"\s]*)", test)
    assert m, test
    return int(m.group(1)), m.group(2)


def test_compose_names_the_same_services_and_runs_their_scripts() -> None:
    services = compose()["services"]
    assert set(SERVICES) <= services.keys()
    k8s_names = {d["metadata"]["name"] for d in find_all(base_objects(), "Deployment")}
    assert set(SERVICES) == k8s_names
    images = set()
    for name in SERVICES:
        service = services[name]
        assert service["command"] == [name]
        assert service["deploy"]["replicas"] >= 1
        images.add(service["image"])
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert service["read_only"] is True
        assert str(service["user"]).split(":")[0] not in ("0", "root")
        for dependency in service.get("depends_on", {}):
            assert dependency in services
    assert len(images) == 1


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_environment_and_healthchecks_agree_with_the_code(name: str) -> None:
    services = compose()["services"]
    service = services[name]
    svc = SERVICES[name]
    env = compose_env(service)
    check_env(svc, env, f"compose {name}")
    port, path = compose_health_url(service)
    assert path in served_paths(svc, env, port), f"compose {name}: {path} on {port}"
    grace = service["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) > svc.drain_s
    for var in ("PODIUM_QUEUE_ADDRESSES", "PODIUM_DECIDER_ADDRESSES"):
        for address in filter(None, env.get(var, "").split(",")):
            host, _, target_port = address.rpartition(":")
            assert host in services, f"{name}: {var} names {host}"
            target = SERVICES[host]
            assert target.main_port is not None and int(target_port) == target.main_port[1]
    if "PODIUM_QUEUE_SHARDS" in env:
        for shard in parse_shards(env["PODIUM_QUEUE_SHARDS"]):
            assert urlsplit(shard.url).hostname in services
    if "PODIUM_STORE_REDIS_URL" in env:
        assert urlsplit(env["PODIUM_STORE_REDIS_URL"]).hostname in services


def test_docker_compose_accepts_the_file() -> None:
    """``docker compose config`` validates against the compose spec without an engine."""
    docker = shutil.which("docker")
    probe = [docker, "compose", "version"] if docker else None
    if probe is None or subprocess.run(probe, capture_output=True, timeout=30).returncode:
        pytest.skip("docker compose is not installed")
    assert docker is not None
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **OPERATOR_VALUES}
    out = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr


def test_compose_redis_servers_persist_append_only() -> None:
    services = compose()["services"]
    redis = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("redis")}
    assert len(redis) >= 2
    for name, service in redis.items():
        command = service["command"]
        assert command[command.index("--appendonly") + 1] == "yes", name
        assert command[command.index("--maxmemory-policy") + 1] == "noeviction", name
        assert service.get("volumes"), name


# -- systemd -------------------------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as lists of (key, value); keys may repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path}: {line} outside a section"
        sections[current].append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def read_env_file(path: Path) -> Env:
    env: Env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: {line!r} is not KEY=VALUE"
        env[key.strip()] = value.strip()
    return env


def env_file_in_repo(installed: str) -> Path | None:
    """deploy/systemd/env/X for /etc/podium/X (or X.example for files holding secrets)."""
    name = Path(installed).name
    for candidate in (SYSTEMD / "env" / name, SYSTEMD / "env" / f"{name}.example"):
        if candidate.exists():
            return candidate
    return None


def unit_env(unit: dict[str, list[tuple[str, str]]]) -> Env:
    env: Env = {}
    for entry in values(unit, "Service", "EnvironmentFile"):
        optional = entry.startswith("-")
        path = env_file_in_repo(entry.lstrip("-"))
        assert path is not None or optional, f"no example of {entry} in deploy/systemd/env"
        if path is not None and "%i" not in entry:
            env.update(read_env_file(path))
    return {k: OPERATOR_VALUES.get(k, v) for k, v in env.items()}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_systemd_template_units_start_the_console_scripts(name: str) -> None:
    path = SYSTEMD / f"{name}@.service"
    unit = read_unit(path)
    svc = SERVICES[name]
    [exec_start] = values(unit, "Service", "ExecStart")
    command = exec_start.split()
    assert Path(command[0]).name == name and name in SCRIPTS
    assert len(command) == 1
    assert values(unit, "Service", "KillSignal") == ["SIGTERM"]
    [timeout] = values(unit, "Service", "TimeoutStopSec")
    assert float(timeout) > svc.drain_s
    assert values(unit, "Service", "User") and values(unit, "Service", "User") != ["root"]
    assert values(unit, "Install", "WantedBy") == ["podium.target"]
    assert (SYSTEMD / "podium.target").exists()
    check_env(svc, unit_env(unit), f"systemd {name}")


def test_systemd_migration_unit_runs_podium_db_migrate() -> None:
    unit = read_unit(SYSTEMD / "podium-db-migrate.service")
    [exec_start] = values(unit, "Service", "ExecStart")
    command = exec_start.split()
    assert [Path(command[0]).name, *command[1:]] == MIGRATE_COMMAND
    assert values(unit, "Service", "Type") == ["oneshot"]
    env = unit_env(unit)
    assert set(env) <= MIGRATE_READS
    StoreConfig.from_env(env)


def test_systemd_env_files_each_belong_to_a_unit() -> None:
    used = {
        Path(entry.lstrip("-")).name
        for unit in SYSTEMD.glob("*.service")
        for entry in values(read_unit(unit), "Service", "EnvironmentFile")
    }
    for path in (SYSTEMD / "env").iterdir():
        name = path.name.removesuffix(".example")
        instance = re.fullmatch(r"(.+)-\d+\.env", name)
        pattern = f"{instance.group(1)}-%i.env" if instance else name
        assert pattern in used, f"{path.name} is read by no unit"
        if instance:
            svc = SERVICES[f"podium-{instance.group(1)}"]
            unread = sorted(k for k in read_env_file(path) if k not in svc.reads)
            assert not unread, f"{path.name}: {unread}"


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    bin_dir = Path(sys.executable).parent
    if not all((bin_dir / s).exists() for s in SCRIPTS):
        pytest.skip("the console scripts are not installed next to this interpreter")
    units = []
    for path in sorted(SYSTEMD.iterdir()):
        if path.suffix not in (".service", ".target"):
            continue
        text = path.read_text().replace("/opt/podium/bin/", f"{bin_dir}/")
        name = path.name.replace("@.", "@1.")  # verify an instance of each template
        (tmp_path / name).write_text(text)
        units.append(str(tmp_path / name))
    out = subprocess.run(
        [analyze, "verify", *units], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr  # unknown keys and bad values fail verify


# -- the image -----------------------------------------------------------------------------------


def dockerfile_lines() -> list[str]:
    """Instructions with continuation lines joined."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]


def test_the_dockerfile_installs_the_package_as_a_non_root_user() -> None:
    lines = dockerfile_lines()
    froms = [ln.split()[1] for ln in lines if ln.startswith("FROM ")]
    assert froms and all(f == "python:3.11-slim" for f in froms)
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    uid = users[-1].split(":")[0]
    for workload in workloads(k8s_objects()):
        if main_container(workload)["image"].split(":")[0].endswith("podium"):
            assert str(pod_spec(workload)["securityContext"]["runAsUser"]) == uid
    # The package from the lock (exactly the tested versions), with the OTLP exporter so that
    # traces can reach a collector; uv itself installed by hash.
    syncs = [ln for ln in lines if re.search(r"\buv sync\b", ln)]
    assert len(syncs) == 1 and "--frozen" in syncs[0].split() and "--extra otlp" in syncs[0]
    assert not any(re.search(r"pip install (?!.*--require-hashes)", ln) for ln in lines)
    assert "otlp" in PYPROJECT["project"]["optional-dependencies"]
    copied = {part.rstrip("/") for ln in lines if ln.startswith("COPY ") for part in ln.split()[1:]}
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in {p.rstrip("*") for p in packages}:
        assert package in copied, f"the image does not copy {package}/"
    assert {"pyproject.toml", "uv.lock", "README.md", "scripts/uv-requirements.txt"} <= copied
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for sent in ("uv.lock", "scripts/uv-requirements.txt"):
        assert f"!{sent}" in ignore, f"the build context leaves out {sent}"


def test_the_dockerfile_checks_every_console_script() -> None:
    text = " ".join(dockerfile_lines())
    m = re.search(r"for s in ([^;]+);", text)
    assert m, "the Dockerfile should check its console scripts"
    assert set(m.group(1).split()) == set(SCRIPTS)
    exposed = {
        int(p) for ln in dockerfile_lines() if ln.startswith("EXPOSE ") for p in ln.split()[1:]
    }
    for svc in SERVICES.values():
        for _, default in filter(None, (svc.main_port, svc.health_port)):
            assert default is None or default in exposed


# -- the documentation ---------------------------------------------------------------------------


def test_the_deployment_guide_covers_each_service() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    for name in SERVICES:
        assert name in text
    for topic in ("HorizontalPodAutoscaler", "podium db migrate", "SIGTERM", "PODIUM_QUEUE_SHARDS"):
        assert topic in text
