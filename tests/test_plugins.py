"""Loading plugin system tasks from entry points (podium.plugins): what is refused, and why."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from podium.plugins import ENTRY_POINT_GROUP, PluginError, installed, load, validate_input

EXAMPLE = "podium_plugin_example:TEXT_STATS"


def point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name, value, ENTRY_POINT_GROUP)


def test_the_installed_example_is_found_by_its_entry_point() -> None:
    plugins = installed()
    assert "TEXT_STATS" in plugins
    assert type(plugins["TEXT_STATS"]).__module__ == "podium_plugin_example"


def test_plugins_are_keyed_by_their_task_type() -> None:
    plugins = load([point("shout", "tests.plugin_samples:SHOUT"), point("stats", EXAMPLE)])
    assert sorted(plugins) == ["SHOUT", "TEXT_STATS"]


def test_a_type_two_plugins_claim_is_refused_naming_both() -> None:
    with pytest.raises(PluginError) as raised:
        load([point("first", EXAMPLE), point("second", EXAMPLE)])
    message = raised.value.message
    assert "plugin 'second'" in message and "plugin 'first'" in message
    assert "TEXT_STATS" in message


def test_a_built_in_type_is_refused() -> None:
    with pytest.raises(PluginError, match="claims task type HTTP, which is built in"):
        load([point("clash", "tests.plugin_samples:CLASHES_WITH_HTTP")])


@pytest.mark.parametrize("built_in", ["SIMPLE", "SUB_WORKFLOW", "KAFKA_PUBLISH"])
def test_every_type_podium_names_is_built_in(built_in: str) -> None:
    from podium.plugins import builtin_types

    assert built_in in builtin_types()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("tests.no_such_module_here:THING", "failed to load: ModuleNotFoundError"),
        ("tests.plugin_samples:NOT_THERE", "failed to load: AttributeError"),
        ("tests.plugin_samples:LOWER_CASE", "must be an upper-case name"),
        ("tests.plugin_samples:NO_EXECUTE", "has no execute(task_input, context) method"),
        ("tests.plugin_samples:SYNC_EXECUTE", "has an execute method that is not async def"),
    ],
)
def test_a_broken_plugin_is_refused_with_its_name(value: str, why: str) -> None:
    with pytest.raises(PluginError) as raised:
        load([point("good", EXAMPLE), point("broken", value)])
    assert f"plugin 'broken' ({value})" in raised.value.message
    assert why in raised.value.message


def test_input_checks_are_the_plugins_own() -> None:
    stats = installed()["TEXT_STATS"]
    assert validate_input(stats, {"text": "${workflow.input.text}"}) == []
    assert validate_input(stats, {"failUntilAttempt": -1}) == [
        "TEXT_STATS needs the input parameter 'text'",
        "failUntilAttempt must be >= 0",
    ]
    shout = load([point("shout", "tests.plugin_samples:SHOUT")])["SHOUT"]
    assert validate_input(shout, {}) == []  # no validate_input: nothing to say


@pytest.mark.timeout(60)
@pytest.mark.parametrize("service", ["sweeper.server", "api_gateway.server"])
def test_a_service_with_a_broken_plugin_installed_refuses_to_start(
    tmp_path: Path, service: str
) -> None:
    """A distribution on the path whose entry point names a module that does not exist: the
    sweeper (which runs plugins) and the gateway (which checks their inputs) exit at once
    (status 2), saying which plugin and why."""
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nbroken = broken_plugin_missing:TASK\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PODIUM_SWEEPER_HEALTH_PORT": "0"}
    done = subprocess.run(
        [sys.executable, "-m", service],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "plugin 'broken' (broken_plugin_missing:TASK) failed to load" in done.stderr
    assert "ModuleNotFoundError" in done.stderr
