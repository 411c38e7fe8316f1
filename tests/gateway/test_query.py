"""Conductor's search query language, parsed into the store's SearchQuery."""

from __future__ import annotations

import pytest

from api_gateway.query import DAY_MS, MAX_RANGE_DAYS, bound_range, parse_query
from podium.errors import InvalidArgument


def test_conditions() -> None:
    q = parse_query(
        "workflowType IN (a, 'b') AND status=\"RUNNING\" AND correlationId = c1 "
        "AND startTime>100 AND startTime<5000000000000",
        free_text="needle",
        sort="startTime:DESC",
        start=5,
        size=7,
    )
    assert q.workflow_types == ("a", "b") and q.statuses == ("RUNNING",)
    assert q.correlation_id == "c1" and q.free_text == "needle"
    assert q.start == 5 and q.size == 7 and q.sort_keys == (("startTime", True),)
    assert q.start_time_from_ms is not None and q.start_time_to_ms is not None
    assert q.start_time_to_ms - q.start_time_from_ms <= MAX_RANGE_DAYS * DAY_MS


def test_task_fields_and_ignored_ones() -> None:
    q = parse_query("taskType='t' AND taskDefName=u AND workflowId='w' AND taskId=x")
    assert q.task_types == ("t", "u") and q.workflow_id == "w" and q.task_id == "x"
    q = parse_query("endTime>5 AND parentWorkflowId='' AND workflowType=abc* AND unknown=1")
    assert q.workflow_types == () and q.start_time_from_ms is None
    assert parse_query(None).statuses == () and parse_query("*").workflow_types == ()


@pytest.mark.parametrize(
    "query",
    [
        "workflowType",
        "a ~ b",
        "startTime>abc",
        "workflowId IN (a,b)",
        "startTime>10 AND startTime<5",
    ],
)
def test_malformed_queries(query: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_query(query)


def test_bounds() -> None:
    with pytest.raises(InvalidArgument, match="Cannot return more than 5000 workflows"):
        parse_query("", size=5001)
    with pytest.raises(InvalidArgument):
        parse_query("", sort="startTime:SIDEWAYS")
    now = 1000 * DAY_MS
    assert bound_range(None, None, now) == (None, None)
    lo, hi = bound_range(0, None, now)
    assert hi == now + DAY_MS and lo == hi - MAX_RANGE_DAYS * DAY_MS
    assert bound_range(now - 5, now, now) == (now - 5, now)
