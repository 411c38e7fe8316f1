"""Sync system tasks executed inside the decide loop (``TASKS/*.java`` ``execute``).

Each executor takes a non-terminal task and answers whether it changed it. DO_WHILE lives in
:mod:`decider.loops`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from itertools import compress, count
from operator import itemgetter, not_

from decider import scripting
from decider.definition_tree import append_iteration
from decider.mapping import JS_EVALUATORS, evaluate
from decider.statuses import (
    TASK_SUCCESSFUL,
    TASK_TERMINAL,
    TaskStatus,
    TaskType,
    task_successful,
    task_terminal,
)
from decider.task_index import JoinProgress
from decider.workflow_run import Run
from podium.clone import clone
from podium.types import JSON

Executor = Callable[[Run, JSON], bool]


def execute(run: Run, task: JSON) -> bool:
    """Execute one sync system task if it is still running; True when it changed."""
    if task_terminal(task["status"]):
        return False
    fn = EXECUTORS.get(task["taskType"])
    return fn(run, task) if fn is not None else False


def _complete(run: Run, task: JSON) -> bool:
    run.set_status(task, TaskStatus.COMPLETED)
    return True


def _wait(run: Run, task: JSON) -> bool:
    deadline = int(task.get("waitTimeout") or 0)
    if deadline > 0 and run.now >= deadline:
        return _complete(run, task)
    return False


def _terminate(run: Run, task: JSON) -> bool:
    inp = task["inputData"]
    if inp.get("terminationStatus") not in ("COMPLETED", "FAILED", "TERMINATED"):
        run.set_status(task, TaskStatus.FAILED, "given termination status is not valid")
        return True
    out = inp.get("workflowOutput")
    task["outputData"] = (
        clone(out) if isinstance(out, dict) else ({} if out is None else {"output": out})
    )
    return _complete(run, task)


def _set_variable(run: Run, task: JSON) -> bool:
    variables = run.wf.setdefault("variables", {})
    merged = {**variables, **clone(task["inputData"])}
    size = len(json.dumps(merged, default=str).encode())
    limit = run.ctx.config.max_variables_bytes
    if size > limit:
        reason = (
            f"The variables payload size: {size} of workflow: {run.wf['workflowId']} is greater "
            f"than the permissible limit: {limit // 1024} kilobytes"
        )
        run.set_status(task, TaskStatus.FAILED_WITH_TERMINAL_ERROR, reason)
        return True
    run.wf["variables"] = merged
    return _complete(run, task)


def _fail_script(run: Run, task: JSON, status: str, message: str) -> bool:
    task["outputData"] = {"error": message}
    run.set_status(task, status, message)
    return True


def _inline(run: Run, task: JSON) -> bool:
    inp = task["inputData"]
    evaluator = inp.get("evaluatorType", "javascript")
    expression = inp.get("expression")
    terminal = TaskStatus.FAILED_WITH_TERMINAL_ERROR
    if evaluator is None or str(evaluator).strip() == "":
        return _fail_script(
            run,
            task,
            terminal,
            "Empty 'evaluatorType' in INLINE task's input parameters. "
            "A non-empty String value must be provided.",
        )
    if not isinstance(expression, str) or not expression.strip():
        return _fail_script(
            run,
            task,
            terminal,
            "Empty 'expression' in INLINE task's input parameters. "
            "A non-empty String value must be provided.",
        )
    if evaluator != "value-param" and evaluator not in JS_EVALUATORS:
        return _fail_script(
            run, task, terminal, f"There is no evaluator registered for evaluatorType: {evaluator}"
        )
    try:
        result = evaluate(run, str(evaluator), expression, inp)
    except scripting.ScriptError as exc:
        return _fail_script(run, task, terminal, str(exc))
    except scripting.ScriptTimeout as exc:
        return _fail_script(run, task, TaskStatus.FAILED, str(exc))
    task["outputData"] = {"result": result}
    return _complete(run, task)


def _lambda(run: Run, task: JSON) -> bool:
    script = task["workflowTask"].get("scriptExpression") or ""
    code = f"function scriptFun(){{{script}}} scriptFun();"
    cfg = run.ctx.config
    try:
        result = run.ctx.scripts.eval_js(
            code,
            task["inputData"],
            timeout_s=cfg.script_timeout_s,
            max_memory_bytes=cfg.script_max_memory_bytes,
        )
    except (scripting.ScriptError, scripting.ScriptTimeout) as exc:
        return _fail_script(run, task, TaskStatus.FAILED, str(exc))
    task["outputData"] = {"result": result}
    return _complete(run, task)


def _jq(run: Run, task: JSON) -> bool:
    inp = task["inputData"]
    query = inp.get("queryExpression")
    if not isinstance(query, str) or not query:
        run.set_status(task, TaskStatus.FAILED, "Missing 'queryExpression' in input parameters")
        return True
    cfg = run.ctx.config
    try:
        results = run.ctx.scripts.run_jq(
            query,
            inp,
            timeout_s=cfg.script_timeout_s,
            max_memory_bytes=cfg.script_max_memory_bytes,
        )
    except scripting.JqError as exc:
        return _fail_script(run, task, TaskStatus.FAILED, str(exc))
    task["outputData"] = {"result": results[0] if results else None, "resultList": results}
    return _complete(run, task)


def _join_on(task: JSON, key: str = "joinOn") -> list[str]:
    refs = [str(r) for r in task["inputData"].get(key) or []]
    if task.get("iteration", 0) > 0:
        # a join inside a loop waits for this iteration's tasks
        refs = [append_iteration(r, task["iteration"]) for r in refs]
    return refs


def _flags(t: JSON) -> tuple[bool, bool]:
    workflow_task = t.get("workflowTask") or {}
    return bool(workflow_task.get("optional")), bool(workflow_task.get("permissive"))


#: Statuses of a joined task that neither fail the join nor make it COMPLETED_WITH_ERRORS.
_PLAIN_SUCCESS = TASK_SUCCESSFUL - {TaskStatus.COMPLETED_WITH_ERRORS}
_status = itemgetter("status")


def _join(run: Run, task: JSON) -> bool:
    """A JOIN ends when every joined task has ended (or one failed that may not): only then is
    its output (each joined task's output by reference name) gathered. A join still waiting
    is left as it was, so a fan-out's thousand branches do not rewrite it at each decision.

    While it waits with no joined task failed, an indexed run (decider.task_index) goes on
    from where the last evaluation left off (JoinProgress) instead of looking at every
    branch again: a fan-out's join then costs each decision the branches that changed."""
    if run.indexed() and _still_waiting(run, task):
        return False
    run.joins.pop(task["taskId"], None)
    refs = _join_on(task)
    forked = run.latest_by_ref(refs)
    found = [t for t in forked.values() if t is not None]
    statuses = set(map(_status, found))
    all_terminal = len(found) == len(refs) and TASK_TERMINAL.issuperset(statuses)
    if _PLAIN_SUCCESS.issuperset(statuses):
        # The usual case, told in C: no joined task failed or completed with errors.
        if not all_terminal:
            if run.indexed():
                ended = map(TASK_TERMINAL.__contains__, (_status(forked[r] or _NONE) for r in refs))
                done = next(compress(count(), map(not_, ended)), len(refs))
                run.joins[task["taskId"]] = JoinProgress(
                    task["inputData"],
                    int(task.get("iteration") or 0),
                    tuple(refs),
                    frozenset(refs),
                    done,
                )
            return False
        _gather_output(task, refs, forked)
        run.set_status(task, TaskStatus.COMPLETED)
        return True
    optional_failures = []
    for i, ref in enumerate(refs):
        t = forked[ref]
        if t is None:
            continue
        optional, permissive = _flags(t)
        if not task_successful(t["status"]) and not optional and (not permissive or all_terminal):
            failed = [
                x for x in forked.values() if x is not None and not task_successful(x["status"])
            ]
            reason = " ".join(str(x.get("reasonForIncompletion")) for x in failed)
            blocking = [x for x in failed if not _flags(x)[0]]
            canceled = all(x["status"] == TaskStatus.CANCELED for x in blocking)
            _gather_output(task, refs[: i + 1], forked)
            run.set_status(task, TaskStatus.CANCELED if canceled else TaskStatus.FAILED, reason)
            return True
        if optional and t["status"] == TaskStatus.COMPLETED_WITH_ERRORS:
            optional_failures.append(f"{t['taskDefName']}/{t['taskId']}")
    if not all_terminal:
        return False
    _gather_output(task, refs, forked)
    if optional_failures:
        reason = " ".join(optional_failures) + " completed with errors"
        run.set_status(task, TaskStatus.COMPLETED_WITH_ERRORS, reason)
    else:
        run.set_status(task, TaskStatus.COMPLETED)
    return True


_NONE = {"status": ""}


def _still_waiting(run: Run, task: JSON) -> bool:
    """Whether a join that was waiting, with no joined task failed, at its last evaluation
    (the progress the run carries) still waits: the joined tasks this run changed or added
    are, in their latest attempt, not failed, and not every joined task has ended. Moves the
    progress on. False means: evaluate the join in full."""
    progress = run.joins.get(task["taskId"])
    if (
        progress is None
        or progress.inputs is not task["inputData"]
        or progress.iteration != int(task.get("iteration") or 0)
    ):
        return False
    for t in run.candidates():
        ref = t["referenceTaskName"]
        if ref in progress.ref_set:
            latest = run.task_by_ref(ref)
            if latest is None or latest["status"] not in _PLAIN_SUCCESS:
                return False
    refs, done = progress.refs, progress.done
    while done < len(refs):
        latest = run.task_by_ref(refs[done])
        if latest is None or latest["status"] not in TASK_TERMINAL:
            break
        done += 1
    if done == len(refs):
        return False  # all ended: the full evaluation ends the join
    run.joins[task["taskId"]] = dataclasses.replace(progress, done=done)
    return True


def _gather_output(task: JSON, refs: list[str], forked: dict[str, JSON | None]) -> None:
    """The join's output: the output of each of ``refs`` that has one (the task's own output
    is copied, then added to)."""
    task["outputData"] = output = dict(task.get("outputData") or {})
    for ref in refs:
        t = forked[ref]
        if t is not None and t.get("outputData"):
            output[ref] = t["outputData"]


def _exclusive_join(run: Run, task: JSON) -> bool:
    refs = _join_on(task)
    found, failed, chosen = False, False, None
    reason = ""

    def pick(candidates: list[str]) -> None:
        nonlocal found, failed, chosen, reason
        for ref in candidates:
            t = run.task_by_ref(ref)
            if t is None or t["status"] == TaskStatus.SKIPPED:
                continue
            chosen = t
            found = task_terminal(t["status"])
            all_done = all(
                (x := run.task_by_ref(r)) is not None and task_terminal(x["status"]) for r in refs
            )
            failed = not task_successful(t["status"]) and (not _flags(t)[1] or all_done)
            if failed:
                reason = f"{t.get('reasonForIncompletion')} "
            return

    pick(refs)
    if not found:
        defaults = _join_on(task, "defaultExclusiveJoinTask")
        if defaults:
            pick(defaults)
        else:
            found = True
    if not (found or failed):
        return False
    if failed:
        run.set_status(task, TaskStatus.FAILED, reason)
    else:
        task["outputData"] = clone(chosen["outputData"]) if chosen else {}
        run.set_status(task, TaskStatus.COMPLETED)
    return True


def _do_while(run: Run, task: JSON) -> bool:
    from decider.loops import execute_do_while

    return execute_do_while(run, task)


EXECUTORS: dict[str, Executor] = {
    TaskType.SWITCH: _complete,
    TaskType.DECISION: _complete,
    TaskType.NOOP: _complete,
    TaskType.WAIT: _wait,
    TaskType.TERMINATE: _terminate,
    TaskType.SET_VARIABLE: _set_variable,
    TaskType.INLINE: _inline,
    TaskType.LAMBDA: _lambda,
    TaskType.JSON_JQ_TRANSFORM: _jq,
    TaskType.JOIN: _join,
    TaskType.EXCLUSIVE_JOIN: _exclusive_join,
    TaskType.DO_WHILE: _do_while,
}
