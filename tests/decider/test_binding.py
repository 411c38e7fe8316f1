"""Parameter binding (``${...}``) and the sandboxed evaluators."""

from __future__ import annotations

import time
from typing import Any

import pytest

from decider import scripting
from decider.binding import Resolver, java_str, resolve_params

WF: dict[str, Any] = {
    "workflowId": "wf-1",
    "workflowName": "order",
    "workflowVersion": 3,
    "status": "RUNNING",
    "correlationId": "corr",
    "parentWorkflowId": "parent-1",
    "input": {
        "orderId": 42,
        "items": [{"id": 1, "n": "a"}, {"id": 2, "n": "b"}],
        "key": "orderId",
        "price": 1.5,
        "flag": True,
        "m": {"a": 1, "b": [1, 2]},
        "my-key": "dash",
        "a.b": "dot",
    },
    "variables": {"counter": 7},
    "workflowDefinition": {"name": "order", "version": 3, "schemaVersion": 2},
    "tasks": [
        {
            "referenceTaskName": "t1",
            "taskId": "task-1",
            "taskType": "t1",
            "status": "FAILED",
            "retryCount": 0,
            "iteration": 0,
            "inputData": {},
            "outputData": {"v": "old"},
        },
        {
            "referenceTaskName": "t1",
            "taskId": "task-2",
            "taskType": "t1",
            "status": "COMPLETED",
            "retryCount": 1,
            "iteration": 0,
            "inputData": {"i": 1},
            "outputData": {"v": "new", "list": [3, 4]},
        },
        {
            "referenceTaskName": "body__1",
            "taskId": "b1",
            "taskType": "body",
            "status": "COMPLETED",
            "iteration": 1,
            "inputData": {},
            "outputData": {"i": 1},
        },
        {
            "referenceTaskName": "body__2",
            "taskId": "b2",
            "taskType": "body",
            "status": "COMPLETED",
            "iteration": 2,
            "inputData": {},
            "outputData": {"i": 2},
        },
    ],
}


def r(text: str, task_id: str | None = "me") -> Any:
    return Resolver(WF, task_id, {"MY_ENV": "env-value"}).resolve_string(text)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("${workflow.input.orderId}", 42),
        ("${workflow.input.items}", [{"id": 1, "n": "a"}, {"id": 2, "n": "b"}]),
        ("${workflow.input.items[1].n}", "b"),
        ("${workflow.input.items[-1].id}", 2),
        ("${workflow.input.flag}", True),
        ("${workflow.input.missing}", None),
        ("${workflow.variables.counter}", 7),
        ("${workflow.workflowId}", "wf-1"),
        ("${workflow.workflowType}", "order"),
        ("${workflow.version}", 3),
        ("${workflow.correlationId}", "corr"),
        ("${workflow.parentWorkflowId}", "parent-1"),
        ("${workflow.status}", "RUNNING"),
        ("${workflow.schemaVersion}", 2),
        ("${t1.output.v}", "new"),  # the latest retry wins
        ("${t1.output}", {"v": "new", "list": [3, 4]}),
        ("${t1.input.i}", 1),
        ("${t1.taskId}", "task-2"),
        ("${t1.status}", "COMPLETED"),
        ("${t1.retryCount}", 1),
        ("${body.output.i}", 2),  # loop body: suffix stripped, latest iteration wins
        ("${body__1.output.i}", None),
        ("${unknown.output.x}", None),
        ("${CPEWF_TASK_ID}", "me"),
        ("${MY_ENV}", "env-value"),
        ("${workflow.input.${workflow.input.key}}", 42),  # nested, inside out
        ("${workflow.input.items[?(@.id == 2)].n}", ["b"]),  # filters are indefinite: a list
        ("${workflow.input.items[*].id}", [1, 2]),
        ("${workflow..orderId}", [42]),
        ("${workflow.input.items.length()}", 2),
        ("${workflow.input['a.b']}", "dot"),
        ("${workflow.input.my-key}", "dash"),
        ("${}", ""),
    ],
)
def test_whole_value_expressions_keep_their_type(expr: str, expected: Any) -> None:
    assert r(expr) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("order-${workflow.input.orderId}", "order-42"),
        ("${workflow.input.price}/${workflow.input.flag}", "1.5/true"),
        ("m=${workflow.input.m}", "m={a=1, b=[1, 2]}"),
        ("x=${workflow.input.missing}", "x=null"),
        ("$${workflow.input.orderId}", "${workflow.input.orderId}"),
        ("keep $${x} and ${workflow.input.orderId}", "keep ${x} and 42"),
        ("${workflow.secrets.token}", "${workflow.secrets.token}"),
        ("id ${CPEWF_TASK_ID}", "id me"),
        ("no expressions", "no expressions"),
        ("broken ${workflow.input", "broken ${workflow.input"),
    ],
)
def test_interpolation(text: str, expected: str) -> None:
    assert r(text) == expected


