"""DO_WHILE (``TASKS/DoWhile.java``): iterations, ``__N`` suffixes, condition, ``keepLastN``.

The loop task stays IN_PROGRESS while its body runs. Each execution gathers the current
iteration's body tasks (latest retry per reference name); once they are all finished and the
decider has processed them (``executed``), the condition is evaluated in the JavaScript
sandbox with ``$`` = the loop's resolved input, ``$[loopRef]`` = its output and
``$[bodyRef]`` = each body task's latest output. True starts iteration N+1 (its first body task
gets ref ``<ref>__<N+1>``); false completes the loop.
"""

from __future__ import annotations

from typing import Any

from decider import scripting
from decider.binding import resolve_params
from decider.definition_tree import append_iteration, collect_tasks, has_ref, strip_iteration
from decider.mapping import map_task
from decider.statuses import TaskStatus, task_successful, task_terminal
from decider.workflow_run import Run
from podium.clone import clone
from podium.types import JSON


def _body_tasks(run: Run, loop: JSON, iteration: int | None) -> dict[str, JSON]:
    """Body tasks (of one iteration, or all), latest retry per reference name."""
    workflow_task, loop_ref = loop["workflowTask"], loop["referenceTaskName"]
    relevant: dict[str, JSON] = {}
    for t in run.tasks:
        ref = t["referenceTaskName"]
        if ref == loop_ref or not has_ref(workflow_task, strip_iteration(ref)):
            continue
        if iteration is not None and t.get("iteration", 0) != iteration:
            continue
        current = relevant.get(ref)
        if current is None or t.get("retryCount", 0) >= current.get("retryCount", 0):
            relevant[ref] = t
    return relevant


def _items(run: Run, loop: JSON) -> list[Any] | None:
    """The list of a list-iteration loop (``items`` or ``inputParameters._items``), or None."""
    workflow_task = loop["workflowTask"]
    expr = workflow_task.get("items")
    if expr is None:
        expr = workflow_task.get("inputParameters", {}).get("_items")
        if expr is None:
            return None
    value = resolve_params(
        {"items": expr}, run.wf, loop["taskId"], None, run.ctx.env, paths=run.ctx.paths
    )["items"]
    return list(value) if isinstance(value, list) else []


def execute_do_while(run: Run, loop: JSON) -> bool:
    """One execution of a running DO_WHILE; True when it changed anything."""
    iteration = int(loop.get("iteration") or 0)
    loop["outputData"] = dict(loop.get("outputData") or {})  # copied, then changed in place
    body = _body_tasks(run, loop, iteration)
    if not body:
        items = _items(run, loop)
        if items is not None and not items:
            loop["outputData"]["iteration"] = 0
            run.set_status(loop, TaskStatus.COMPLETED)
            return True
        _start_iteration(run, loop, 1, items)
        return True
    before = clone(loop["outputData"])
    outputs: JSON = {}
    failure = None
    for t in body.values():
        outputs[strip_iteration(t["referenceTaskName"])] = t.get("outputData", {})
        if not task_successful(t["status"]):
            failure = f"{t.get('reasonForIncompletion')} "
            break
    loop["outputData"][str(iteration)] = outputs
    if failure is not None:
        run.set_status(loop, TaskStatus.FAILED, failure)
        return True
    if not _iteration_complete(body):
        return bool(loop["outputData"] != before)
    items = _items(run, loop)
    try:
        more = _should_continue(run, loop, iteration, items)
    except (scripting.ScriptError, scripting.ScriptTimeout) as exc:
        reason = (
            f"Unable to evaluate condition {loop['workflowTask'].get('loopCondition')}, exception "
            f"{exc}"
        )
        run.set_status(loop, TaskStatus.FAILED_WITH_TERMINAL_ERROR, reason)
        return True
    if more:
        _start_iteration(run, loop, iteration + 1, items)
    else:
        run.set_status(loop, TaskStatus.COMPLETED)
    return True


def _iteration_complete(body: dict[str, JSON]) -> bool:
    # executed: the decider has already scheduled what follows each task inside the body
    return all(task_terminal(t["status"]) and t.get("executed") for t in body.values())


def _should_continue(run: Run, loop: JSON, iteration: int, items: list[Any] | None) -> bool:
    workflow_task = loop["workflowTask"]
    condition = workflow_task.get("loopCondition")
    if items is not None and iteration - 1 >= len(items) - 1:
        return False
    if condition is None:
        return items is not None
    task_def = (
        workflow_task.get("taskDefinition")
        if isinstance(workflow_task.get("taskDefinition"), dict)
        else None
    )
    bindings = resolve_params(
        workflow_task.get("inputParameters"),
        run.wf,
        loop["taskId"],
        task_def,
        run.ctx.env,
        paths=run.ctx.paths,
    )
    bindings[loop["referenceTaskName"]] = loop["outputData"]
    for t in run.tasks:
        ref = strip_iteration(t["referenceTaskName"])
        if (
            t is not loop
            and has_ref(workflow_task, ref)
            and t["referenceTaskName"] != loop["referenceTaskName"]
        ):
            bindings[ref] = t.get("outputData", {})
    cfg = run.ctx.config
    result = run.ctx.scripts.eval_js(
        str(condition),
        bindings,
        timeout_s=cfg.script_timeout_s,
        max_memory_bytes=cfg.script_max_memory_bytes,
    )
    return scripting.eval_bool(result)


def _start_iteration(run: Run, loop: JSON, iteration: int, items: list[Any] | None) -> None:
    loop["iteration"] = iteration
    loop["outputData"]["iteration"] = iteration
    if items is not None:
        loop["outputData"]["loopIndex"] = iteration - 1
        loop["outputData"]["loopItem"] = items[iteration - 1]
    _keep_last_n(run, loop, iteration)
    first = loop["workflowTask"]["loopOver"][0]
    mapped = map_task(run, first)
    for t in mapped:
        t["referenceTaskName"] = append_iteration(t["referenceTaskName"], iteration)
        t["iteration"] = iteration
    run.schedule(mapped)


def _keep_last_n(run: Run, loop: JSON, iteration: int) -> None:
    """Starting ``iteration``: keep only the last ``keepLastN`` iterations (it included)."""
    keep = loop["inputData"].get("keepLastN")
    if not isinstance(keep, int) or isinstance(keep, bool) or keep <= 0 or iteration <= keep:
        return
    cutoff = iteration - keep
    for i in range(1, cutoff + 1):
        loop["outputData"].pop(str(i), None)
    body_refs = {
        workflow_task["taskReferenceName"] for workflow_task in collect_tasks(loop["workflowTask"])
    }
    run.wf["tasks"] = [
        t
        for t in run.tasks
        if not (
            strip_iteration(t["referenceTaskName"]) in body_refs
            and 0 < int(t.get("iteration") or 0) <= cutoff
            and t is not loop
        )
    ]
