"""decider.records.Records: running workflows kept by id, least recently used dropped first."""

from __future__ import annotations

import pytest

from decider.records import Records
from decider.server import DeciderSettings
from podium.errors import ConfigError


def wf(wf_id: str, status: str = "RUNNING") -> dict[str, str]:
    return {"workflowId": wf_id, "status": status}


def test_kept_with_their_version_and_counted() -> None:
    records = Records(10)
    assert records.get("a") is None
    records.put(wf("a"), 3)
    kept = records.get("a")
    assert kept is not None and kept.version == 3 and kept.workflow == wf("a")
    assert (records.hits, records.misses) == (1, 1)


def test_the_least_recently_used_go_first_beyond_capacity() -> None:
    records = Records(2)
    records.put(wf("a"), 1)
    records.put(wf("b"), 1)
    records.get("a")  # a is now the more recently used
    records.put(wf("c"), 1)
    assert records.get("b") is None
    assert records.get("a") is not None and records.get("c") is not None
    assert len(records) == 2


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"])
def test_a_finished_workflow_is_dropped_not_kept(status: str) -> None:
    records = Records(10)
    records.put(wf("a"), 1)
    records.put(wf("a", status), 2)
    assert records.get("a") is None and len(records) == 0


def test_capacity_zero_keeps_nothing_and_drop_forgets() -> None:
    none = Records(0)
    none.put(wf("a"), 1)
    assert none.get("a") is None
    records = Records(5)
    records.put(wf("a"), 1)
    records.drop("a")
    records.drop("never")
    assert records.get("a") is None


def test_the_setting() -> None:
    assert DeciderSettings.from_env({}).cached_workflows == 10_000
    assert DeciderSettings.from_env({"PODIUM_DECIDER_CACHED_WORKFLOWS": "0"}).cached_workflows == 0
    with pytest.raises(ConfigError, match="PODIUM_DECIDER_CACHED_WORKFLOWS"):
        DeciderSettings.from_env({"PODIUM_DECIDER_CACHED_WORKFLOWS": "-1"})
