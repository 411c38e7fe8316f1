"""Each task type's mapping and execution."""

from __future__ import annotations

from typing import Any

import pytest

from decider import NotifyParent, QueuePush, StartSubWorkflow, StartWorkflow, TerminateWorkflow
from decider.decision import DeciderConfig
from tests.decider.decider_harness import Harness, simple, wf_def


def sw(
    ref: str,
    cases: dict[str, list[dict[str, Any]]],
    default: list[dict[str, Any]] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    return {
        "name": ref,
        "taskReferenceName": ref,
        "type": "SWITCH",
        "decisionCases": cases,
        "defaultCase": default or [],
        **kw,
    }


def fork(ref: str, *branches: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {
        "name": ref,
        "taskReferenceName": ref,
        "type": "FORK_JOIN",
        "forkTasks": list(branches),
        **kw,
    }


def join(ref: str, on: list[str], **kw: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "JOIN", "joinOn": on, **kw}


def sys_task(ref: str, type_: str, **inputs: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": type_, "inputParameters": inputs}


# --- SIMPLE / user-defined / DYNAMIC ------------------------------------------------------


def test_simple_task_is_scheduled_on_its_queue_with_workflow_priority() -> None:
    h = Harness(
        wf_def(
            simple("a", inputParameters={"id": "${workflow.input.id}", "me": "${CPEWF_TASK_ID}"})
        )
    )
    dec = h.start({"id": 7}, priority=5, correlationId="c1")
    a = h.task("a")
    assert a["status"] == "SCHEDULED" and a["taskType"] == "a" and a["taskDefName"] == "a"
    assert a["inputData"] == {"id": 7, "me": a["taskId"]}
    assert a["seq"] == 1 and a["workflowPriority"] == 5 and a["correlationId"] == "c1"
    assert (
        a["responseTimeoutSeconds"] == 3600
        and a["workflowTask"]["taskDefinition"]["retryCount"] == 3
    )
    assert dec.pushes == [QueuePush("a", a["taskId"], 5, 0)]
    assert dec.created_task_ids == [a["taskId"]]


def test_start_delay_delays_the_queue_message() -> None:
    h = Harness(wf_def(simple("a", startDelay=30)))
    dec = h.start()
    assert dec.pushes[0].delay_ms == 30_000
    assert h.task("a")["callbackAfterSeconds"] == 30 and h.task("a")["startDelayInSeconds"] == 30


def test_task_to_domain_picks_active_domain_then_last() -> None:
    h = Harness(wf_def(simple("a"), simple("b")))
    dec = h.start(taskToDomain={"a": "blue,green", "*": "red,NO_DOMAIN"})
    assert h.task("a")["domain"] == "green" and dec.pushes[0].queue == "green:a"
    from decider import Context, start_workflow

    ctx = Context(now_ms=20_000, ids=h.ids, poll_times={("a", "blue"): 15_000})
    dec = start_workflow(h.definition, {"input": {}, "taskToDomain": {"a": "blue,green"}}, ctx)
    assert dec.pushes[0].queue == "blue:a"
    h.run_worker("a")
    assert "domain" not in h.task("b")  # NO_DOMAIN last: no domain
    assert h.last is not None and h.last.pushes[0].queue == "b"


def test_user_defined_type_needs_a_registered_definition() -> None:
    h = Harness(
        wf_def({"name": "x", "taskReferenceName": "x", "type": "MY_TYPE"}),
        task_defs={"x": {"name": "x"}},
    )
    dec = h.start()
    assert h.task("x")["taskType"] == "MY_TYPE" and dec.pushes[0].queue == "MY_TYPE"
    h2 = Harness(wf_def({"name": "x", "taskReferenceName": "x", "type": "MY_TYPE"}))
    h2.start()
    assert h2.status == "FAILED"
    assert "Cannot find task by name x in the task definitions" in h2.wf["reasonForIncompletion"]


def test_a_type_podium_does_not_run_fails_terminally_when_reached() -> None:
    chat = {"name": "chat", "taskReferenceName": "chat", "type": "LLM_CHAT_COMPLETE"}
    h = Harness(wf_def(simple("a"), {**chat, "inputParameters": {"p": "${a.output.y}"}}))
    h.start()
    dec = h.run_worker("a", {"y": 1})
    t = h.task("chat")
    assert (t["taskType"], t["status"]) == ("LLM_CHAT_COMPLETE", "FAILED_WITH_TERMINAL_ERROR")
    assert t["reasonForIncompletion"] == "task type LLM_CHAT_COMPLETE is not supported by Podium"
    assert t["inputData"] == {"p": 1} and t["retryCount"] == 0 and not dec.pushes
    assert h.status == "FAILED"
    assert "LLM_CHAT_COMPLETE is not supported by Podium" in h.wf["reasonForIncompletion"]
    # Optional: the workflow goes on past it.
    h2 = Harness(wf_def({**chat, "optional": True}, simple("b")))
    h2.start()
    assert h2.statuses() == {"chat": "COMPLETED_WITH_ERRORS", "b": "SCHEDULED"}


def test_dynamic_task_takes_its_name_from_input() -> None:
    d = wf_def(
        {
            "name": "dyn",
            "taskReferenceName": "dyn",
            "type": "DYNAMIC",
            "dynamicTaskNameParam": "n",
            "inputParameters": {"n": "${workflow.input.which}"},
        }
    )
    h = Harness(d, task_defs={"encode": {"name": "encode", "retryCount": 1}})
    dec = h.start({"which": "encode"})
    t = h.task("dyn")
    assert (
        t["taskType"] == "encode"
        and t["taskDefName"] == "encode"
        and dec.pushes[0].queue == "encode"
    )
    assert t["workflowTask"]["taskDefinition"]["retryCount"] == 1
    h2 = Harness(d)
    h2.start({})
    assert h2.status == "FAILED" and "Cannot map a dynamic task" in h2.wf["reasonForIncompletion"]
    h3 = Harness(d)
    h3.start({"which": "nope"})
    assert "Cannot find task by name nope" in h3.wf["reasonForIncompletion"]


# --- HTTP ---------------------------------------------------------------------------------


def test_http_is_queued_on_http_and_completed_by_an_update() -> None:
    d = wf_def(
        sys_task(
            "h", "HTTP", http_request={"uri": "http://x/${workflow.input.p}", "method": "GET"}
        ),
        simple("after"),
    )
    h = Harness(d)
    dec = h.start({"p": "q"}, taskToDomain={"*": "dom"})
    t = h.task("h")
    assert t["status"] == "SCHEDULED" and t["taskType"] == "HTTP" and "domain" not in t
    assert dec.pushes[0].queue == "HTTP" and t["inputData"]["http_request"]["uri"] == "http://x/q"
    h.claim("h", worker="sweeper")
    h.complete("h", {"response": {"statusCode": 200, "body": {"ok": True}}})
    assert h.statuses() == {"h": "COMPLETED", "after": "SCHEDULED"}


def test_failed_http_without_definition_fails_the_workflow() -> None:
    h = Harness(wf_def(sys_task("h", "HTTP", uri="http://x", method="GET")))
    h.start()
    h.claim("h")
    h.fail("h", "404 not found")
    assert h.status == "FAILED" and h.refs() == ["h"]


# --- FORK / JOIN --------------------------------------------------------------------------


def test_fork_join_schedules_branches_and_join_then_continues() -> None:
    d = wf_def(
        fork("f", [simple("a1"), simple("a2")], [simple("b")]), join("j", ["a2", "b"]), simple("z")
    )
    h = Harness(d)
    dec = h.start()
    assert h.summary() == [
        ("f", "FORK", "COMPLETED"),
        ("a1", "a1", "SCHEDULED"),
        ("b", "b", "SCHEDULED"),
        ("j", "JOIN", "IN_PROGRESS"),
    ]
    assert [p.queue for p in dec.pushes] == ["a1", "b"]
    h.run_worker("b", {"bo": 1})
    h.run_worker("a1")
    assert h.statuses()["a2"] == "SCHEDULED" and h.statuses()["j"] == "IN_PROGRESS"
    h.run_worker("a2", {"ao": 2})
    assert h.statuses()["j"] == "COMPLETED" and h.task("j")["outputData"] == {
        "a2": {"ao": 2},
        "b": {"bo": 1},
    }
    assert h.statuses()["z"] == "SCHEDULED"
    h.run_worker("z")
    assert h.status == "COMPLETED"


def test_a_waiting_join_is_not_rewritten_by_each_branch_that_ends() -> None:
    h = Harness(
        wf_def(fork("f", [simple("a")], [simple("b")], [simple("c")]), join("j", ["a", "b", "c"]))
    )
    h.start()
    join_before = h.task("j")
    dec = h.run_worker("a", {"ao": 1})
    assert [t["referenceTaskName"] for t in dec.changed_tasks] == ["a"]
    assert h.task("j") == join_before  # output gathered when it ends, not at each branch
    h.run_worker("b", {"bo": 2})
    h.run_worker("c")
    assert h.statuses()["j"] == "COMPLETED"
    assert h.task("j")["outputData"] == {"a": {"ao": 1}, "b": {"bo": 2}}


def test_join_fails_on_non_optional_failure_and_completes_with_errors_on_optional() -> None:
    d = wf_def(fork("f", [simple("a", optional=True)], [simple("b")]), join("j", ["a", "b"]))
    h = Harness(
        d, task_defs={"a": {"name": "a", "retryCount": 0}, "b": {"name": "b", "retryCount": 0}}
    )
    h.start()
    h.claim("a")
    h.fail("a", "opt-fail")
    assert h.statuses()["a"] == "COMPLETED_WITH_ERRORS" and h.statuses()["j"] == "IN_PROGRESS"
    h.run_worker("b")
    j = h.task("j")
    assert (
        j["status"] == "COMPLETED_WITH_ERRORS"
        and j["reasonForIncompletion"] == f"a/{h.task('a')['taskId']} completed with errors"
    )
    assert h.status == "COMPLETED"
    h2 = Harness(
        d, task_defs={"a": {"name": "a", "retryCount": 0}, "b": {"name": "b", "retryCount": 0}}
    )
    h2.start()
    h2.claim("b")
    h2.fail("b", "hard")
    assert h2.status == "FAILED" and h2.statuses()["a"] == "CANCELED"


def test_permissive_task_lets_the_flow_continue_then_fails_the_workflow() -> None:
    d = wf_def(
        fork("f", [simple("a", permissive=True), simple("a2")], [simple("b")]),
        join("j", ["a2", "b"]),
        simple("z"),
    )
    h = Harness(d, task_defs={"a": {"name": "a", "retryCount": 0}})
    h.start()
    h.claim("a")
    h.fail("a", "perm")
    assert h.statuses()["a"] == "FAILED" and h.statuses()["a2"] == "SCHEDULED"
    h.run_worker("a2")
    h.run_worker("b")
    h.run_worker("z")
    assert h.status == "FAILED"
    assert "perm" in h.wf["reasonForIncompletion"] and h.wf["failedReferenceTaskNames"] == ["a"]


def test_permissive_failure_in_join_on_waits_for_all() -> None:
    d = wf_def(fork("f", [simple("a", permissive=True)], [simple("b")]), join("j", ["a", "b"]))
    h = Harness(d, task_defs={"a": {"name": "a", "retryCount": 0}})
    h.start()
    h.claim("a")
    h.fail("a", "perm")
    assert h.statuses()["j"] == "IN_PROGRESS"
    h.run_worker("b")
    assert h.statuses()["j"] == "FAILED" and h.status == "FAILED"


def test_empty_join_on_completes_immediately() -> None:
    h = Harness(wf_def(fork("f", [simple("a")]), join("j", []), simple("z")))
    h.start()
    assert h.statuses() == {"f": "COMPLETED", "a": "SCHEDULED", "j": "COMPLETED", "z": "SCHEDULED"}


def test_fork_without_join_fails_at_run_time() -> None:
    h = Harness(wf_def(fork("f", [simple("a")]), simple("z")))
    h.start()
    assert h.status == "FAILED" and "not followed by a join task" in h.wf["reasonForIncompletion"]


# --- FORK_JOIN_DYNAMIC ----------------------------------------------------------------------


def test_dynamic_fork_list_style() -> None:
    dyn = {
        "name": "df", "taskReferenceName": "df", "type": "FORK_JOIN_DYNAMIC",
        "dynamicForkTasksParam": "tasks", "dynamicForkTasksInputParamName": "inputs",
        "inputParameters": {
            "tasks": "${workflow.input.tasks}", "inputs": "${workflow.input.inputs}",
        },
    }  # fmt: skip
    h = Harness(wf_def(dyn, join("dj", []), simple("z")))
    tasks = [{"name": "p", "taskReferenceName": "p1"}, {"name": "p", "taskReferenceName": "p2"}]
    h.start({"tasks": tasks, "inputs": {"p1": {"x": 1}, "p2": {"x": 2}}})
    assert h.summary() == [
        ("df", "FORK", "COMPLETED"),
        ("p1", "p", "SCHEDULED"),
        ("p2", "p", "SCHEDULED"),
        ("dj", "JOIN", "IN_PROGRESS"),
    ]
    assert h.task("dj")["inputData"]["joinOn"] == ["p1", "p2"]
    assert h.task("p2")["inputData"] == {"x": 2}
    h.run_worker("p1", {"r": 1})
    h.run_worker("p2", {"r": 2})
    assert h.task("dj")["outputData"] == {"p1": {"r": 1}, "p2": {"r": 2}}
    assert h.statuses()["z"] == "SCHEDULED"


def test_dynamic_fork_simple_style_and_bad_input() -> None:
    dyn = {
        "name": "df",
        "taskReferenceName": "df",
        "type": "FORK_JOIN_DYNAMIC",
        "inputParameters": {"forkTaskName": "work", "forkTaskInputs": "${workflow.input.items}"},
    }
    h = Harness(wf_def(dyn, join("dj", [])))
    h.start({"items": [{"a": 1}, "raw"]})
    assert h.refs() == ["df", "_work_0", "_work_1", "dj"]
    assert h.task("_work_0")["inputData"] == {"a": 1, "__index": 0}
    assert h.task("_work_1")["inputData"] == {"input": "raw", "__index": 1}
    h2 = Harness(wf_def(dict(dyn, inputParameters={"forkTaskInputs": []}), join("dj", [])))
    h2.start()
    assert h2.status == "COMPLETED"  # empty list: fork + join that completes at once
    bad = {
        "name": "df",
        "taskReferenceName": "df",
        "type": "FORK_JOIN_DYNAMIC",
        "dynamicForkTasksParam": "t",
        "dynamicForkTasksInputParamName": "i",
        "inputParameters": {"t": [{"name": "x"}], "i": {}},
    }
    h3 = Harness(wf_def(bad, join("dj", [])))
    h3.start()
    assert (
        h3.status == "FAILED"
        and "Cannot deserialize a list of Workflow Tasks" in h3.wf["reasonForIncompletion"]
    )


def test_dynamic_fork_legacy_style() -> None:
    dyn = {
        "name": "df",
        "taskReferenceName": "df",
        "type": "FORK_JOIN_DYNAMIC",
        "dynamicForkJoinTasksParam": "dt",
        "inputParameters": {"dt": "${workflow.input.dt}"},
    }
    h = Harness(wf_def(dyn, join("dj", [])))
    h.start({"dt": {"dynamicTasks": [{"taskName": "w", "referenceName": "r1", "input": {"k": 1}}]}})
    assert h.summary()[1] == ("r1", "w", "SCHEDULED") and h.task("r1")["inputData"] == {"k": 1}


# --- SWITCH / DECISION / EXCLUSIVE_JOIN ------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "chosen"),
    [
        ("fast", ["s", "fast_t", "after"]),
        ("slow", ["s", "slow_t"]),
        ("other", ["s", "dflt"]),
        ("none", ["s", "after"]),
    ],
)
def test_switch_value_param(kind: str, chosen: list[str]) -> None:
    s = sw(
        "s",
        {"fast": [sys_task("fast_t", "NOOP")], "slow": [simple("slow_t")], "none": []},
        [simple("dflt")],
        evaluatorType="value-param",
        expression="kind",
        inputParameters={"kind": "${workflow.input.kind}"},
    )
    h = Harness(wf_def(s, simple("after")))
    h.start({"kind": kind})
    assert h.refs() == chosen
    assert h.task("s")["outputData"] == {"evaluationResult": [kind], "selectedCase": kind}
    assert h.task("s")["status"] == "COMPLETED"


def test_switch_javascript_and_evaluation_error() -> None:
    s = sw(
        "s",
        {"big": [simple("b")], "true": [simple("t")]},
        [simple("d")],
        evaluatorType="graaljs",
        expression="$.n > 10 ? 'big' : $.n > 5",
        inputParameters={"n": "${workflow.input.n}"},
    )
    for n, ref in ((11, "b"), (6, "t"), (1, "d")):
        h = Harness(wf_def(s))
        h.start({"n": n})
        assert h.refs() == ["s", ref]
    s_err = dict(s, expression="$.missing.deep")
    h = Harness(wf_def(s_err))
    h.start({})
    assert h.summary() == [("s", "SWITCH", "FAILED")] and h.status == "FAILED"
    h = Harness(wf_def(dict(s, evaluatorType="python")))
    h.start({})
    assert (
        h.status == "FAILED"
        and h.wf["reasonForIncompletion"] == "No evaluator registered for type: python"
    )


def test_decision_empty_case_falls_back_to_default() -> None:
    dec_t = {
        "name": "d",
        "taskReferenceName": "d",
        "type": "DECISION",
        "caseValueParam": "c",
        "inputParameters": {"c": "${workflow.input.c}"},
        "decisionCases": {"x": [simple("xt")], "e": []},
        "defaultCase": [simple("dt")],
    }
    for c, ref in (("x", "xt"), ("e", "dt"), (None, "dt")):
        h = Harness(wf_def(dec_t))
        h.start({"c": c})
        assert h.refs() == ["d", ref]
        assert h.task("d")["outputData"] == {"caseOutput": ["null" if c is None else c]}


def test_exclusive_join_takes_the_chosen_branch_output() -> None:
    s = sw(
        "s",
        {"a": [simple("ta")], "b": [simple("tb")]},
        evaluatorType="value-param",
        expression="k",
        inputParameters={"k": "${workflow.input.k}"},
    )
    ej = {"name": "ej", "taskReferenceName": "ej", "type": "EXCLUSIVE_JOIN", "joinOn": ["ta", "tb"]}
    h = Harness(wf_def(s, ej, simple("z")))
    h.start({"k": "b"})
    h.run_worker("tb", {"v": "from-b"})
    assert h.statuses()["ej"] == "COMPLETED" and h.task("ej")["outputData"] == {"v": "from-b"}
    assert h.pending() == ["z"]


# --- DO_WHILE -----------------------------------------------------------------------------


def loop(ref: str, body: list[dict[str, Any]], condition: str | None, **kw: Any) -> dict[str, Any]:
    t = {"name": ref, "taskReferenceName": ref, "type": "DO_WHILE", "loopOver": body, **kw}
    if condition is not None:
        t["loopCondition"] = condition
    return t


def test_do_while_runs_iterations_with_suffixes() -> None:
    d = wf_def(loop("l", [simple("a"), simple("b")], "$.l['iteration'] < 3"), simple("z"))
    h = Harness(d)
    h.start()
    assert h.refs() == ["l", "a__1"]
    for i in (1, 2, 3):
        h.run_worker(f"a__{i}", {"i": i})
        h.run_worker(f"b__{i}", {"j": i})
    assert h.refs() == ["l", "a__1", "b__1", "a__2", "b__2", "a__3", "b__3", "z"]
    out = h.task("l")["outputData"]
    assert out["iteration"] == 3 and out["2"] == {"a": {"i": 2}, "b": {"j": 2}}
    assert h.task("b__2")["iteration"] == 2 and h.task("l")["status"] == "COMPLETED"


def test_do_while_condition_sees_body_outputs_and_binding_sees_latest_iteration() -> None:
    body = [sys_task("inc", "INLINE", expression="($.prev || 0) + 1", prev="${inc.output.result}")]
    h = Harness(wf_def(loop("l", body, "$.inc.result < 4")))
    h.start()
    assert h.status == "COMPLETED"
    assert [h.task(f"inc__{i}")["outputData"]["result"] for i in (1, 2, 3, 4)] == [1, 2, 3, 4]


def test_do_while_keep_last_n_and_items() -> None:
    body = [sys_task("n", "NOOP")]
    h = Harness(wf_def(loop("l", body, "$.l.iteration < 5", inputParameters={"keepLastN": 2})))
    dec = h.start()
    assert h.refs() == ["l", "n__4", "n__5"]
    assert sorted(k for k in h.task("l")["outputData"] if k.isdigit()) == ["4", "5"]
    assert dec.removed_task_ids == []  # removed within the same decision: never persisted
    items = loop(
        "li",
        [sys_task("e", "INLINE", expression="$.v * 10", v="${li.output.loopItem}")],
        None,
        items="${workflow.input.list}",
    )
    h2 = Harness(wf_def(items))
    h2.start({"list": [1, 2, 3]})
    assert h2.status == "COMPLETED" and [
        h2.task(f"e__{i}")["outputData"]["result"] for i in (1, 2, 3)
    ] == [10, 20, 30]
    h3 = Harness(wf_def(items))
    h3.start({"list": []})
    assert h3.refs() == ["li"] and h3.task("li")["outputData"] == {"iteration": 0}


def test_do_while_condition_error_and_failed_body() -> None:
    h = Harness(wf_def(loop("l", [sys_task("n", "NOOP")], "$.nope.x > 1")))
    h.start()
    assert h.task("l")["status"] == "FAILED_WITH_TERMINAL_ERROR" and h.status == "FAILED"
    assert h.task("l")["reasonForIncompletion"].startswith(
        "Unable to evaluate condition $.nope.x > 1, exception"
    )
    h2 = Harness(
        wf_def(loop("l", [simple("a", permissive=True)], "true")),
        task_defs={"a": {"name": "a", "retryCount": 0}},
    )
    h2.start()
    h2.claim("a__1")
    h2.fail("a__1", "bad")
    assert h2.task("l")["status"] == "FAILED" and h2.status == "FAILED"


def test_do_while_body_retry_is_waited_for() -> None:
    h = Harness(
        wf_def(loop("l", [simple("a")], "false")),
        task_defs={"a": {"name": "a", "retryCount": 1, "retryDelaySeconds": 0}},
    )
    h.start()
    h.claim("a__1")
    h.fail("a__1")
    assert [t["status"] for t in h.wf["tasks"]] == ["IN_PROGRESS", "FAILED", "SCHEDULED"]
    h.run_worker("a__1")
    assert h.status == "COMPLETED"


# --- SUB_WORKFLOW / START_WORKFLOW ------------------------------------------------------------


def test_sub_workflow_emits_start_and_maps_child_status() -> None:
    d = wf_def(
        {
            "name": "sub",
            "taskReferenceName": "sub",
            "type": "SUB_WORKFLOW",
            "subWorkflowParam": {"name": "child", "version": 2},
            "inputParameters": {"x": "${workflow.input.x}"},
        },
        simple("z"),
    )
    h = Harness(d)
    dec = h.start({"x": 1}, correlationId="c")
    t = h.task("sub")
    assert t["status"] == "SCHEDULED" and t["subWorkflowId"]
    cmd = dec.commands[0]
    assert isinstance(cmd, StartSubWorkflow)
    assert (cmd.name, cmd.version, cmd.input, cmd.correlation_id) == ("child", 2, {"x": 1}, "c")
    assert cmd.workflow_id == t["subWorkflowId"] and cmd.parent_workflow_task_id == t["taskId"]
    assert h.decide(at=1000).commands == [cmd]  # re-issued until the child reports
    h.child("sub", "RUNNING", at=2000)
    assert h.task("sub")["status"] == "IN_PROGRESS" and h.decide(at=3000).commands == []
    h.child("sub", "COMPLETED", {"y": 2}, at=4000)
    assert h.task("sub")["outputData"] == {"y": 2, "subWorkflowId": t["subWorkflowId"]}
    assert h.pending() == ["z"]


@pytest.mark.parametrize(
    ("child", "task_status", "wf_status"),
    [
        ("FAILED", "FAILED", "FAILED"),
        ("TERMINATED", "CANCELED", "TERMINATED"),
        ("TIMED_OUT", "TIMED_OUT", "TIMED_OUT"),
    ],
)
def test_sub_workflow_unsuccessful_child(child: str, task_status: str, wf_status: str) -> None:
    h = Harness(
        wf_def(
            {
                "name": "sub",
                "taskReferenceName": "sub",
                "type": "SUB_WORKFLOW",
                "subWorkflowParam": {"name": "child"},
            }
        )
    )
    h.start()
    h.child("sub", "RUNNING")
    h.child("sub", child, reason="why")
    t = h.task("sub")
    assert t["status"] == task_status and h.status == wf_status
    assert (
        t["reasonForIncompletion"]
        == f"Sub workflow child.None/{t['subWorkflowId']} failure reason: why"
    )


def test_child_workflow_notifies_parent_and_terminating_parent_terminates_child() -> None:
    child = Harness(wf_def(simple("c")))
    dec = child.start(workflowId="child-1", parentWorkflowId="p", parentWorkflowTaskId="pt")
    note = dec.commands[0]
    assert isinstance(note, NotifyParent)
    assert note.kind == "notify_parent" and note.status == "RUNNING"
    dec = child.run_worker("c", {"o": 1})
    note = dec.commands[0]
    assert isinstance(note, NotifyParent)
    assert (note.kind, note.status, note.output, note.parent_workflow_task_id) == (
        "notify_parent",
        "COMPLETED",
        {"o": 1},
        "pt",
    )
    from decider import terminate

    parent = Harness(
        wf_def(
            {
                "name": "sub",
                "taskReferenceName": "sub",
                "type": "SUB_WORKFLOW",
                "subWorkflowParam": {"name": "child"},
            }
        )
    )
    parent.start()
    parent.child("sub", "RUNNING")
    dec = parent.apply(terminate, "stop")
    assert [c.kind for c in dec.commands] == ["terminate_workflow"]
    assert isinstance(dec.commands[0], TerminateWorkflow)
    assert dec.commands[0].reason == "Parent workflow has been terminated with reason: stop"


def test_start_workflow_task() -> None:
    req = {"name": "other", "version": 1, "input": {"a": "${workflow.input.a}"}}
    h = Harness(wf_def(sys_task("sw", "START_WORKFLOW", startWorkflow=req)), prefix="x")
    dec = h.start({"a": 5}, correlationId="corr")
    cmd = dec.commands[0]
    assert isinstance(cmd, StartWorkflow) and cmd.input == {"a": 5} and cmd.correlation_id == "corr"
    assert cmd.reply_task_id == h.task("sw")["taskId"]
    h.complete("sw", {"workflowId": cmd.workflow_id})
    assert h.status == "COMPLETED" and h.wf["output"] == {"workflowId": cmd.workflow_id}
    h2 = Harness(wf_def(sys_task("sw", "START_WORKFLOW")))
    h2.start()
    assert (
        h2.status == "FAILED"
        and h2.task("sw")["reasonForIncompletion"] == "Missing 'startWorkflow' in input data."
    )


# --- WAIT / HUMAN ---------------------------------------------------------------------------


def test_wait_duration_completes_on_the_timer() -> None:
    h = Harness(wf_def(sys_task("w", "WAIT", duration="10 s"), simple("z")))
    dec = h.start(at=1000)
    assert h.task("w")["status"] == "IN_PROGRESS" and h.task("w")["waitTimeout"] == 11_000
    assert dec.next_check_ms == 11_000 and dec.pushes == []
    h.decide(at=10_999)
    assert h.task("w")["status"] == "IN_PROGRESS"
    h.decide(at=11_000)
    assert h.statuses() == {"w": "COMPLETED", "z": "SCHEDULED"}


def test_wait_until_and_signal_and_bad_input() -> None:
    h = Harness(wf_def(sys_task("w", "WAIT", until="2030-01-01 00:00 UTC")))
    h.start()
    assert h.task("w")["waitTimeout"] == 1_893_456_000_000
    h2 = Harness(wf_def(sys_task("w", "WAIT")))
    dec = h2.start()
    assert h2.task("w")["waitTimeout"] == 0 and dec.next_check_ms == 30_000
    from decider import signal

    h2.apply(signal, "COMPLETED", {"ok": 1})
    assert h2.status == "COMPLETED" and h2.wf["output"] == {"ok": 1}
    h3 = Harness(wf_def(sys_task("w", "WAIT", duration="${workflow.input.d}")))
    h3.start({"d": "whenever"})
    assert h3.task("w")["status"] == "FAILED_WITH_TERMINAL_ERROR" and h3.status == "FAILED"


def test_human_waits_for_an_update() -> None:
    h = Harness(wf_def(sys_task("hu", "HUMAN", who="me")))
    h.start()
    h.decide(at=10**9)
    assert h.task("hu")["status"] == "IN_PROGRESS"
    h.update("hu", "IN_PROGRESS", outputData={"partial": 1})
    assert h.task("hu")["status"] == "IN_PROGRESS"  # a system task stays IN_PROGRESS
    h.complete("hu", {"approved": True})
    assert h.status == "COMPLETED"


# --- TERMINATE / SET_VARIABLE / INLINE / JQ / NOOP / LAMBDA --------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [("COMPLETED", "COMPLETED"), ("FAILED", "FAILED"), ("TERMINATED", "TERMINATED")],
)
def test_terminate_ends_the_workflow_and_cancels_other_branches(status: str, expected: str) -> None:
    term = sys_task(
        "t",
        "TERMINATE",
        terminationStatus=status,
        workflowOutput={"o": "${workflow.input.v}"},
        terminationReason="done here",
    )
    h = Harness(
        wf_def(
            fork("f", [simple("slow")], [term]),
            join("j", ["slow", "t"]),
            simple("never"),
            failureWorkflow="cleanup",
        )
    )
    dec = h.start({"v": 9})
    assert h.status == expected and h.wf["output"]["o"] == 9
    assert h.statuses()["slow"] == "CANCELED" and h.statuses()["j"] == "CANCELED"
    assert h.wf["reasonForIncompletion"] == "done here"
    assert any(r.queue == "slow" for r in dec.removals) or not dec.pushes
    started_failure = [c for c in dec.commands if c.kind == "start_workflow"]
    assert bool(started_failure) == (expected != "COMPLETED")


def test_set_variable_and_limit() -> None:
    h = Harness(
        wf_def(
            sys_task("sv", "SET_VARIABLE", a="${workflow.input.a}"),
            simple("use", inputParameters={"a": "${workflow.variables.a}"}),
            variables={"keep": 1},
        )
    )
    h.start({"a": [1, 2]})
    assert h.wf["variables"] == {"keep": 1, "a": [1, 2]} and h.task("use")["inputData"] == {
        "a": [1, 2]
    }
    small = Harness(
        wf_def(sys_task("sv", "SET_VARIABLE", big="x" * 2000)),
        config=DeciderConfig(max_variables_bytes=1024),
    )
    small.start()
    assert (
        small.task("sv")["status"] == "FAILED_WITH_TERMINAL_ERROR" and small.wf["variables"] == {}
    )
    assert (
        "is greater than the permissible limit: 1 kilobytes"
        in small.task("sv")["reasonForIncompletion"]
    )


def test_inline() -> None:
    h = Harness(
        wf_def(
            sys_task(
                "i",
                "INLINE",
                evaluatorType="javascript",
                expression="function f(){ return $.a + $.b; } f();",
                a=1,
                b=2,
            )
        )
    )
    h.start()
    assert h.task("i")["outputData"] == {"result": 3} and h.status == "COMPLETED"
    h = Harness(wf_def(sys_task("i", "INLINE", evaluatorType="graaljs", expression="$.x.y.z")))
    h.start()
    assert (
        h.task("i")["status"] == "FAILED_WITH_TERMINAL_ERROR"
        and "TypeError" in h.task("i")["outputData"]["error"]
    )
    h = Harness(
        wf_def(sys_task("i", "INLINE", evaluatorType="javascript", expression="while(true){}")),
        config=DeciderConfig(script_timeout_s=0.2),
    )
    h.start()
    assert h.task("i")["status"] == "FAILED" and h.status == "FAILED"
    assert (
        h.task("i")["reasonForIncompletion"]
        == "Script not evaluated within 0.2 seconds, interrupted."
    )
    h = Harness(wf_def(sys_task("i", "INLINE", evaluatorType="value-param", expression="k", k=[1])))
    h.start()
    assert h.task("i")["outputData"] == {"result": [1]}


def test_json_jq_transform() -> None:
    h = Harness(
        wf_def(
            sys_task(
                "q",
                "JSON_JQ_TRANSFORM",
                queryExpression=".in | map(. * 2)",
                **{"in": "${workflow.input.v}"},
            )
        )
    )
    h.start({"v": [1, 2]})
    assert h.task("q")["outputData"] == {"result": [2, 4], "resultList": [[2, 4]]}
    h = Harness(wf_def(sys_task("q", "JSON_JQ_TRANSFORM", queryExpression=".a.b", a=1)))
    h.start()
    assert (
        h.task("q")["status"] == "FAILED"
        and "Cannot index number" in h.task("q")["reasonForIncompletion"]
    )


def test_noop_and_lambda() -> None:
    lam = {
        "name": "l",
        "taskReferenceName": "l",
        "type": "LAMBDA",
        "scriptExpression": "return $.a * 3;",
        "inputParameters": {"a": 2},
    }
    h = Harness(wf_def(sys_task("n", "NOOP"), lam))
    h.start()
    assert h.summary() == [("n", "NOOP", "COMPLETED"), ("l", "LAMBDA", "COMPLETED")]
    assert h.task("l")["outputData"] == {"result": 6}


@pytest.mark.parametrize(
    ("sink", "event"),
    [
        ("conductor", "conductor:wf:e"),
        ("conductor:orders", "conductor:wf:orders"),
        ("conductor:other_wf:orders", "conductor:other_wf:orders"),
        ("amqp:${workflow.input.q}", "amqp:jobs"),
        ("amqp_exchange:ex?routingKey=k", "amqp_exchange:ex?routingKey=k"),
    ],
)
def test_event_is_queued_for_the_sweeper_with_its_message_as_output(sink: str, event: str) -> None:
    d = wf_def(
        {"name": "e", "taskReferenceName": "e", "type": "EVENT", "sink": sink,
         "inputParameters": {"n": "${workflow.input.n}"}},
        simple("after"),
    )  # fmt: skip
    h = Harness(d)
    dec = h.start({"n": 3, "q": "jobs"}, correlationId="c1")
    t = h.task("e")
    assert t["status"] == "SCHEDULED" and t["taskType"] == "EVENT"
    assert dec.pushes[0].queue == "EVENT"
    out = t["outputData"]
    assert out["event_produced"] == event and out["n"] == 3 and out["correlationId"] == "c1"
    assert out["workflowInstanceId"] == h.wf["workflowId"] and out["taskId"] == t["taskId"]
    assert out["workflowType"] == "wf" and out["workflowVersion"] == 1
    h.claim("e", worker="sweeper")
    h.complete("e", out)
    assert h.statuses() == {"e": "COMPLETED", "after": "SCHEDULED"}


def test_event_to_a_sink_nothing_carries_fails_terminally() -> None:
    h = Harness(wf_def({"name": "e", "taskReferenceName": "e", "type": "EVENT", "sink": "sqs:q"}))
    dec = h.start()
    t = h.task("e")
    assert t["status"] == "FAILED_WITH_TERMINAL_ERROR" and not dec.pushes
    assert "event type 'sqs'" in t["reasonForIncompletion"]