def test_cpewf_task_id_without_task_id_is_kept_literally() -> None:
    assert r("${CPEWF_TASK_ID}", task_id=None) == "${CPEWF_TASK_ID}"


def test_maps_and_lists_resolve_recursively_keys_untouched() -> None:
    params = {"${workflow.input.key}": ["${workflow.input.orderId}", {"x": "${t1.output.v}"}, 5]}
    assert resolve_params(params, WF) == {"${workflow.input.key}": [42, {"x": "new"}, 5]}


def test_resolution_does_not_alias_workflow_state() -> None:
    out = resolve_params({"o": "${t1.output}"}, WF)
    out["o"]["v"] = "mutated"
    assert WF["tasks"][1]["outputData"]["v"] == "new"


def test_task_def_input_template_defaults() -> None:
    task_def = {"inputTemplate": {"a": "tmpl-a", "b": {"deep": 1}, "c": "tmpl-c"}}
    out = resolve_params({"a": "${workflow.input.missing}", "c": "given"}, WF, task_def=task_def)
    assert out == {"a": "tmpl-a", "b": {"deep": 1}, "c": "given"}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (3, "3"),
        (1.0, "1.0"),
        (1e7, "1.0E7"),
        (1.5e-5, "1.5E-5"),
        ([1, "a"], "[1, a]"),
        ({"k": None}, "{k=null}"),
    ],
)
def test_java_to_string(value: Any, text: str) -> None:
    assert java_str(value) == text


def test_js_program_completion_value_and_input() -> None:
    assert scripting.eval_js("$.a + 1", {"a": 1}) == 2
    assert scripting.eval_js("(function(){ return $.n * 2; })()", {"n": 1.5}) == 3
    assert scripting.eval_js("var x = []; x.push($.k); x", {"k": "v"}) == ["v"]
    assert scripting.eval_js("undefined", {}) is None


def test_js_errors_and_limits() -> None:
    with pytest.raises(scripting.ScriptError, match="TypeError"):
        scripting.eval_js("$.a.b.c", {})
    with pytest.raises(scripting.ScriptError, match="SyntaxError"):
        scripting.eval_js("function (", {})
    started = time.monotonic()
    with pytest.raises(
        scripting.ScriptTimeout, match=r"Script not evaluated within 0\.3 seconds, interrupted\."
    ):
        scripting.eval_js("while(true){}", {}, timeout_s=0.3)
    assert time.monotonic() - started < 3
    with pytest.raises(scripting.ScriptTimeout, match="memory"):
        scripting.eval_js(
            "var a=[]; while(true){ a.push(new Array(100000).fill(1)); }",
            {},
            max_memory_bytes=32 * 1024 * 1024,
        )


def test_js_sandbox_has_no_host_access() -> None:
    for probe in ("typeof require", "typeof process", "typeof fetch", "typeof XMLHttpRequest"):
        assert scripting.eval_js(probe, {}) == "undefined"


def test_js_contexts_do_not_leak_state() -> None:
    scripting.eval_js("globalThis.leak = 1; 0", {})
    assert scripting.eval_js("typeof leak", {}) == "undefined"


def test_eval_bool() -> None:
    assert scripting.eval_bool(True) and scripting.eval_bool(2) and not scripting.eval_bool(0)
    assert not scripting.eval_bool("true") and not scripting.eval_bool(None)


def test_jq() -> None:
    assert scripting.run_jq(".a + 1", {"a": 1}) == [2]
    assert scripting.run_jq(".[] | .x", [{"x": 1.0}, {"x": 2.5}]) == [1, 2.5]
    with pytest.raises(scripting.JqError):
        scripting.run_jq(".a |", {})
    with pytest.raises(scripting.JqError):
        scripting.run_jq(".a.b", {"a": 1})
