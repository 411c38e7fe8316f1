"""Sandboxed evaluators: JavaScript (V8 through mini-racer) and jq.

Each JavaScript evaluation runs in a fresh V8 context with a wall-clock and a heap limit, with no
host objects (no require, process, fetch or file system). The input is injected as JSON text
bound to ``$`` and the result comes back through ``JSON.stringify``, so only JSON values cross
the boundary. The program's completion value is the result, as with Conductor's GraalJS
``ScriptEvaluator``.

Operations reach scripts through ``Context.scripts`` (:class:`Scripts`). In the decider service
that is never the event loop: the shell first runs an operation with :class:`OnLoop`, and if
the operation reaches a script, runs it again on a script thread (see
:class:`decider.script_host.ScriptHost`), where jq runs in a worker process with limits.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections import OrderedDict
from typing import Any

import jq
from py_mini_racer import (
    JSEvalException,
    JSOOMException,
    JSTimeoutException,
    MiniRacer,
)

from podium.definitions.syntax import js_message

DEFAULT_TIMEOUT_S = 4.0
DEFAULT_MAX_MEMORY_BYTES = 64 * 1024 * 1024


class ScriptError(Exception):
    """The script is invalid or threw (Conductor: TerminateWorkflowException)."""


class ScriptTimeout(Exception):
    """The script ran past its time or memory limit (Conductor: NonTransientException)."""


_PRELUDE = "var $ = JSON.parse({data});\n"
# indirect eval: the program runs in global scope and its completion value is the result
_RUN = (
    "(function(){{ var r = (0, eval)({code}); "
    "return r === undefined ? null : JSON.stringify(r); }})()"
)


def eval_js(
    expression: str,
    bindings: Any,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
) -> Any:
    """Evaluate ``expression`` as a JavaScript program with ``$`` = ``bindings``.

    Returns the program's completion value converted to JSON types (``None`` for undefined).
    Raises :class:`ScriptError` for syntax and runtime errors and :class:`ScriptTimeout` when a
    limit is hit.
    """
    data = json.dumps(json.dumps(bindings, default=str))
    source = _PRELUDE.format(data=data) + _RUN.format(code=json.dumps(expression))
    ctx = MiniRacer()
    try:
        raw = ctx.eval(source, timeout_sec=timeout_s, max_memory=max_memory_bytes)
    except JSTimeoutException as exc:
        _drain(ctx)
        raise ScriptTimeout(
            f"Script not evaluated within {_seconds(timeout_s)} seconds, interrupted."
        ) from exc
    except JSOOMException as exc:
        _drain(ctx)
        raise ScriptTimeout("Script exceeded its memory limit, interrupted.") from exc
    except JSEvalException as exc:
        raise ScriptError(js_message(exc)) from exc
    finally:
        ctx.close()
    if raw is None or not isinstance(raw, str):
        return None
    return json.loads(raw)


def _drain(ctx: MiniRacer) -> None:
    """Let V8 deliver the interrupted evaluation's callback before the context closes."""
    with contextlib.suppress(Exception):
        ctx.eval("0", timeout_sec=1.0)


def eval_bool(value: Any) -> bool:
    """Conductor's ``ScriptEvaluator.evalBool``: booleans as is, numbers ``> 0``, else false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    return False


def _seconds(timeout_s: float) -> str:
    return str(int(timeout_s)) if float(timeout_s).is_integer() else str(timeout_s)


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
