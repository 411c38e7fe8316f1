"""A child process of :class:`decider.jq_pool.JqPool`: evaluates jq programs, one at a time.

It is started as a script (``python -I jq_worker.py``), so it imports nothing of Podium. Each
request is two frames, the program and the input as JSON text; the answer is one frame, a JSON
object: ``{"ok": [results]}``, ``{"error": message}`` or ``{"memory": true}``. A frame is a
4-byte big-endian length and that many bytes. Before each evaluation the process caps its own
address space at its current size plus the request's memory limit, so a program that outgrows
it fails (or jq aborts the process, which the pool sees as the same thing). The time limit is
the pool's: it kills a process that does not answer in time.
"""

from __future__ import annotations

import json
import resource
import struct
import sys
from typing import Any, BinaryIO

import jq

_HEADER = struct.Struct(">I")
_MAX_COMPILED = 256


def _read_frame(stream: BinaryIO) -> bytes | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    return data if len(data) == size else None


def _write_frame(stream: BinaryIO, data: bytes) -> None:
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _address_space_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * resource.getpagesize()
    except OSError:
        return 0


def _limit_memory(limit_bytes: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = _address_space_bytes() + limit_bytes
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _evaluate(compiled: dict[str, Any], program: str, text: str) -> dict[str, Any]:
    try:
        prog = compiled.get(program)
        if prog is None:
            prog = jq.compile(program)
            if len(compiled) >= _MAX_COMPILED:
                compiled.clear()
            compiled[program] = prog
        return {"ok": prog.input_text(text).all()}
    except MemoryError:
        return {"memory": True}
    except ValueError as exc:
        return {"error": str(exc).strip()}


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    compiled: dict[str, Any] = {}
    while True:
        limit = _read_frame(stdin)
        program = _read_frame(stdin)
        text = _read_frame(stdin)
        if limit is None or program is None or text is None:
            return 0
        _limit_memory(int(limit))
        answer = _evaluate(compiled, program.decode(), text.decode())
        try:
            data = json.dumps(answer).encode()
        except MemoryError:
            data = b'{"memory": true}'
        _write_frame(stdout, data)


if __name__ == "__main__":
    sys.exit(main())
