"""JavaScript evaluation in a sandbox: V8 through mini-racer, one fresh context per evaluation.

Each evaluation has a wall-clock and a heap limit and no host objects (no require, process,
fetch or file system). The input is injected as JSON text bound to ``$`` and the result comes
back through ``JSON.stringify``, so only JSON values cross the boundary. The program's
completion value is the result, as with Conductor's GraalJS ``ScriptEvaluator``.

The decider evaluates workflow scripts with it (:mod:`decider.scripting`), and the sweeper the
conditions of event handlers (:mod:`sweeper.events`).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

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
