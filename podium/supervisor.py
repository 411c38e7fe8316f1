"""Keeps the processes of a local cluster running: what ``podium up`` does between start and stop.

A replica (or Redis server) that exits while the cluster runs is logged with its exit status
and started again on the same ports after a back-off that doubles with each quick failure
(0.5 s, 1 s, 2 s, ... up to 30 s) and resets once the process has stayed up for a minute. The
supervisor writes what it knows to a state file that ``podium status`` reads: each process,
its pid, its restarts and how it last exited. In deployments Kubernetes and systemd do this job
(``restartPolicy``, ``Restart=on-failure``); this is the same promise for one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from podium.aio import OwnedTasks

if TYPE_CHECKING:
    from podium.cluster import LocalCluster

log = logging.getLogger("podium.supervisor")


def describe_exit(returncode: int | None) -> str:
    """``exit status 3`` or ``killed by SIGKILL``, from a ``Popen.returncode``."""
    if returncode is None:
        return "running"
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
        return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


@dataclass(frozen=True)
class Backoff:
    """Delay before the next restart: ``initial_s * 2**quick_failures``, capped."""

    initial_s: float = 0.5
    max_s: float = 30.0
    reset_after_s: float = 60.0

    def delay_s(self, quick_failures: int) -> float:
        return float(min(self.max_s, self.initial_s * 2 ** max(0, quick_failures)))


class Supervised(Protocol):
    """What the supervisor needs of a process it keeps alive."""

    name: str

    def alive(self) -> bool: ...
    def exit_code(self) -> int | None: ...
    def pid(self) -> int | None: ...
    async def restart(self) -> None: ...


@dataclass
class Record:
    """What is known of one supervised process."""

    restarts: int = 0
    quick_failures: int = 0
    last_exit: str = ""
    up_since: float = field(default_factory=time.monotonic)
    restarting: bool = False


class Supervisor:
    """Watches ``processes()`` every ``poll_s`` and restarts the ones that died."""

    def __init__(
        self,
        processes: Callable[[], list[Supervised]],
        *,
        say: Callable[[str], None] = print,
        backoff: Backoff | None = None,
        poll_s: float = 0.2,
        state_file: Path | None = None,
    ) -> None:
        self._processes = processes
        self._say = say
        self._backoff = backoff or Backoff()
        self._poll_s = poll_s
        self._state_file = state_file
        self._records: dict[str, Record] = {}
        self._tasks = OwnedTasks("supervisor", log)

    def record(self, name: str) -> Record:
        return self._records.setdefault(name, Record())

    async def run(self) -> None:
        """Until cancelled; restarts run as owned tasks, cancelled with the supervisor."""
        try:
            self.write_state()
            while True:
                for proc in self._processes():
                    rec = self.record(proc.name)
                    if not rec.restarting and not proc.alive():
                        rec.restarting = True
                        self._tasks.spawn(self._restart(proc, rec), name=f"restart {proc.name}")
                await asyncio.sleep(self._poll_s)
        finally:
            await self._tasks.cancel_all()

    async def _restart(self, proc: Supervised, rec: Record) -> None:
        rec.last_exit = describe_exit(proc.exit_code())
        if time.monotonic() - rec.up_since >= self._backoff.reset_after_s:
            rec.quick_failures = 0
        delay = self._backoff.delay_s(rec.quick_failures)
        self._say(f"podium: {proc.name} {rec.last_exit}; restarting in {delay:.1f}s")
        self.write_state()
        while True:
            await asyncio.sleep(delay)
            try:
                await proc.restart()
            except Exception as exc:  # a failed start is retried; the cluster keeps running
                rec.quick_failures += 1
                delay = self._backoff.delay_s(rec.quick_failures)
                self._say(f"podium: {proc.name} did not start ({exc}); again in {delay:.1f}s")
                continue
            break
        rec.restarts += 1
        rec.quick_failures += 1
        rec.up_since = time.monotonic()
        rec.restarting = False
        self._say(f"podium: {proc.name} restarted (pid {proc.pid()}, restart {rec.restarts})")
        self.write_state()

    def state(self) -> dict[str, Any]:
        rows = []
        for proc in self._processes():
            rec = self.record(proc.name)
            rows.append(
                {
                    "name": proc.name,
                    "pid": proc.pid(),
                    "state": "restarting" if rec.restarting else "running",
                    "restarts": rec.restarts,
                    "lastExit": rec.last_exit,
                }
            )
        return {"supervisorPid": os.getpid(), "processes": rows}

    def write_state(self) -> None:
        if self._state_file is None:
            return
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state(), indent=1))
        tmp.replace(self._state_file)


def state_file_for(port: int) -> Path:
    """Where ``podium up`` with its API on ``port`` keeps its process table."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache" / "podium")
    return base / "podium-up" / f"{port}.json"


def read_state(port: int) -> dict[str, Any] | None:
    """The process table of a ``podium up`` still running with its API on ``port``, if any."""
    try:
        state: dict[str, Any] = json.loads(state_file_for(port).read_text())
        os.kill(int(state["supervisorPid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def processes_of(cluster: LocalCluster) -> list[Supervised]:
    """Every service replica and Redis server of ``cluster``, as supervised processes."""
    from podium.cluster import RedisProcess, ReplicatedRedisProcess

    procs: list[Supervised] = [*cluster.services]
    procs += [RedisProcess(f"redis-shard-{i}", r) for i, r in enumerate(cluster.redis)]
    if cluster.store_redis is not None:
        procs.append(RedisProcess("redis-store", cluster.store_redis))
    topology = cluster.replicated
    if topology is not None:
        for label, server in topology.servers():
            group = topology.group_of(server)
            if group is None:  # a Sentinel: it keeps what it learnt in its own file
                procs.append(RedisProcess(f"redis-{label}", server))
            else:
                procs.append(ReplicatedRedisProcess(f"redis-{label}", server, topology, group))
    return procs
