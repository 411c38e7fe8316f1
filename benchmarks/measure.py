"""Measuring a benchmark run (per-process CPU, Redis command cost, percentiles) and reporting it
(the machine, the versions, markdown tables, charts)."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podium.cluster import LocalCluster

RESULTS = Path(__file__).resolve().parent / "results"
PEERS_CACHE = Path(
    os.environ.get("PODIUM_PEERS_CACHE", Path.home() / ".cache" / "podium" / "peers")
)


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        redis_version = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        ).stdout.split()[2]
    except (OSError, IndexError):
        redis_version = "?"
    memory = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 2**20:.0f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "redis": redis_version,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds used so far by a process (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@dataclass
class CpuMeter:
    """CPU used by named processes between start() and stop()."""

    pids: dict[str, int]
    before: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self.before = {n: cpu_seconds(p) for n, p in self.pids.items()}

    def stop(self) -> dict[str, float]:
        self.used = {n: cpu_seconds(p) - self.before.get(n, 0.0) for n, p in self.pids.items()}
        return self.used


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100.0 * (len(ordered) - 1))))
    return ordered[k]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        out.append("| " + " | ".join(_fmt(c) for c in row) + " |")
    return "\n".join(out)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    return str(value).replace("\n", " ").replace("|", "/")


def machine_block(info: dict[str, str]) -> str:
    return "\n".join(f"- {k}: {v}" for k, v in info.items())


def _dist_version(site: Path, package: str) -> str:
    """Version of ``package`` from its ``.dist-info`` folder under ``site`` ("-" if absent)."""
    prefix = package.replace("-", "_").lower() + "-"
    for dist in sorted(site.glob("*.dist-info")):
        if dist.name.lower().startswith(prefix):
            return dist.name[len(prefix) : -len(".dist-info")]
    return "-"


def _peer_version(venv: str, package: str) -> str:
    sites = sorted((PEERS_CACHE / venv).glob("lib/python*/site-packages"))
    return _dist_version(sites[0], package) if sites else "- (venv not built)"


@functools.cache
def versions() -> dict[str, str]:
    """Versions of everything a run may involve: Podium's own libraries, the peers (from their
    venvs, without starting them), Java, Cassandra and the Conductor server."""
    import importlib.metadata as md

    def own(package: str) -> str:
        try:
            return md.version(package)
        except md.PackageNotFoundError:
            return "-"

    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        java = (out.stderr or out.stdout).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        java = "-"
    from benchmarks.peers.conductor_server import DEFAULT_VERSION as CONDUCTOR
    from podium.launch.cassandra_jars import DEFAULT_VERSION as CASSANDRA

    return {
        "podium": own("podium"),
        "redis-py (Podium)": own("redis"),
        "cassandra": f"{CASSANDRA} (one local node)",
        "java": java,
        "conductor-server": f"{CONDUCTOR} (boot jar, Maven Central)",
        "conductor-python SDK": _peer_version("conductor", "conductor-python"),
        "arq": _peer_version("arq", "arq"),
        "celery": _peer_version("celery", "celery")
        + " (kombu "
        + _peer_version("celery", "kombu")
        + ")",
    }


def report_header(
    title: str,
    quick: bool,
    durability: str,
    payload: str,
    notes: Sequence[str] = (),
) -> str:
    """The head of every suite's report: what ran, on what, with which durability and payload.

    Per-process CPU goes in each suite's tables (the load generator, every service, worker,
    Redis and Cassandra process by name)."""
    info = machine()
    lines = [f"# {title} ({'quick' if quick else 'full'} run)", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines.append("- load average (1/5/15 min): " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    lines.append("- versions: " + "; ".join(f"{k} {v}" for k, v in versions().items()))
    lines.append(f"- durability: {durability}")
    lines.append(f"- payload: {payload}")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def cpu_text(cpu: dict[str, float]) -> str:
    """CPU seconds per named process, for a table cell."""
    return ", ".join(f"{k} {v:.1f}s" for k, v in sorted(cpu.items()))


def cluster_pids(cluster: LocalCluster) -> dict[str, int]:
    """Every process of a ``LocalCluster`` by name: service replicas, Redis queue shards, the
    Redis store and the Cassandra node."""
    pids = {s.name: s.proc.pid for s in cluster.services if s.proc}
    pids.update({f"redis-shard-{i}": r._proc.pid for i, r in enumerate(cluster.redis) if r._proc})
    if cluster.store_redis is not None and cluster.store_redis._proc is not None:
        pids["redis-store"] = cluster.store_redis._proc.pid
    proc = getattr(cluster.cassandra, "_proc", None)
    if proc is not None:
        pids["cassandra"] = proc.pid
    return pids


@dataclass
class CommandStats:
    """What Redis spent between start() and stop(), per named server.

    * ``cpu_usec``: the server process's CPU (``INFO cpu``, user + system, all threads);
    * ``usec`` and ``calls``: ``INFO commandstats`` summed over commands (reset by CONFIG
      RESETSTAT at start()). Commands run by a Lua script are counted on their own *and*
      inside the script's EVALSHA time, so for script-heavy work ``usec`` over-states the
      command time: an upper bound. INFO, CONFIG and HELLO (this probe) are left out.
    * ``top``: the six commands with the most time."""

    urls: dict[str, str]
    used: dict[str, dict[str, Any]] = field(default_factory=dict)
    before_cpu: dict[str, float] = field(default_factory=dict)
    OWN = ("cmdstat_info", "cmdstat_config", "cmdstat_hello")

    @staticmethod
    def _cpu(info: dict[str, Any]) -> float:
        return 1e6 * (float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))

    def _read(self, url: str) -> dict[str, Any]:
        import redis

        client = redis.Redis.from_url(url)
        try:
            stats = client.info("commandstats")
            cpu = self._cpu(client.info("cpu"))
        finally:
            client.close()
        per = {
            k.removeprefix("cmdstat_"): (float(v["calls"]), float(v["usec"]))
            for k, v in stats.items()
            if not k.startswith(self.OWN)
        }
        top = sorted(per.items(), key=lambda kv: -kv[1][1])[:6]
        return {
            "cpu_usec": cpu - self.before_cpu.get(url, 0.0),
            "calls": sum(c for c, _ in per.values()),
            "usec": sum(u for _, u in per.values()),
            "top": {k: {"calls": c, "usec": u} for k, (c, u) in top},
        }

    def start(self) -> None:
        import redis

        for url in self.urls.values():
            client = redis.Redis.from_url(url)
            try:
                client.config_resetstat()
                self.before_cpu[url] = self._cpu(client.info("cpu"))
            finally:
                client.close()

    def stop(self) -> dict[str, dict[str, Any]]:
        self.used = {name: self._read(url) for name, url in self.urls.items()}
        return self.used


def cluster_redis_urls(cluster: LocalCluster) -> dict[str, str]:
    """The Redis servers of a cluster by name (queue shards, and the store if it is Redis)."""
    urls = {f"redis-shard-{i}": r.url for i, r in enumerate(cluster.redis)}
    if cluster.store_redis is not None:
        urls["redis-store"] = cluster.store_redis.url
    return urls


def chart_style() -> None:
    """Matplotlib without a display."""
    import matplotlib

    matplotlib.use("Agg")
