"""Retries (FIXED / LINEAR / EXPONENTIAL), timeouts of tasks and workflows, next check time."""

from __future__ import annotations

from typing import Any

import pytest

from decider.lifecycle import retry_delay_ms
from tests.decider.decider_harness import Harness, simple, wf_def


def task_def(**kw: Any) -> dict[str, Any]:
    return {"name": "a", **kw}


def test_failed_task_is_retried_as_a_new_task() -> None:
    h = Harness(
        wf_def(simple("a", inputParameters={"x": "${workflow.input.x}", "me": "${CPEWF_TASK_ID}"})),
        task_defs={"a": task_def(retryCount=2, retryDelaySeconds=5)},
    )
    h.start({"x": 1}, at=0)
    first = h.task("a")
    h.claim("a", at=100)
    dec = h.fail("a", "oops", at=200)
    old, new = h.wf["tasks"]
    assert old["status"] == "FAILED" and old["retried"] is True and old["endTime"] == 200
    assert new["taskId"] != first["taskId"] and new["retriedTaskId"] == first["taskId"]
    assert (new["retryCount"], new["status"], new["pollCount"], new["seq"]) == (
        1,
        "SCHEDULED",
        0,
        2,
    )
    assert (
        new["reasonForIncompletion"] == "oops" and new["outputData"] == {} and "workerId" not in new
    )
    assert new["inputData"] == {"x": 1, "me": new["taskId"]}
    assert new["callbackAfterSeconds"] == 5 and new["startDelayInSeconds"] == 5
    assert [(p.message_id, p.delay_ms) for p in dec.pushes] == [(new["taskId"], 5000)]
    assert [(r.queue, r.message_id) for r in dec.removals] == [("a", first["taskId"])]
    assert set(dec.created_task_ids) == {new["taskId"]}


def test_retries_exhausted_fail_the_workflow_with_conductor_reason() -> None:
    h = Harness(wf_def(simple("a")), task_defs={"a": task_def(retryCount=1, retryDelaySeconds=0)})
    h.start()
    h.claim("a")
    h.fail("a", "first")
    h.claim("a")
    h.fail("a", "second")
    last = h.task("a")
    assert h.status == "FAILED" and len(h.wf["tasks"]) == 2
    assert (
        h.wf["reasonForIncompletion"]
        == f"Task {last['taskId']} failed with status: FAILED and reason: 'second'"
    )
    assert h.wf["failedReferenceTaskNames"] == ["a"] and h.wf["failedTaskNames"] == ["a"]
    assert h.wf["endTime"] == h.now


def test_terminal_error_and_workflow_task_retry_count_override() -> None:
    h = Harness(wf_def(simple("a")), task_defs={"a": task_def(retryCount=5)})
    h.start()
    h.claim("a")
    h.fail("a", terminal=True)
    assert h.status == "FAILED" and len(h.wf["tasks"]) == 1
    h = Harness(wf_def(simple("a", retryCount=0)), task_defs={"a": task_def(retryCount=5)})
    h.start()
    h.claim("a")
    h.fail("a")
    assert h.status == "FAILED"


def test_canceled_task_terminates_the_workflow() -> None:
    h = Harness(wf_def(simple("a")))
    h.start()
    h.update("a", "CANCELED")
    assert h.status == "TERMINATED"


def test_optional_task_exhausted_becomes_completed_with_errors() -> None:
    h = Harness(
        wf_def(simple("a", optional=True), simple("b")), task_defs={"a": task_def(retryCount=0)}
    )
    h.start()
    h.claim("a")
    h.fail("a")
    assert h.statuses() == {"a": "COMPLETED_WITH_ERRORS", "b": "SCHEDULED"}
    h.run_worker("b")
    assert h.status == "COMPLETED" and h.wf["failedReferenceTaskNames"] == []


