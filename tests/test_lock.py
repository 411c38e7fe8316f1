"""The environment is the lock, and the lock is pyproject.toml's.

``scripts/bootstrap.sh`` installs ``.venv`` with ``uv sync --frozen`` from ``uv.lock``; these
tests read the lock themselves and compare it with what is installed, with pyproject.toml,
and with the benchmark peers' and uv's own requirement locks, so a drift in any of them fails
the suite rather than passing against versions nobody tested.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "uv.lock"
PEER_LOCKS = sorted((ROOT / "benchmarks" / "peers" / "requirements").glob("*.txt"))
UV_LOCK = ROOT / "scripts" / "uv-requirements.txt"


def _lock() -> dict[str, list[dict[str, Any]]]:
    """The lock's packages, by canonical name (a name can have one version per marker)."""
    packages: dict[str, list[dict[str, Any]]] = {}
    for pkg in tomllib.loads(LOCK.read_text())["package"]:
        packages.setdefault(canonicalize_name(pkg["name"]), []).append(pkg)
    return packages


def _applies(dep: dict[str, Any], extra: str = "") -> bool:
    marker = dep.get("marker")
    return marker is None or Marker(marker).evaluate({"extra": extra})


def _installed() -> dict[str, str]:
    return {
        canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
    }


def _expected(extras: tuple[str, ...]) -> dict[str, str]:
    """Every package the lock installs for podium with ``extras`` on this interpreter."""
    packages, installed = _lock(), _installed()
    wanted: dict[str, str] = {}
    visited: set[tuple[str, tuple[str, ...]]] = set()
    todo: list[tuple[str, str | None, tuple[str, ...]]] = [("podium", None, extras)]
    while todo:
        name, version, with_extras = todo.pop()
        if (name, with_extras) in visited:
            continue
        visited.add((name, with_extras))
        candidates = packages[name]
        if version is not None:
            candidates = [p for p in candidates if p["version"] == version]
        elif len(candidates) > 1:  # one version per marker: the one these markers selected
            candidates = [p for p in candidates if p["version"] == installed.get(name)] or [
                candidates[0]
            ]
        pkg = candidates[0]
        wanted[name] = pkg["version"]
        deps = [d for d in pkg.get("dependencies", []) if _applies(d)]
        for extra in with_extras:
            deps += [d for d in pkg.get("optional-dependencies", {}).get(extra, []) if _applies(d)]
        for dep in deps:
            todo.append(
                (canonicalize_name(dep["name"]), dep.get("version"), tuple(dep.get("extra", ())))
            )
    return wanted


def test_the_environment_holds_exactly_the_locked_versions() -> None:
    expected = _expected(("dev",))
    installed = _installed()
    assert installed["podium"] == expected["podium"]
    wrong = {n: (installed.get(n), v) for n, v in expected.items() if installed.get(n) != v}
    extra = sorted(set(installed) - set(expected))
    assert not wrong, f"installed differs from uv.lock (installed, locked): {wrong}"
    assert not extra, f"installed but not in uv.lock: {extra}"
    # The walk reached the whole closure, not just the direct dependencies.
    assert {"redis", "hiredis", "starlette", "anyio", "mypy", "mypy-extensions"} <= set(expected)


