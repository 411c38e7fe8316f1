"""The command line and the services' console entry points, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.timeout(90)
def test_podium_up_demo_runs_and_stops_cleanly() -> None:
    done = run(["-m", "podium.cli", "up", "--demo", "--shards", "2"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "result: OK" in done.stdout
    assert "2000/2000 processed" in done.stdout
    assert "5/5 dropped messages redelivered" in done.stdout
    assert done.stdout.rstrip().endswith("podium: stopped")


def test_cli_rejects_a_bad_option_with_a_usage_line() -> None:
    done = run(["-m", "podium.cli", "up", "--shards", "zero"])
    assert done.returncode == 2
    assert "'zero' is not a whole number" in done.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PODIUM_QUEUE_PORT": "70000"}, "PODIUM_QUEUE_PORT=70000 is above the maximum 65535"),
        ({"PODIUM_QUEUE_PORT": "abc"}, "PODIUM_QUEUE_PORT='abc' is not an integer"),
        ({"PODIUM_QUEUE_SHARDS": "localhost:6379"}, "is not a redis:// URL"),
        ({"PODIUM_QUEUE_MAX_BATCH": "0"}, "PODIUM_QUEUE_MAX_BATCH=0 is below the minimum 1"),
    ],
)
def test_queue_service_stops_at_start_on_bad_settings_with_one_line(
    env: dict[str, str], message: str
) -> None:
    done = run(["-m", "queue_service.server"], env=env, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