@pytest.mark.parametrize(
    ("defn", "n", "seconds"),
    [
        (task_def(retryLogic="FIXED", retryDelaySeconds=10), 3, 10),
        (task_def(retryLogic="LINEAR_BACKOFF", retryDelaySeconds=10, backoffScaleFactor=2), 0, 20),
        (task_def(retryLogic="LINEAR_BACKOFF", retryDelaySeconds=10, backoffScaleFactor=2), 2, 60),
        (task_def(retryLogic="EXPONENTIAL_BACKOFF", retryDelaySeconds=10), 0, 10),
        (task_def(retryLogic="EXPONENTIAL_BACKOFF", retryDelaySeconds=10), 3, 80),
        (
            task_def(
                retryLogic="EXPONENTIAL_BACKOFF", retryDelaySeconds=10, maxRetryDelaySeconds=25
            ),
            3,
            25,
        ),
        (task_def(retryLogic="EXPONENTIAL_BACKOFF", retryDelaySeconds=10), 40, 2**31 - 1),
    ],
)
def test_retry_delay(defn: dict[str, Any], n: int, seconds: int) -> None:
    assert retry_delay_ms(defn, n, "t") == (seconds, seconds * 1000)


def test_retry_jitter_is_bounded_and_deterministic() -> None:
    values = {
        retry_delay_ms(task_def(retryDelaySeconds=1, backoffJitterMs=50), 0, f"t{i}")[1]
        for i in range(200)
    }
    assert min(values) >= 1000 and max(values) <= 1050 and len(values) > 10
    assert retry_delay_ms(task_def(backoffJitterMs=50), 0, "x") == retry_delay_ms(
        task_def(backoffJitterMs=50), 0, "x"
    )


def test_exponential_backoff_through_the_decider() -> None:
    h = Harness(
        wf_def(simple("a")),
        task_defs={
            "a": task_def(retryCount=3, retryLogic="EXPONENTIAL_BACKOFF", retryDelaySeconds=2)
        },
    )
    h.start()
    delays = []
    for _ in range(3):
        h.claim("a")
        dec = h.fail("a")
        delays.append(dec.pushes[0].delay_ms)
    assert delays == [2000, 4000, 8000]


def test_response_timeout_times_out_and_retries() -> None:
    h = Harness(
        wf_def(simple("a")),
        task_defs={"a": task_def(responseTimeoutSeconds=10, retryCount=1, retryDelaySeconds=0)},
    )
    h.start(at=0)
    dec = h.claim("a", at=1000)
    assert dec.next_check_ms == 11_000
    h.decide(at=10_999)
    assert h.task("a")["status"] == "IN_PROGRESS"
    h.decide(at=11_000)
    old, new = h.wf["tasks"]
    assert old["status"] == "TIMED_OUT" and old["reasonForIncompletion"].startswith(
        "responseTimeout: 10 exceeded for the taskId:"
    )
    assert new["status"] == "SCHEDULED" and new["retryCount"] == 1
    h.claim("a", at=12_000)
    h.decide(at=30_000)
    assert h.status == "TIMED_OUT"


def test_heartbeat_extends_the_response_window() -> None:
    h = Harness(wf_def(simple("a")), task_defs={"a": task_def(responseTimeoutSeconds=10)})
    h.start(at=0)
    h.claim("a", at=0)
    dec = h.update("a", "IN_PROGRESS", at=8000, extendLease=True)
    assert h.task("a")["status"] == "IN_PROGRESS" and dec.next_check_ms == 18_000
    h.decide(at=12_000)
    assert h.task("a")["status"] == "IN_PROGRESS"


