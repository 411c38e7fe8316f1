"""Definition validation: every rule, and each error names its field."""

from __future__ import annotations

from typing import Any

import pytest

from decider import ValidationError, validate_task_def, validate_workflow_def
from decider.definition_tree import populate_task_defs
from podium.definitions.shape import default_task_def, normalize_workflow_def
from tests.decider.decider_harness import simple, wf_def


def errors_of(definition: Any, **kw: Any) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as exc:
        validate_workflow_def(definition, **kw)
    assert exc.value.http_status == 400
    assert exc.value.message == "Validation failed, check below errors for detail."
    return exc.value.errors


def messages(definition: Any, **kw: Any) -> list[str]:
    return [e["message"] for e in errors_of(definition, **kw)]


def test_valid_definition_is_normalized_with_conductor_defaults() -> None:
    d = validate_workflow_def(wf_def(simple("a")))
    assert d["version"] == 1 and d["schemaVersion"] == 2 and d["restartable"] is True
    assert d["timeoutPolicy"] == "ALERT_ONLY" and d["timeoutSeconds"] == 0
    t = d["tasks"][0]
    assert t["type"] == "SIMPLE" and t["optional"] is False and t["startDelay"] == 0
    assert t["inputParameters"] == {} and t["decisionCases"] == {}


def test_empty_definition_reports_name_and_tasks() -> None:
    errs = errors_of({})
    assert {"path": "name", "message": "WorkflowDef name cannot be null or empty"} in errs
    assert {"path": "tasks", "message": "WorkflowTask list cannot be empty"} in errs


def test_owner_email_mandatory_is_optional_rule() -> None:
    assert "ownerEmail cannot be empty" in messages(
        {"name": "x", "tasks": [simple("a")]}, owner_email_mandatory=True
    )
    validate_workflow_def(wf_def(simple("a")))


def test_schema_version_must_be_2() -> None:
    assert messages(wf_def(simple("a"), schemaVersion=1)) == [
        "workflowDef schemaVersion: 2 is only supported"
    ]


def test_bad_timeout_policy_and_timeout() -> None:
    errs = errors_of(wf_def(simple("a"), timeoutPolicy="RETRY", timeoutSeconds=-1))
    assert {e["path"] for e in errs} == {"timeoutPolicy", "timeoutSeconds"}


def test_task_name_and_ref_required_with_paths() -> None:
    errs = errors_of(wf_def({"type": "SIMPLE"}))
    assert {"path": "tasks[0].name", "message": "WorkflowTask name cannot be empty or null"} in errs
    assert {
        "path": "tasks[0].taskReferenceName",
        "message": "WorkflowTask taskReferenceName name cannot be empty or null",
    } in errs


def test_negative_start_delay() -> None:
    errs = errors_of(wf_def(simple("a", startDelay=-1)))
    assert errs[0]["path"] == "tasks[0].startDelay"


