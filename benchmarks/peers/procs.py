"""Process helpers for the peer benchmarks: CPU of process trees, start/stop of process groups."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.measure import cpu_seconds


def _parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def tree_pids(root: int, prune: frozenset[int] = frozenset()) -> list[int]:
    """``root`` and all its live descendants (from /proc), leaving out the subtrees of ``prune``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            children.setdefault(_parent_of(int(entry)), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in prune and pid != root:
            continue
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


@dataclass
class TreeCpu:
    """CPU seconds used by named process trees between start() and stop().

    A root that is a descendant of another root (a worker started by the driver) is counted
    only under its own name.
    """

    roots: dict[str, int]
    before: dict[int, float] = field(default_factory=dict)

    def _tree(self, root: int) -> list[int]:
        return tree_pids(root, frozenset(self.roots.values()))

    def start(self) -> None:
        self.before = {p: cpu_seconds(p) for r in self.roots.values() for p in self._tree(r)}

    def stop(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for name, root in self.roots.items():
            pids = self._tree(root)
            used[name] = sum(max(0.0, cpu_seconds(p) - self.before.get(p, 0.0)) for p in pids)
        return used


def spawn(
    args: Sequence[str], env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a process in its own process group (so stop() also ends its children)."""
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(args),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log is not None and not isinstance(out, int):
            out.close()


def stop(proc: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL it if it lingers; idempotent."""
    if proc is None:
        return
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait_s)
    # children left behind by a leader that has exited already
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that ``finally`` blocks stop what a CLI started."""

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def cpu_cell(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}s" for k, v in cpu.items())
