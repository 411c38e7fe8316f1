"""Private virtual environments for the peer systems (arq, Celery, the Conductor Python SDK).

The peers cannot share Podium's environment: arq 0.28 pins ``redis<6`` while Celery 5.7's Redis
transport needs ``redis>=6.4`` (and Podium runs redis-py 8), and Celery / the SDK pin
``python-dateutil`` 2.9. So each peer gets its own venv under ``~/.cache/podium/peers/<name>``,
built on first use from ``requirements/<name>.txt`` (PyPI), and rebuilt when that file changes.
Each ``.txt`` is a lock: every package at one version with its hashes, compiled from
``requirements/<name>.in`` by ``scripts/lock.sh`` and installed with ``--require-hashes``.
Its processes run this repository's ``benchmarks`` package through ``PYTHONPATH``; the modules
they import use only the standard library, redis-py and the peer itself.

    python -m benchmarks.peers.venvs [arq celery conductor]   # build them ahead of a run
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).resolve().parent / "requirements"
CACHE = Path(os.environ.get("PODIUM_PEERS_CACHE", Path.home() / ".cache" / "podium" / "peers"))
PEERS = ("arq", "celery", "conductor")


def _digest(requirements: Path) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]


def python_for(name: str, timeout_s: float = 600.0) -> str:
    """The interpreter of peer ``name``'s venv, creating or refreshing the venv if needed."""
    requirements = REQUIREMENTS / f"{name}.txt"
    if not requirements.exists():
        raise ValueError(f"unknown peer {name!r}; have {', '.join(PEERS)}")
    venv = CACHE / name
    python = venv / "bin" / "python"
    stamp = venv / ".requirements-digest"
    digest = _digest(requirements)
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return str(python)
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    print(f"building the {name} venv in {venv} (PyPI) ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    locked = ["--require-hashes", "--no-deps", "-r", str(requirements)]
    subprocess.run([*pip, *locked], check=True, timeout=timeout_s)
    stamp.write_text(digest + "\n")
    return str(python)


def peer_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a peer process: this repository on PYTHONPATH, unbuffered output."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def installed_version(name: str, package: str) -> str:
    """Version of ``package`` in peer ``name``'s venv ("?" if it cannot be read)."""
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    try:
        out = subprocess.run(
            [python_for(name), "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
    except (subprocess.SubprocessError, OSError):
        return "?"
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    for name in argv if argv is not None else sys.argv[1:] or list(PEERS):
        print(name, python_for(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