def _key(req: Requirement) -> str:
    """One spelling of a requirement: name, sorted extras and specifiers, normalised marker."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    spec = ",".join(sorted(str(s) for s in req.specifier))
    return f"{canonicalize_name(req.name)}{extras}{spec}; {req.marker or ''}"


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    keys = {_key(Requirement(line)) for line in project["dependencies"]}
    for extra, table in project.get("optional-dependencies", {}).items():
        for line in table:
            req = Requirement(line)
            marker = (
                f"({req.marker}) and extra == '{extra}'" if req.marker else f"extra == '{extra}'"
            )
            req.marker = Marker(marker)
            keys.add(_key(req))
    return keys


def _locked() -> set[str]:
    (root,) = _lock()["podium"]
    keys = set()
    for dep in root["metadata"]["requires-dist"]:
        extras = f"[{','.join(dep['extras'])}]" if dep.get("extras") else ""
        marker = f"; {dep['marker']}" if dep.get("marker") else ""
        keys.add(_key(Requirement(f"{dep['name']}{extras}{dep.get('specifier', '')}{marker}")))
    return keys


def test_the_lock_was_made_from_this_pyproject() -> None:
    declared, locked = _declared(), _locked()
    assert len(declared) > 20
    assert declared == locked, (
        "uv.lock is stale: run scripts/lock.sh "
        f"(only in pyproject: {sorted(declared - locked)}, only in the lock: "
        f"{sorted(locked - declared)})"
    )


def _pins(path: Path) -> dict[str, tuple[str, int]]:
    """``name -> (version, number of hashes)`` from a hash-locked requirements file."""
    pins: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=[A-Za-z])", path.read_text()):
        head = block.split("\\", 1)[0].strip()
        if not head or head.startswith("#"):
            continue
        req = Requirement(head)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{path.name}: {head} is not pinned"
        pins[canonicalize_name(req.name)] = (spec.version, block.count("--hash=sha256:"))
    return pins


@pytest.mark.parametrize("lock", [*PEER_LOCKS, UV_LOCK], ids=lambda p: p.name)
def test_peer_and_tool_requirements_are_pinned_with_hashes(lock: Path) -> None:
    pins = _pins(lock)
    assert pins
    unhashed = [name for name, (_, hashes) in pins.items() if hashes == 0]
    assert not unhashed, f"{lock.name}: no hashes for {unhashed}"
    source = lock.with_suffix(".in")
    if source.exists():  # every top-level requirement is in its lock
        for line in source.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                req = Requirement(line)
                assert canonicalize_name(req.name) in pins
                assert req.specifier.contains(pins[canonicalize_name(req.name)][0])


# -- the JVM side: exact versions, digests checked -------------------------------------------


def _fake_jars(lib: Path, jars: dict[str, bytes]) -> None:
    lib.mkdir(parents=True, exist_ok=True)
    for name, body in jars.items():
        (lib / name).write_bytes(body)


def test_cassandra_jars_must_match_their_lock_exactly(tmp_path: Path) -> None:
    from podium.errors import Unavailable
    from podium.launch.cassandra_jars import verify_jars, write_jar_lock

    good = tmp_path / "good"
    _fake_jars(good, {"a-1.jar": b"a", "b-2.jar": b"b"})
    lock = tmp_path / "cassandra-x.sha256"
    write_jar_lock(good, lock)
    verify_jars(good, lock)  # the lock of a folder accepts that folder

    changed, missing, extra = tmp_path / "changed", tmp_path / "missing", tmp_path / "extra"
    _fake_jars(changed, {"a-1.jar": b"a", "b-2.jar": b"B"})
    _fake_jars(missing, {"a-1.jar": b"a"})
    _fake_jars(extra, {"a-1.jar": b"a", "b-2.jar": b"b", "c-3.jar": b"c"})
    for lib, why in ((changed, "b-2.jar has sha256"), (missing, "missing b-2.jar"),
                     (extra, "unexpected c-3.jar")):  # fmt: skip
        with pytest.raises(Unavailable, match=why):
            verify_jars(lib, lock)


def test_the_default_cassandra_version_is_locked_and_its_jars_match() -> None:
    import shutil

    from podium.launch.cassandra_jars import DEFAULT_VERSION, fetch_jars, jar_lock, verify_jars

    lock = jar_lock(DEFAULT_VERSION)
    assert lock.is_file(), f"no jar lock for Cassandra {DEFAULT_VERSION}"
    assert f"cassandra-all-{DEFAULT_VERSION}.jar" in lock.read_text()
    if shutil.which("mvn") is None:
        pytest.skip("mvn is not installed (scripts/bootstrap.sh installs it)")
    verify_jars(fetch_jars(DEFAULT_VERSION), lock)


def test_a_conductor_jar_with_another_digest_is_refused_and_removed(tmp_path: Path) -> None:
    from benchmarks.peers.conductor_server import (
        DEFAULT_VERSION,
        JAR_SHA256,
        ConductorUnavailable,
        verify_jar,
    )

    assert DEFAULT_VERSION in JAR_SHA256, "the default Conductor version has no pinned digest"
    jar = tmp_path / f"conductor-server-{DEFAULT_VERSION}-boot.jar"
    jar.write_bytes(b"not the released jar")
    with pytest.raises(ConductorUnavailable, match="pinned"):
        verify_jar(jar, DEFAULT_VERSION)
    assert not jar.exists()
