"""The diagram's layout (api_gateway/ui/js/graph.js), run in the browser on large, nested
definitions: every task placed, no two nodes overlapping, in linear time."""

from __future__ import annotations

from typing import Any

from podium.types import JSON

CHECK = """async (definition) => {
  const { buildModel, layout, NODE_W, NODE_H } = await import("/ui/js/graph.js");
  const t0 = performance.now();
  const model = buildModel(definition, [], null);
  const geo = layout(model);
  const ms = performance.now() - t0;
  const nodes = model.nodes;
  const unplaced = nodes.filter((n) => !Number.isFinite(n.x) || !Number.isFinite(n.y)).length;
  // overlaps, by a sweep over the nodes sorted by y
  const byY = [...nodes].sort((a, b) => a.y - b.y);
  let overlaps = 0;
  for (let i = 0; i < byY.length; i++) {
    for (let j = i + 1; j < byY.length && byY[j].y < byY[i].y + NODE_H; j++) {
      if (Math.abs(byY[j].x - byY[i].x) < NODE_W) overlaps++;
    }
  }
  const inside = nodes.every((n) =>
    n.x >= 0 && n.y >= 0 && n.x + NODE_W <= geo.width && n.y + NODE_H <= geo.height);
  return { nodes: nodes.length, unplaced, overlaps, inside, ms, edges: geo.edges.length };
}"""


def simple(ref: str) -> JSON:
    return {"name": "work", "taskReferenceName": ref, "type": "SIMPLE"}


def nested(prefix: str, depth: int) -> list[JSON]:
    """A fork of a switch of a loop of tasks, nested ``depth`` times."""
    if depth == 0:
        return [simple(f"{prefix}_a"), simple(f"{prefix}_b")]
    return [
        {"name": "fork", "taskReferenceName": f"{prefix}_fork", "type": "FORK_JOIN",
         "forkTasks": [nested(f"{prefix}_f{i}", depth - 1) for i in range(2)]},
        {"name": "join", "taskReferenceName": f"{prefix}_join", "type": "JOIN"},
        {"name": "switch", "taskReferenceName": f"{prefix}_sw", "type": "SWITCH",
         "evaluatorType": "value-param", "expression": "x",
         "decisionCases": {"a": nested(f"{prefix}_ca", depth - 1), "b": []},
         "defaultCase": [simple(f"{prefix}_default")]},
        {"name": "loop", "taskReferenceName": f"{prefix}_loop", "type": "DO_WHILE",
         "loopCondition": "false", "loopOver": nested(f"{prefix}_l", depth - 1)},
        {"name": "dyn", "taskReferenceName": f"{prefix}_dyn", "type": "FORK_JOIN_DYNAMIC"},
        {"name": "dyn_join", "taskReferenceName": f"{prefix}_dynjoin", "type": "JOIN"},
    ]  # fmt: skip


def definition(tasks: list[JSON]) -> JSON:
    return {"name": "layout", "version": 1, "tasks": tasks}


async def test_nested_structures_lay_out_without_overlaps(page: Any) -> None:
    await page.goto("/ui/")
    deep = definition([*nested("n", 4), simple("after")])
    result = await page.evaluate(CHECK, deep)
    assert result["nodes"] > 500, result
    assert result["unplaced"] == 0 and result["overlaps"] == 0 and result["inside"], result


async def test_a_thousand_tasks_lay_out_in_milliseconds(page: Any) -> None:
    await page.goto("/ui/")
    sequence = definition([simple(f"s{i}") for i in range(1000)])
    forks = definition(
        [t for b in range(100) for t in (
            {"name": "fork", "taskReferenceName": f"fork{b}", "type": "FORK_JOIN",
             "forkTasks": [[simple(f"f{b}_{j}_{k}") for k in range(2)] for j in range(4)]},
            {"name": "join", "taskReferenceName": f"join{b}", "type": "JOIN"})]
    )  # fmt: skip
    for d in (sequence, forks):
        result = await page.evaluate(CHECK, d)
        assert result["nodes"] == 1000, result
        assert result["unplaced"] == 0 and result["overlaps"] == 0 and result["inside"], result
        # linear: a few ms on a laptop; generous for a loaded CI machine
        assert result["ms"] < 250, result
