"""Print which pinned versions differ between two copies of Podium's locks.

    python scripts/lock_diff.py OLD_DIR NEW_DIR

Each directory holds ``uv.lock``, ``uv-requirements.txt`` (or ``scripts/...``) and the peers'
``*.txt`` (under ``peers/`` or ``benchmarks/peers/requirements/``). Standard library only.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def _first(root: Path, *names: str) -> Path | None:
    return next((root / n for n in names if (root / n).exists()), None)


def _uv_lock(path: Path | None) -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    if path is not None:
        for pkg in tomllib.loads(path.read_text())["package"]:
            pins.setdefault(pkg["name"].lower(), set()).add(pkg["version"])
    return pins


def _requirements(path: Path | None) -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    if path is not None:
        for name, version in PIN.findall(path.read_text()):
            pins.setdefault(name.lower(), set()).add(version)
    return pins


def _changes(old: dict[str, set[str]], new: dict[str, set[str]]) -> list[str]:
    lines = []
    for name in sorted(set(old) | set(new)):
        a, b = ", ".join(sorted(old.get(name, ()))), ", ".join(sorted(new.get(name, ())))
        if a != b:
            lines.append(f"  {name}: {a or '(none)'} -> {b or '(removed)'}")
    return lines


def main(argv: list[str]) -> int:
    old, new = Path(argv[0]), Path(argv[1])
    pairs = [
        ("uv.lock", _uv_lock(_first(old, "uv.lock")), _uv_lock(_first(new, "uv.lock"))),
        (
            "uv",
            _requirements(_first(old, "uv-requirements.txt", "scripts/uv-requirements.txt")),
            _requirements(_first(new, "uv-requirements.txt", "scripts/uv-requirements.txt")),
        ),
    ]
    old_peers = _first(old, "peers", "benchmarks/peers/requirements")
    new_peers = _first(new, "peers", "benchmarks/peers/requirements")
    for lock in sorted(new_peers.glob("*.txt")) if new_peers else []:
        before = old_peers / lock.name if old_peers else None
        pairs.append((f"peer {lock.stem}", _requirements(before), _requirements(lock)))
    for title, a, b in pairs:
        lines = _changes(a, b)
        print(f"{title}: {len(lines) or 'no'} change(s)")
        for line in lines:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
