"""Conductor's ``${...}`` expressions as they appear in definitions: finding them, and
whether their paths compile as JSONPath.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jsonpath

SIMPLE_PATH = re.compile(r"^[^.\[\]*?@$()'\" ]+(?:\.[^.\[\]*?@$()'\" ]+|\[-?\d+\])*$")


class JsonPaths:
    """Compiled JSONPath expressions by their text, the last ``size`` of them (compiling
    costs more than reading); safe to share between threads."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._compiled: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def compile(self, expr: str) -> Any:
        """The compiled expression; raises ``jsonpath.JSONPathError`` if it does not compile."""
        with self._lock:
            if expr in self._compiled:
                self._compiled.move_to_end(expr)
                return self._compiled[expr]
        compiled = jsonpath.compile(expr)
        with self._lock:
            self._compiled[expr] = compiled
            if len(self._compiled) > self._size:
                self._compiled.popitem(last=False)
        return compiled


def find_expressions(text: str) -> list[tuple[int, int]]:
    """Spans of top-level ``${...}`` with balanced braces, not preceded by ``$``."""
    spans: list[tuple[int, int]] = []
    i = 0
    while True:
        start = text.find("${", i)
        if start < 0:
            return spans
        if start > 0 and text[start - 1] == "$":
            i = start + 2
            continue
        depth = 0
        end = -1
        for k in range(start + 1, len(text)):
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    end = k + 1
                    break
        if end < 0:
            return spans
        spans.append((start, end))
        i = end


def validate_expression_path(path: str) -> bool:
    """Whether an expression path (text inside ``${}``) compiles as JSONPath."""
    if SIMPLE_PATH.match(path.strip()) or path.strip().endswith((".length()", ".size()")):
        return True
    try:
        jsonpath.compile(path if path.startswith("$") else "$." + path)
    except jsonpath.JSONPathError:
        return False
    return True


def expressions_in(value: Any) -> list[str]:
    """Every top-level expression path inside ``value`` (strings in maps and lists)."""
    if isinstance(value, str):
        return [value[s + 2 : e - 1] for s, e in find_expressions(value)]
    if isinstance(value, Mapping):
        return [p for v in value.values() for p in expressions_in(v)]
    if isinstance(value, list):
        return [p for v in value for p in expressions_in(v)]
    return []
