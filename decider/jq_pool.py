"""jq evaluations in worker processes, each under a time and a memory limit.

A jq evaluation in a thread cannot be interrupted, so each runs in a child process
(:mod:`decider.jq_worker`) that caps its own address space; a process that does not answer
within the time limit is killed and replaced. The pool belongs to the decider service, which
closes it when it stops. Calls block the calling thread: they are made from the decider's
script threads, never from its event loop.
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import subprocess
import sys
import threading
from typing import IO, Any

from decider.scripting import JqError

_HEADER = struct.Struct(">I")
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jq_worker.py")


class JqLimitExceeded(JqError):
    """The program ran past its time or memory limit; its process was replaced."""


class _Worker:
    """One child process and its pipes."""

    def __init__(self) -> None:
        # -I: the child imports neither this package nor anything the environment names; an
        # empty environment: jq's $ENV and env would otherwise show programs the decider's
        # (its store's credentials, say)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
        )
        if self.proc.stdin is None or self.proc.stdout is None:  # never with PIPE
            raise RuntimeError("jq worker started without pipes")
        self.stdin: IO[bytes] = self.proc.stdin
        self.stdout: IO[bytes] = self.proc.stdout

    def send(self, max_memory_bytes: int, program: str, text: str) -> None:
        frames = (str(max_memory_bytes).encode(), program.encode(), text.encode())
        self.stdin.write(b"".join(_HEADER.pack(len(f)) + f for f in frames))
        self.stdin.flush()

    def receive(self, timeout_s: float) -> bytes | None:
        """The answer; None if the process died. Raises TimeoutError if none came in time."""
        poller = select.poll()  # not select.select: descriptors may be above FD_SETSIZE
        poller.register(self.stdout, select.POLLIN)
        if not poller.poll(max(0, math.ceil(timeout_s * 1000))):
            raise TimeoutError
        header = self.stdout.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack(header)
        data = self.stdout.read(size)
        return data if len(data) == size else None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.stdin.close()
        self.stdout.close()


class JqPool:
    """Up to ``size`` jq processes, started when first needed."""

    def __init__(self, size: int) -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False

    def run(
        self, program: str, value: Any, *, timeout_s: float, max_memory_bytes: int
    ) -> list[Any]:
        """All results of ``program`` on ``value``; :class:`JqLimitExceeded` past a limit."""
        text = json.dumps(value, default=str)
        with self._slots:
            worker = self._take()
            answer: bytes | None = None
            timed_out = False
            try:
                worker.send(max_memory_bytes, program, text)
                answer = worker.receive(timeout_s)
            except TimeoutError:
                timed_out = True
            except OSError:
                pass  # the process died (or the pool closed under it): a new one next time
            finally:
                self._give_back(worker, healthy=answer is not None)
        if answer is None:
            if self._closed:
                raise JqError("jq evaluation stopped: the decider is shutting down")
            if timed_out:
                raise JqLimitExceeded(
                    f"jq expression exceeded its {_seconds(timeout_s)} s time limit"
                )
            # jq aborts its process when an allocation fails
            raise JqLimitExceeded(
                f"jq expression exceeded its {_mebibytes(max_memory_bytes)} MiB memory limit"
            )
        reply = json.loads(answer)
        if "error" in reply:
            raise JqError(str(reply["error"]))
        if reply.get("memory"):
            raise JqLimitExceeded(
                f"jq expression exceeded its {_mebibytes(max_memory_bytes)} MiB memory limit"
            )
        return list(reply["ok"])

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise JqError("jq evaluation stopped: the decider is shutting down")
            worker = self._idle.pop() if self._idle else _Worker()
            self._busy.add(worker)
            return worker

    def _give_back(self, worker: _Worker, *, healthy: bool) -> None:
        with self._lock:
            self._busy.discard(worker)
            if healthy and not self._closed:
                self._idle.append(worker)
                return
        worker.kill()

    def close(self) -> None:
        """Kill every process; calls in progress fail, later ones are refused."""
        with self._lock:
            self._closed = True
            idle, busy = list(self._idle), list(self._busy)
            self._idle.clear()
        for worker in idle:
            worker.kill()
        for worker in busy:  # its caller sees the process end, then closes its pipes
            if worker.proc.poll() is None:
                worker.proc.kill()


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _mebibytes(value: int) -> str:
    mib = value / (1024 * 1024)
    return str(int(mib)) if mib.is_integer() else f"{math.ceil(mib * 10) / 10}"