def test_duplicate_refs_across_nested_tasks() -> None:
    d = wf_def(
        simple("a"),
        {
            "name": "f",
            "taskReferenceName": "f",
            "type": "FORK_JOIN",
            "forkTasks": [[simple("a")], [simple("b")]],
        },
        {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": ["a", "b"]},
    )
    assert messages(d) == [
        "taskReferenceName: a should be unique across tasks for a given workflowDefinition: wf"
    ]


def test_input_expression_must_name_a_known_ref() -> None:
    d = wf_def(simple("a", inputParameters={"x": "${nope.output.y}", "ok": "${workflow.input.z}"}))
    errs = errors_of(d)
    assert errs[0]["path"] == "tasks[0].inputParameters.x"
    assert "is not defined in workflow definition" in errs[0]["message"]
    validate_workflow_def(
        wf_def(simple("a"), simple("b", inputParameters={"x": "${a.output.y} ${CPEWF_TASK_ID}"}))
    )


def test_join_on_must_name_refs_of_the_definition() -> None:
    fork = {
        "name": "f",
        "taskReferenceName": "f",
        "type": "FORK_JOIN",
        "forkTasks": [[simple("a")], [simple("b")]],
    }
    join = {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": ["a", "zz"]}
    errs = errors_of(wf_def(fork, join))
    assert errs == [
        {
            "path": "tasks[1].joinOn",
            "message": "joinOn: zz of JOIN task j is not a taskReferenceName in workflow "
            "definition: wf",
        }
    ]
    loop = {
        "name": "l",
        "taskReferenceName": "l",
        "type": "DO_WHILE",
        "loopCondition": "false",
        "loopOver": [fork, {**join, "joinOn": ["b", "nope"]}],
    }
    errs = errors_of(wf_def(loop))
    assert [e["path"] for e in errs] == ["tasks[0].loopOver[1].joinOn"]
    validate_workflow_def(wf_def(fork, {**join, "joinOn": ["a", "b"]}))
    validate_workflow_def(wf_def(fork, {**join, "joinOn": []}))


def test_an_inline_task_definition_without_a_name_takes_the_tasks() -> None:
    d = validate_workflow_def(wf_def(simple("a", taskDefinition={"retryCount": 1})))
    assert d["tasks"][0]["taskDefinition"]["name"] == "a"
    assert d["tasks"][0]["taskDefinition"]["retryCount"] == 1
    errs = errors_of(wf_def(simple("a", taskDefinition={"retryCount": -1})))
    assert [e["path"] for e in errs] == ["tasks[0].taskDefinition.retryCount"]


@pytest.mark.parametrize("task_type", ["LLM_CHAT_COMPLETE", "KAFKA_PUBLISH"])
def test_types_podium_does_not_run_are_accepted(task_type: str) -> None:
    d = validate_workflow_def(
        wf_def(simple("a"), {"name": "x", "taskReferenceName": "x", "type": task_type})
    )
    assert d["tasks"][1]["type"] == task_type


def test_input_expression_must_compile() -> None:
    d = wf_def(simple("a", inputParameters={"x": "${workflow.input[?(}"}))
    assert "input parameter value" in messages(d)[0]


@pytest.mark.parametrize(
    ("task", "path", "fragment"),
    [
        (
            {"type": "DECISION", "decisionCases": {"a": [simple("x")]}},
            "caseValueParam",
            "caseValueParam or caseExpression field is required for taskType: DECISION taskName: t",
        ),
        (
            {"type": "DECISION", "caseValueParam": "p"},
            "decisionCases",
            "decisionCases should have atleast one task for taskType: DECISION taskName: t",
        ),
        (
            {"type": "DECISION", "caseExpression": "$.a ==", "decisionCases": {"a": [simple("x")]}},
            "caseExpression",
            "Expression is not well formatted",
        ),
        (
            {"type": "SWITCH", "decisionCases": {"a": [simple("x")]}},
            "evaluatorType",
            "evaluatorType field is required for taskType: SWITCH taskName: t",
        ),
        (
            {
                "type": "SWITCH",
                "evaluatorType": "value-param",
                "decisionCases": {"a": [simple("x")]},
            },
            "expression",
            "expression field is required for taskType: SWITCH taskName: t",
        ),
        (
            {"type": "SWITCH", "evaluatorType": "value-param", "expression": "k"},
            "decisionCases",
            "decisionCases should have atleast one task",
        ),
        (
            {
                "type": "SWITCH",
                "evaluatorType": "javascript",
                "expression": "$.a ==",
                "decisionCases": {"a": [simple("x")]},
            },
            "expression",
            "Expression is not well formatted",
        ),
        (
            {"type": "DO_WHILE", "loopOver": [simple("x")]},
            "loopCondition",
            "loopCondition field is required for taskType: DO_WHILE taskName: t",
        ),
        (
            {"type": "DO_WHILE", "loopCondition": "false"},
            "loopOver",
            "loopOver field is required for taskType: DO_WHILE taskName: t",
        ),
        (
            {"type": "DYNAMIC"},
            "dynamicTaskNameParam",
            "dynamicTaskNameParam field is required for taskType: DYNAMIC taskName: t",
        ),
        (
            {"type": "FORK_JOIN_DYNAMIC"},
            "dynamicForkTasksParam",
            "dynamicForkTasksParam field is required",
        ),
        (
            {
                "type": "FORK_JOIN_DYNAMIC",
                "dynamicForkJoinTasksParam": "x",
                "dynamicForkTasksParam": "y",
            },
            "dynamicForkJoinTasksParam",
            "cam be used for taskType: FORK_JOIN_DYNAMIC",
        ),
        (
            {"type": "HTTP"},
            "inputParameters",
            "inputParameters.http_request field is required for taskType: HTTP taskName: t",
        ),
        (
            {"type": "FORK_JOIN"},
            "forkTasks",
            "forkTasks should have atleast one task for taskType: FORK_JOIN taskName: t",
        ),
        (
            {
                "type": "TERMINATE",
                "optional": True,
                "inputParameters": {"terminationStatus": "FAILED"},
            },
            "optional",
            "terminate task cannot be optional, taskName: t",
        ),
        (
            {"type": "TERMINATE"},
            "inputParameters.terminationStatus",
            "terminationStatus field is required",
        ),
        (
            {"type": "TERMINATE", "inputParameters": {"terminationStatus": "${workflow.input.s}"}},
            "inputParameters.terminationStatus",
            "should be one of COMPLETED, FAILED, TERMINATED",
        ),
        (
            {"type": "SUB_WORKFLOW"},
            "subWorkflowParam",
            "subWorkflowParam field is required for taskType: SUB_WORKFLOW taskName: t",
        ),
        (
            {"type": "SUB_WORKFLOW", "subWorkflowParam": {"version": 1}},
            "subWorkflowParam.name",
            "SubWorkflowParams name cannot be null or empty",
        ),
        (
            {"type": "JSON_JQ_TRANSFORM"},
            "inputParameters.queryExpression",
            "queryExpression field is required for taskType: JSON_JQ_TRANSFORM taskName: t",
        ),
        (
            {"type": "JSON_JQ_TRANSFORM", "inputParameters": {"queryExpression": ".a |"}},
            "inputParameters.queryExpression",
            "queryExpression is not valid jq",
        ),
        (
            {"type": "WAIT", "inputParameters": {"duration": "1s", "until": "2030-01-01"}},
            "inputParameters",
            "Both 'duration' and 'until' specified. Please provide only one input",
        ),
        (
            {"type": "WAIT", "inputParameters": {"duration": "soon"}},
            "inputParameters.duration",
            "Unable to parse duration soon",
        ),
        (
            {"type": "WAIT", "inputParameters": {"until": "tomorrow"}},
            "inputParameters.until",
            "Unable to parse date tomorrow",
        ),
        ({"type": "EVENT"}, "sink", "sink field is required for taskType: EVENT taskName: t"),
    ],
)
def test_per_type_rules(task: dict[str, Any], path: str, fragment: str) -> None:
    errs = errors_of(wf_def({"name": "t", "taskReferenceName": "t", **task}))
    assert any(e["path"] == f"tasks[0].{path}" and fragment in e["message"] for e in errs), errs


def test_valid_examples_of_each_type_pass() -> None:
    validate_workflow_def(
        wf_def(
            {
                "name": "h",
                "taskReferenceName": "h",
                "type": "HTTP",
                "inputParameters": {"http_request": {"uri": "http://x", "method": "GET"}},
            },
            {
                "name": "w",
                "taskReferenceName": "w",
                "type": "WAIT",
                "inputParameters": {"duration": "${workflow.input.d}"},
            },
            {
                "name": "df",
                "taskReferenceName": "df",
                "type": "FORK_JOIN_DYNAMIC",
                "inputParameters": {"forkTaskInputs": []},
            },
            {"name": "j", "taskReferenceName": "j", "type": "JOIN"},
            {"name": "u", "taskReferenceName": "u", "type": "MY_CUSTOM_TYPE"},
            {
                "name": "jq",
                "taskReferenceName": "jq",
                "type": "JSON_JQ_TRANSFORM",
                "inputParameters": {"queryExpression": ".a"},
            },
        )
    )


def test_errors_inside_nested_tasks_carry_nested_paths() -> None:
    d = wf_def(
        {
            "name": "s",
            "taskReferenceName": "s",
            "type": "SWITCH",
            "evaluatorType": "value-param",
            "expression": "k",
            "decisionCases": {"x": [{"name": "d", "taskReferenceName": "d", "type": "DYNAMIC"}]},
            "defaultCase": [{"type": "SIMPLE", "taskReferenceName": "n"}],
        }
    )
    paths = {e["path"] for e in errors_of(d)}
    assert paths == {
        "tasks[0].decisionCases[x][0].dynamicTaskNameParam",
        "tasks[0].defaultCase[0].name",
    }


def test_nested_do_while_is_rejected() -> None:
    inner = {
        "name": "in",
        "taskReferenceName": "in",
        "type": "DO_WHILE",
        "loopCondition": "false",
        "loopOver": [simple("x")],
    }
    outer = {
        "name": "out",
        "taskReferenceName": "out",
        "type": "DO_WHILE",
        "loopCondition": "false",
        "loopOver": [inner],
    }
    assert "Nested DO_WHILE" in messages(wf_def(outer))[0]


def test_task_def_rules() -> None:
    assert validate_task_def({"name": "t"})["retryCount"] == 3
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({}, "name", "TaskDef name cannot be null or empty"),
        ({"name": "t", "retryCount": -1}, "retryCount", "TaskDef retryCount: -1 must be >= 0"),
        (
            {"name": "t", "responseTimeoutSeconds": 0},
            "responseTimeoutSeconds",
            "TaskDef responseTimeoutSeconds: 0 should be minimum 1 second",
        ),
        (
            {"name": "t", "timeoutSeconds": 10, "responseTimeoutSeconds": 20},
            "responseTimeoutSeconds",
            "TaskDef: t responseTimeoutSeconds: 20 must be less than timeoutSeconds: 10",
        ),
        (
            {
                "name": "t",
                "timeoutSeconds": 30,
                "responseTimeoutSeconds": 5,
                "totalTimeoutSeconds": 20,
            },
            "timeoutSeconds",
            "must be less than or equal to totalTimeoutSeconds: 20",
        ),
        ({"name": "t", "backoffScaleFactor": 0}, "backoffScaleFactor", "must be >= 1"),
        ({"name": "t", "pollTimeoutSeconds": -1}, "pollTimeoutSeconds", "must be >= 0"),
        (
            {"name": "t", "retryLogic": "RANDOM"},
            "retryLogic",
            "retryLogic: RANDOM is not a valid value",
        ),
        (
            {"name": "t", "timeoutPolicy": "NOPE"},
            "timeoutPolicy",
            "timeoutPolicy: NOPE is not a valid value",
        ),
        ({"name": "t", "retryCount": "3"}, "retryCount", "must be an integer"),
    ]
    for task_def, path, fragment in cases:
        with pytest.raises(ValidationError) as exc:
            validate_task_def(task_def)
        assert any(e["path"] == path and fragment in e["message"] for e in exc.value.errors), (
            task_def,
            exc.value.errors,
        )


def test_inline_task_definition_is_validated_in_place() -> None:
    d = wf_def(simple("a", taskDefinition={"name": "a", "responseTimeoutSeconds": 0}))
    assert errors_of(d)[0]["path"] == "tasks[0].taskDefinition.responseTimeoutSeconds"


def test_validation_error_travels_over_rpc() -> None:
    from podium.errors import error_from_wire

    with pytest.raises(ValidationError) as exc:
        validate_workflow_def({})
    rebuilt = error_from_wire(exc.value.to_wire())
    assert isinstance(rebuilt, ValidationError)
    assert rebuilt.errors == exc.value.errors


def test_unregistered_simple_tasks_get_the_default_definition() -> None:
    d = normalize_workflow_def(
        wf_def(
            simple("a"),
            {
                "name": "h",
                "taskReferenceName": "h",
                "type": "HTTP",
                "inputParameters": {"uri": "u"},
            },
            simple("b"),
        )
    )
    populated = populate_task_defs(d, {"b": {"name": "b", "retryCount": 7}})
    a, h, b = populated["tasks"]
    assert a["taskDefinition"] == default_task_def("a")
    assert a["taskDefinition"]["retryCount"] == 3 and a["taskDefinition"]["retryDelaySeconds"] == 60
    assert (
        a["taskDefinition"]["responseTimeoutSeconds"] == 3600
        and a["taskDefinition"]["timeoutPolicy"] == "TIME_OUT_WF"
    )
    assert "taskDefinition" not in h
    assert b["taskDefinition"]["retryCount"] == 7
    assert "taskDefinition" not in d["tasks"][0]  # populate works on a copy
