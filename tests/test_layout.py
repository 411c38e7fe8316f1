"""The layout shows the architecture: no service imports another, shared code is in podium/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("queue_service", "decider", "api_gateway", "sweeper")


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an ``import`` or ``from ... import`` names, at any depth (function-level
    imports included)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_no_service_imports_another_service() -> None:
    crossings = []
    for service in SERVICES:
        for path in sorted((ROOT / service).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for line, module in _imported(tree):
                top = module.split(".")[0]
                if top in SERVICES and top != service:
                    crossings.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert crossings == []


def test_the_gateway_loads_neither_v8_nor_jq() -> None:
    probe = (
        "import sys, api_gateway.server, api_gateway.checks; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('py_mini_racer', 'jq', 'decider', 'sweeper', 'queue_service')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
