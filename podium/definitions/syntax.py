"""Whether a definition's JavaScript expressions and jq programs compile.

V8 and jq are imported on first use, not with this module: a process that registers
definitions without scripts (the gateway, most of the time) never loads them.
"""

from __future__ import annotations

import json
import re


def check_js_syntax(expression: str) -> str | None:
    """The syntax error message of ``expression``, or None when it parses.

    The expression is only compiled (``new Function``), never run, so this needs no time limit
    and may be called on an event loop (mini-racer refuses a timeout there).
    """
    from py_mini_racer import JSEvalException, JSParseException, MiniRacer

    ctx = MiniRacer()
    try:
        ctx.eval(f"new Function({json.dumps(expression)}); 0")
    except (JSParseException, JSEvalException) as exc:
        return js_message(exc)
    finally:
        ctx.close()
    return None


def check_jq_syntax(program: str) -> str | None:
    """The compile error of a jq program, or None."""
    import jq

    try:
        jq.compile(program)
    except ValueError as exc:
        return str(exc).strip()
    return None


def js_message(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "Error" in ln and not ln.startswith("at "):
            # V8 prefixes the message with "<script>:<line>: "
            return re.sub(r"^\S+:\d+: ", "", ln)
    return lines[0] if lines else type(exc).__name__
