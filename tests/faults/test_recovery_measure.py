"""How the fault suite measures recovery: a dip in the completion rate after a kill, in
windows long enough that chance alone does not make one."""

from __future__ import annotations

from benchmarks.fault_load import Check
from benchmarks.faults import FaultConfig, Kill, Run, _measure_recovery


def timeline(
    rate_per_s: float, start: float, end: float, gaps: list[tuple[float, float]]
) -> list[float]:
    """Completions evenly spaced at ``rate_per_s``, none within the ``gaps``."""
    step = 1.0 / rate_per_s
    times, t = [], start
    while t < end:
        if not any(lo <= t < hi for lo, hi in gaps):
            times.append(t)
        t += step
    return times


def measured(rate: float, gaps: list[tuple[float, float]]) -> Kill:
    run = Run(FaultConfig())
    kill = Kill("decider", "decider-0", 100.0)
    run.kills.append(kill)
    run.load_stopped = 200.0
    _measure_recovery(run, Check(completion_times=timeline(rate, 80.0, 200.0, gaps)))
    return kill


def test_no_dip_no_recovery_time() -> None:
    kill = measured(90.0, [])
    assert kill.recovery_s == 0.0 and kill.window_s == 1.0


def test_a_stall_is_measured_to_its_end() -> None:
    kill = measured(90.0, [(100.0, 103.0)])  # nothing completes for 3 s after the kill
    assert kill.window_s == 1.0
    assert kill.recovery_s is not None and 3.0 <= kill.recovery_s <= 3.75
    assert kill.lowest_rate == 0.0


def test_a_stall_past_the_horizon_is_not_recovered() -> None:
    assert measured(90.0, [(100.0, 130.0)]).recovery_s is None


def test_windows_grow_at_low_rates() -> None:
    kill = measured(16.0, [])
    assert kill.window_s == 2.5  # 40 completions expected in each
    assert kill.recovery_s == 0.0
    stalled = measured(16.0, [(100.0, 4.0 + 100.0)])
    assert stalled.recovery_s is not None and 4.0 <= stalled.recovery_s <= 5.5
