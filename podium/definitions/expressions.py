"""Conductor's ``${...}`` expressions as they appear in definitions: finding them, and
whether their paths compile as JSONPath.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import jsonpath

SIMPLE_PATH = re.compile(r"^[^.\[\]*?@$()'\" ]+(?:\.[^.\[\]*?@$()'\" ]+|\[-?\d+\])*$")


@functools.lru_cache(maxsize=1024)
def compile_path(expr: str) -> Any:
    return jsonpath.compile(expr)


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
        compile_path(path if path.startswith("$") else "$." + path)
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
