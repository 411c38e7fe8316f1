"""Golden histories: recorded executions replayed through the pure decider.

Each ``golden/*.json`` holds a definition (plus registered TaskDefs), a start request and a list
of steps (an operation at a time). After the start and after every step the fixture states what
must hold: workflow status, the task list as ``[ref, taskType, status]``, queue pushes and
removals (``[queue, ref, delay_ms]`` / ``[queue, ref]``), commands, the next check time, and
optionally the output and reason. A change of behaviour shows up as a diff here.

To (re)record expectations after an intended change: ``PODIUM_GOLDEN_RECORD=1 pytest
tests/decider/test_golden.py``, then review the fixture diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import decider as d
from decider.decision import Decision
from tests.decider.decider_harness import Harness

GOLDEN = Path(__file__).parent / "golden"
RECORD = os.environ.get("PODIUM_GOLDEN_RECORD") == "1"
FIXTURES = sorted(GOLDEN.glob("*.json"))


class Replay:
    def __init__(self, fixture: dict[str, Any]) -> None:
        self.h = Harness(fixture["definition"], task_defs=fixture.get("taskDefs", {}))
        self.ref_of: dict[str, str] = {}

    def remember(self, dec: Decision) -> None:
        for t in dec.workflow["tasks"]:
            self.ref_of[t["taskId"]] = t["referenceTaskName"]

    def tid(self, ref: str) -> str:
        return str(self.h.task(ref)["taskId"])

    def step(self, step: dict[str, Any]) -> Decision:
        h, op, at = self.h, step["op"], step.get("at")
        if op == "claim":
            return h.claim(step["ref"], at, step.get("worker", "w1"))
        if op == "complete":
            return h.complete(step["ref"], step.get("output"), at)
        if op == "fail":
            return h.fail(step["ref"], step.get("reason", "boom"), at, step.get("terminal", False))
        if op == "update":
            fields = {
                k: v for k, v in step.items() if k not in ("op", "at", "ref", "status", "expect")
            }
            return h.update(step["ref"], step["status"], at, **fields)
        if op == "decide":
            return h.decide(at)
        if op == "child":
            return h.child(step["ref"], step["status"], step.get("output"), step.get("reason"), at)
        return self._workflow_op(op, step, at)

    def _workflow_op(self, op: str, step: dict[str, Any], at: int | None) -> Decision:
        h = self.h
        if op == "terminate":
            return h.apply(d.terminate, step.get("reason"), at=at)
        if op in ("pause", "resume", "retry", "restart"):
            return h.apply(getattr(d, op), at=at)
        if op == "rerun":
            request = {
                k: v
                for k, v in step.items()
                if k in ("workflowInput", "taskInput", "correlationId")
            }
            if "fromRef" in step:
                request["reRunFromTaskId"] = self.tid(step["fromRef"])
            return h.apply(d.rerun, request, at=at)
        if op == "skip":
            return h.apply(d.skip_task, step["ref"], at=at)
        if op == "signal":
            return h.apply(d.signal, step.get("status", "COMPLETED"), step.get("output", {}), at=at)
        if op == "set_variables":
            return h.apply(d.set_variables, step["variables"], at=at)
        raise ValueError(f"unknown op {op}")

    def observe(self, dec: Decision) -> dict[str, Any]:
        self.remember(dec)
        wf = dec.workflow
        seen: dict[str, Any] = {
            "status": wf["status"],
            "tasks": [[t["referenceTaskName"], t["taskType"], t["status"]] for t in wf["tasks"]],
            "pushes": [
                [p.queue, self.ref_of.get(p.message_id, p.message_id), p.delay_ms]
                for p in dec.pushes
            ],
            "removals": [
                [r.queue, self.ref_of.get(r.message_id, r.message_id)] for r in dec.removals
            ],
            "commands": [_command(c) for c in dec.commands],
            "nextCheck": dec.next_check_ms,
            "output": wf.get("output", {}),
        }
        if wf.get("reasonForIncompletion") is not None:
            seen["reason"] = wf["reasonForIncompletion"]
        if not dec.accepted:
            seen["accepted"] = False
        return seen


def _command(c: d.Command) -> list[Any]:
    if isinstance(c, d.StartSubWorkflow):
        return [c.kind, c.name, c.input]
    if isinstance(c, d.StartWorkflow):
        return [c.kind, c.name, sorted(c.input)]
    if isinstance(c, d.NotifyParent):
        return [c.kind, c.status]
    if isinstance(c, d.TerminateWorkflow):
        return [c.kind, c.reason]
    return [c.kind, c.workflow_id]


def _check(expect: dict[str, Any], seen: dict[str, Any], where: str) -> None:
    for key, value in expect.items():
        assert seen.get(key) == value, (
            f"{where}: {key}\n expected {value!r}\n      got {seen.get(key)!r}"
        )


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_golden_history(path: Path) -> None:
    fixture = json.loads(path.read_text())
    replay = Replay(fixture)
    start = fixture.get("start", {})
    dec = replay.h.start(start.get("input", {}), at=start.get("at", 0), **start.get("request", {}))
    seen = replay.observe(dec)
    if RECORD:
        start["expect"] = seen
    else:
        _check(start["expect"], seen, "start")
    for i, step in enumerate(fixture["steps"]):
        seen = replay.observe(replay.step(step))
        if RECORD:
            step["expect"] = seen
        else:
            _check(step["expect"], seen, f"step {i} ({step['op']} {step.get('ref', '')})")
    if RECORD:
        fixture["start"] = start
        path.write_text(json.dumps(fixture, indent=1) + "\n")


def test_there_are_golden_histories() -> None:
    assert len(FIXTURES) >= 6
