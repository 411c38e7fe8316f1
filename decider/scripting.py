"""Sandboxed evaluators: JavaScript (V8 through mini-racer, :mod:`podium.javascript`) and jq.

Operations reach scripts through ``Context.scripts`` (:class:`Scripts`). In the decider service
that is never the event loop: the shell first runs an operation with :class:`OnLoop`, and if
the operation reaches a script, runs it again on a script thread (see
:class:`decider.script_host.ScriptHost`), where jq runs in a worker process with limits.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

import jq

from podium.javascript import DEFAULT_MAX_MEMORY_BYTES as DEFAULT_MAX_MEMORY_BYTES
from podium.javascript import DEFAULT_TIMEOUT_S as DEFAULT_TIMEOUT_S
from podium.javascript import ScriptError as ScriptError
from podium.javascript import ScriptTimeout as ScriptTimeout
from podium.javascript import eval_bool as eval_bool
from podium.javascript import eval_js as eval_js

# --- jq -------------------------------------------------------------------------------------


class JqError(Exception):
    """A jq program that does not compile or fails on its input."""


class JqPrograms:
    """Compiled jq programs by their text, the last ``size`` of them (compiling costs more
    than running); safe to share between threads."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._compiled: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def compile(self, program: str) -> Any:
        with self._lock:
            if program in self._compiled:
                self._compiled.move_to_end(program)
                return self._compiled[program]
        try:
            compiled = jq.compile(program)
        except ValueError as exc:
            raise JqError(str(exc).strip()) from exc
        with self._lock:
            self._compiled[program] = compiled
            if len(self._compiled) > self._size:
                self._compiled.popitem(last=False)
        return compiled


def run_jq(program: str, value: Any, programs: JqPrograms | None = None) -> list[Any]:
    """All results of ``program`` applied to ``value`` (integral floats become ints)."""
    compiled = (programs or JqPrograms(1)).compile(program)
    try:
        results = compiled.input_value(value).all()
    except ValueError as exc:
        raise JqError(str(exc).strip()) from exc
    return normalize_jq_results(results)


def normalize_jq_results(results: list[Any]) -> list[Any]:
    """jq's numbers are doubles: integral ones become ints."""
    return [_normalize_number(r) for r in results]


def _normalize_number(v: Any) -> Any:
    if isinstance(v, float) and math.isfinite(v) and v.is_integer() and abs(v) < 2**63:
        return int(v)
    if isinstance(v, list):
        return [_normalize_number(x) for x in v]
    if isinstance(v, dict):
        return {k: _normalize_number(x) for k, x in v.items()}
    return v


# --- where an operation's scripts run -------------------------------------------------------


class Scripts:
    """Evaluates an operation's scripts (``Context.scripts``).

    This one evaluates in the calling thread, jq without limits: for pure use of the decider
    (tests, tools). The decider service uses :class:`OnLoop` and
    :class:`decider.script_host.ScriptHost`.
    """

    def __init__(self) -> None:
        self._jq_programs = JqPrograms()

    def eval_js(
        self, expression: str, bindings: Any, *, timeout_s: float, max_memory_bytes: int
    ) -> Any:
        return eval_js(expression, bindings, timeout_s=timeout_s, max_memory_bytes=max_memory_bytes)

    def run_jq(
        self, program: str, value: Any, *, timeout_s: float, max_memory_bytes: int
    ) -> list[Any]:
        return run_jq(program, value, self._jq_programs)


class NeedsScriptThread(BaseException):
    """An operation on the event loop reached a script: run it again on a script thread.

    A BaseException, so that no ``except Exception`` inside an operation takes it for the
    script's own failure.
    """


class OnLoop(Scripts):
    """Refuses every evaluation, so that none runs on (and blocks) the event loop."""

    def __init__(self) -> None:
        pass  # evaluates nothing, so keeps no compiled programs

    def eval_js(
        self, expression: str, bindings: Any, *, timeout_s: float, max_memory_bytes: int
    ) -> Any:
        raise NeedsScriptThread

    def run_jq(
        self, program: str, value: Any, *, timeout_s: float, max_memory_bytes: int
    ) -> list[Any]:
        raise NeedsScriptThread
