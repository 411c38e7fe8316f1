"""The Java server's warm-up before its benchmark runs: rounds until two agree within 10 %."""

from __future__ import annotations

from benchmarks.workflow_report import stable


def test_two_rounds_within_ten_percent_are_stable() -> None:
    assert stable([90.0, 150.0, 200.0, 205.0])
    assert stable([200.0, 181.0])


def test_a_rate_still_climbing_is_not() -> None:
    assert not stable([90.0, 150.0])
    assert not stable([150.0, 200.0])
    assert not stable([200.0])
    assert not stable([])
    assert not stable([0.0, 0.0])  # failed rounds say nothing about the server