@pytest.mark.parametrize(
    ("policy", "wf_status", "task_status"),
    [
        ("TIME_OUT_WF", "TIMED_OUT", "TIMED_OUT"),
        ("RETRY", "RUNNING", "TIMED_OUT"),
        ("ALERT_ONLY", "RUNNING", "IN_PROGRESS"),
    ],
)
def test_task_timeout_policies(policy: str, wf_status: str, task_status: str) -> None:
    h = Harness(
        wf_def(simple("a")),
        task_defs={
            "a": task_def(
                timeoutSeconds=60,
                responseTimeoutSeconds=60,
                timeoutPolicy=policy,
                retryCount=1,
                retryDelaySeconds=0,
            )
        },
    )
    h.start(at=0)
    h.claim("a", at=1000)
    h.update("a", "IN_PROGRESS", at=50_000, callbackAfterSeconds=0)  # back to SCHEDULED
    h.claim("a", at=55_000)
    h.decide(at=61_000)
    first = h.wf["tasks"][0]
    assert h.status == wf_status and first["status"] == task_status
    if task_status == "TIMED_OUT":
        assert (
            first["reasonForIncompletion"]
            == "Task timed out after 60 seconds. Timeout configured as 60 seconds. "
            f"Timeout policy configured to {policy}"
        )
    if policy == "RETRY":
        assert h.wf["tasks"][1]["status"] == "SCHEDULED"


def test_poll_timeout() -> None:
    h = Harness(
        wf_def(simple("a")),
        task_defs={"a": task_def(pollTimeoutSeconds=5, timeoutPolicy="TIME_OUT_WF")},
    )
    dec = h.start(at=0)
    assert dec.next_check_ms == 5000
    h.decide(at=5000)
    assert h.status == "TIMED_OUT" and h.task("a")["reasonForIncompletion"].startswith(
        "Task poll timed out after 5 seconds"
    )


def test_total_timeout_stops_retries() -> None:
    h = Harness(
        wf_def(simple("a")),
        task_defs={
            "a": task_def(
                totalTimeoutSeconds=100, retryCount=10, retryDelaySeconds=0, timeoutPolicy="RETRY"
            )
        },
    )
    h.start(at=1)
    h.claim("a", at=10)
    h.fail("a", at=20)
    assert len(h.wf["tasks"]) == 2
    h.claim("a", at=30)
    h.fail("a", at=100_001)
    assert h.status == "FAILED" and len(h.wf["tasks"]) == 2


def test_workflow_timeout_policies() -> None:
    h = Harness(wf_def(simple("a"), timeoutSeconds=100, timeoutPolicy="TIME_OUT_WF"))
    dec = h.start(at=0)
    assert dec.next_check_ms == 100_000  # exact deadline of the workflow timeout
    h.decide(at=99_999)
    assert h.status == "RUNNING" and h.last is not None and h.last.next_check_ms == 100_000
    dec = h.decide(at=100_000)
    assert h.status == "TIMED_OUT" and dec.next_check_ms is None
    assert (
        h.wf["reasonForIncompletion"]
        == "Workflow timed out after 100 seconds. Timeout configured as 100 seconds. "
        "Timeout policy configured to TIME_OUT_WF"
    )
    assert h.statuses()["a"] == "CANCELED" and dec.removals[0].queue == "a"
    h = Harness(wf_def(simple("a"), timeoutSeconds=100, timeoutPolicy="ALERT_ONLY"))
    h.start(at=0)
    h.decide(at=200_000)
    assert h.status == "RUNNING"


def test_callback_after_seconds_requeues_with_delay() -> None:
    h = Harness(wf_def(simple("a")))
    h.start()
    h.claim("a")
    dec = h.update("a", "IN_PROGRESS", callbackAfterSeconds=30, outputData={"progress": 40})
    t = h.task("a")
    assert (
        t["status"] == "SCHEDULED"
        and t["outputData"] == {"progress": 40}
        and t["callbackAfterSeconds"] == 30
    )
    assert [(p.queue, p.delay_ms) for p in dec.pushes] == [("a", 30_000)]
    dec = h.claim("a")
    assert h.task("a")["pollCount"] == 2 and h.task("a")["callbackAfterSeconds"] == 0


def test_next_check_is_capped_and_none_when_done() -> None:
    h = Harness(
        wf_def(
            {
                "name": "w",
                "taskReferenceName": "w",
                "type": "WAIT",
                "inputParameters": {"duration": "5 days"},
            }
        )
    )
    dec = h.start(at=0)
    assert dec.next_check_ms == 3_600_000
    h = Harness(wf_def({"name": "n", "taskReferenceName": "n", "type": "NOOP"}))
    assert h.start().next_check_ms is None
