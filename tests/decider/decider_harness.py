"""A small driver for the pure decider: keeps the current record, applies operations by
reference name, with a deterministic id generator and an explicit clock."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import decider as d
from decider.decision import Context, DeciderConfig, Decision
from podium.types import JSON


def _first_difference(a: Any, b: Any, at: str = "") -> str | None:
    """Where ``a`` and ``b`` first differ (a path), or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in dict.fromkeys([*a, *b]):
            if k not in a or k not in b:
                return f"{at}.{k}"
            found = _first_difference(a[k], b[k], f"{at}.{k}")
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{at} (length)"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{at}[{i}]")
            if found is not None:
                return found
        return None
    return None if a == b else at


class Ids:
    """Deterministic ids: ``id-1``, ``id-2``, ..."""

    def __init__(self, prefix: str = "id") -> None:
        self.n = 0
        self.prefix = prefix

    def __call__(self) -> str:
        self.n += 1
        return f"{self.prefix}-{self.n}"


class Harness:
    """Drives one workflow through the pure operations."""

    def __init__(
        self,
        definition: Mapping[str, Any],
        *,
        task_defs: Mapping[str, Mapping[str, Any]] | None = None,
        prefix: str = "id",
        config: DeciderConfig | None = None,
    ) -> None:
        self.definition = dict(definition)
        self.task_defs = dict(task_defs or {})
        self.ids = Ids(prefix)
        self.now = 0
        self.config = config or DeciderConfig()
        self.wf: JSON = {}
        self.last: Decision | None = None
        self.history: list[Decision] = []
        self._input: JSON = {}

    def ctx(self, at: int | None = None) -> Context:
        if at is not None:
            self.now = at
        return Context(now_ms=self.now, ids=self.ids, task_defs=self.task_defs, config=self.config)

    def _keep(self, dec: Decision) -> Decision:
        # Every operation is checked to leave its input as it was: decisions share the
        # nested values of tasks they did not change with their input (decider.workflow_run).
        if self.history:
            changed = _first_difference(self.history[-1].workflow, self._input)
            assert changed is None, f"an operation changed its input at {changed}"
        # The next check worked out from the deadlines kept on the input record (only the
        # changed tasks' again) equals the one worked out from every task.
        if dec.next_check_ms is not None:
            plain = copy.deepcopy(dict(dec.workflow))
            assert d.next_check_ms(plain, self.ctx()) == dec.next_check_ms
        self.last = dec
        self.history.append(dec)
        self.wf = dec.workflow
        self._input = copy.deepcopy(dec.workflow)
        return dec

    # --- operations -----------------------------------------------------------------------

    def _op(self, op: Callable[[JSON, Context], Decision], at: int | None) -> Decision:
        """Run ``op`` on the current record as the previous decision left it, which is how
        the owning decider sees it (with the deadlines kept on it, so quiet tasks are shared
        and passed over), and again on a deep copy as a fresh read from the store gives it:
        both decisions must be the same."""
        fresh = copy.deepcopy(dict(self.wf))
        first_id = self.ids.n
        dec = op(self.wf, self.ctx(at))
        if getattr(self.wf, "deadlines", None) is not None:
            ids = Ids(self.ids.prefix)
            ids.n = first_id
            ctx = Context(now_ms=self.now, ids=ids, task_defs=self.task_defs, config=self.config)
            again = op(fresh, ctx)
            where = _first_difference(dict(dec.workflow), dict(again.workflow))
            assert where is None, f"the kept record's decision differs at {where}"
            for f in dataclasses.fields(Decision):
                if f.name != "workflow":
                    mine, theirs = getattr(dec, f.name), getattr(again, f.name)
                    assert mine == theirs, f"the kept record's decision differs in {f.name}"
        return self._keep(dec)

    def start(
        self, input: Mapping[str, Any] | None = None, at: int = 0, **request: Any
    ) -> Decision:
        req = {"input": dict(input or {}), **request}
        return self._keep(d.start_workflow(self.definition, req, self.ctx(at)))

    def task(self, ref: str) -> JSON:
        tasks: list[JSON] = self.wf["tasks"]
        for t in reversed(tasks):
            if t["referenceTaskName"] == ref:
                return t
        raise KeyError(f"no task {ref}: {self.refs()}")

    def claim(self, ref: str, at: int | None = None, worker: str = "w1") -> Decision:
        task_id = self.task(ref)["taskId"]
        return self._op(lambda wf, ctx: d.claim(wf, task_id, worker, ctx), at)

    def update(self, ref: str, status: str, at: int | None = None, **fields: Any) -> Decision:
        result = {
            "workflowInstanceId": self.wf["workflowId"],
            "taskId": self.task(ref)["taskId"],
            "status": status,
            **fields,
        }
        return self._op(lambda wf, ctx: d.update_task(wf, result, ctx), at)

    def complete(
        self, ref: str, output: Mapping[str, Any] | None = None, at: int | None = None
    ) -> Decision:
        return self.update(ref, "COMPLETED", at, outputData=dict(output or {}))

    def fail(
        self, ref: str, reason: str = "boom", at: int | None = None, terminal: bool = False
    ) -> Decision:
        status = "FAILED_WITH_TERMINAL_ERROR" if terminal else "FAILED"
        return self.update(ref, status, at, reasonForIncompletion=reason)

    def run_worker(
        self, ref: str, output: Mapping[str, Any] | None = None, at: int | None = None
    ) -> Decision:
        self.claim(ref, at)
        return self.complete(ref, output, at)

    def decide(self, at: int | None = None) -> Decision:
        return self._op(d.decide, at)

    def apply(self, fn: Any, *args: Any, at: int | None = None, **kwargs: Any) -> Decision:
        """Any operation ``fn(workflow, *args, ctx, **kwargs)``."""
        return self._op(lambda wf, ctx: fn(wf, *args, ctx, **kwargs), at)

    def child(
        self,
        ref: str,
        status: str,
        output: Mapping[str, Any] | None = None,
        reason: str | None = None,
        at: int | None = None,
    ) -> Decision:
        t = self.task(ref)
        return self._op(
            lambda wf, ctx: d.child_status(
                wf,
                t["taskId"],
                t["subWorkflowId"],
                status,
                ctx,
                output=output,
                reason=reason,
            ),
            at,
        )

    # --- views ----------------------------------------------------------------------------

    @property
    def status(self) -> str:
        return str(self.wf["status"])

    def refs(self) -> list[str]:
        return [t["referenceTaskName"] for t in self.wf["tasks"]]

    def summary(self) -> list[tuple[str, str, str]]:
        return [(t["referenceTaskName"], t["taskType"], t["status"]) for t in self.wf["tasks"]]

    def statuses(self) -> dict[str, str]:
        """Latest status per reference name."""
        return {t["referenceTaskName"]: t["status"] for t in self.wf["tasks"]}

    def pending(self) -> list[str]:
        return [
            t["referenceTaskName"]
            for t in self.wf["tasks"]
            if t["status"] in ("SCHEDULED", "IN_PROGRESS")
        ]


def simple(ref: str, **extra: Any) -> JSON:
    return {"name": ref, "taskReferenceName": ref, "type": "SIMPLE", **extra}


def wf_def(*tasks: JSON, **extra: Any) -> JSON:
    return {"name": "wf", "version": 1, "tasks": list(tasks), **extra}
