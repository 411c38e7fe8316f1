"""End-to-end fixtures: a whole Podium cluster as separate processes, driven by the official SDK.

Per store ("redis", then "cassandra") the session starts one :class:`LocalCluster` (two Redis
queue shards, the store, a queue service, a decider, a gateway and a sweeper, each its own
process) and one process running SDK workers (``tests/e2e/sdk_workers.py``: a ``TaskHandler``
that spawns one process per worker). Tests talk to the gateway only through the SDK's clients.

Set ``PODIUM_E2E_KEEP_LOGS=1`` to keep each cluster's folder (service logs, ``sdk-workers.log``).

Tests keep apart by data: task types carry a per-cluster prefix, workflow names a per-test
suffix. Nothing waits by sleeping alone: every wait is a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

conductor = pytest.importorskip("conductor.client.configuration.configuration")

from conductor.client.configuration.configuration import Configuration  # noqa: E402
from conductor.client.http.models.task_def import TaskDef  # noqa: E402
from conductor.client.http.models.workflow import Workflow  # noqa: E402
from conductor.client.orkes_clients import OrkesClients  # noqa: E402

from podium.cluster import ClusterSpec, LocalCluster  # noqa: E402
from tests.local_cassandra import HAVE_JVM  # noqa: E402
from tests.polling import eventually_sync  # noqa: E402

from .sdk_workers import task_names  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STORES = ["redis", "cassandra"]
TERMINAL = {"COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"}
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a private loop (never touching the session loop of pytest-asyncio)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@dataclass
class E2E:
    """One running cluster with SDK workers attached, and the SDK's clients for it."""

    store: str
    cluster: LocalCluster
    url: str
    prefix: str
    config: Configuration
    clients: OrkesClients
    tasks: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metadata = self.clients.get_metadata_client()
        self.workflows = self.clients.get_workflow_client()
        self.task_client = self.clients.get_task_client()
        self.executor = self.clients.get_workflow_executor()

    def name(self, base: str) -> str:
        """A fresh workflow name."""
        return f"{self.prefix}{base}_{uuid.uuid4().hex[:6]}"

    def workflow(self, workflow_id: str) -> Workflow:
        return self.workflows.get_workflow(workflow_id, include_tasks=True)

    def wait_for(
        self,
        workflow_id: str,
        check: Callable[[Workflow], bool],
        timeout_s: float = 30.0,
        what: str = "condition",
    ) -> Workflow:
        return eventually_sync(
            lambda: self.workflow(workflow_id),
            until=check,
            timeout_s=timeout_s,
            what=f"workflow {workflow_id} {what}",
        )

    def wait_status(self, workflow_id: str, status: str, timeout_s: float = 30.0) -> Workflow:
        """Poll until the workflow has ``status``; fail early if it ends in another state."""

        def reached(wf: Workflow) -> bool:
            if wf.status in TERMINAL and wf.status != status and status in TERMINAL | {"PAUSED"}:
                raise AssertionError(
                    f"workflow {workflow_id} ended {wf.status} (wanted {status}): "
                    f"{wf.reason_for_incompletion}; tasks "
                    f"{[(t.reference_task_name, t.status) for t in wf.tasks or []]}"
                )
            return bool(wf.status == status)

        return self.wait_for(workflow_id, reached, timeout_s, f"status {status}")

    def wait_task(self, workflow_id: str, ref: str, status: str, timeout_s: float = 30.0) -> Any:
        """Poll until the task ``ref`` (latest attempt) of a workflow has ``status``."""
        wf = self.wait_for(
            workflow_id,
            lambda w: any(
                t.reference_task_name == ref and t.status == status for t in w.tasks or []
            ),
            timeout_s,
            f"task {ref} {status}",
        )
        return [t for t in wf.tasks if t.reference_task_name == ref][-1]


def _task_defs(names: dict[str, str]) -> list[TaskDef]:
    def task_def(suffix: str, retries: int, **kw: Any) -> TaskDef:
        return TaskDef(
            name=names[suffix],
            description=f"e2e {suffix}",
            retry_count=retries,
            retry_logic="FIXED",
            retry_delay_seconds=0,
            timeout_seconds=120,
            response_timeout_seconds=60,
            timeout_policy="TIME_OUT_WF",
            **kw,
        )

    return [
        task_def("echo", 0),
        task_def("add", 0),
        task_def("flaky", 2),
        task_def("always_fail", 1),
        task_def("terminal_fail", 2),
    ]


@pytest.fixture(scope="session", params=STORES)
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """One whole cluster per store, as separate processes (Cassandra: a local node)."""
    store = str(request.param)
    if store == "cassandra" and not HAVE_JVM:
        pytest.skip("Cassandra needs java and mvn (scripts/bootstrap.sh installs them)")
    work_dir = Path(tempfile.mkdtemp(prefix=f"podium-e2e-{store}-"))
    spec = ClusterSpec(
        shards=2,
        gateways=1,
        deciders=1,
        sweepers=1,
        gateway_port=0,
        store=store,
        cassandra_secure=True,  # a login and TLS, as in production
        work_dir=work_dir,
    )
    running = LocalCluster(spec=spec, progress=lambda _line: None)
    _run(running.start())
    try:
        yield running
    finally:
        _run(running.stop())
        if os.environ.get("PODIUM_E2E_KEEP_LOGS"):
            print(f"\ne2e logs ({store}): {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def sdk_workers(cluster: LocalCluster) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m tests.e2e.sdk_workers`` against the cluster; stopped as a process group."""
    prefix = f"e2e{uuid.uuid4().hex[:6]}_"
    log_path = cluster.work_dir / "sdk-workers.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.sdk_workers", cluster.gateway_urls[0], prefix],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield prefix, proc
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the workers' process group (the handler and every worker it spawned)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # any spawned worker that outlived the handler


@pytest.fixture(scope="session")
def e2e(cluster: LocalCluster, sdk_workers: tuple[str, subprocess.Popen[bytes]]) -> E2E:
    """The SDK's clients for the cluster, task definitions registered, every worker polling."""
    prefix, proc = sdk_workers
    config = Configuration(server_api_url=cluster.gateway_urls[0])
    env = E2E(
        store=cluster.spec.store,
        cluster=cluster,
        url=cluster.gateway_urls[0],
        prefix=prefix,
        config=config,
        clients=OrkesClients(configuration=config),
        tasks=task_names(prefix),
    )
    for task_def in _task_defs(env.tasks):
        env.metadata.register_task_def(task_def)
    # The SDK workers are up when each task type has been polled (poll data, per worker).
    unpolled = set(env.tasks.values())

    def not_yet_polled() -> set[str]:
        if proc.poll() is not None:
            log = (cluster.work_dir / "sdk-workers.log").read_text(errors="replace")
            raise AssertionError(f"sdk workers exited ({proc.returncode}):\n{log[-3000:]}")
        unpolled.difference_update(
            [t for t in list(unpolled) if env.task_client.get_task_poll_data(t)]
        )
        return set(unpolled)

    eventually_sync(
        not_yet_polled,
        until=lambda left: not left,
        timeout_s=120,
        what="an SDK worker polled every task type",
        interval_s=0.1,
    )
    return env
