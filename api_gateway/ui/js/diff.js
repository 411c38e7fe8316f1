// A line diff (Myers' O(ND) algorithm) and its rendering with a few lines of context.

import { h } from "./dom.js";

/** Edit script between two arrays of lines: [{op: " "|"-"|"+", line}]. */
export function diffLines(a, b) {
  const n = a.length, m = b.length, max = n + m;
  const v = new Int32Array(2 * max + 2);
  const trace = [];
  let found = false;
  for (let d = 0; d <= max && !found; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[max + k - 1] < v[max + k + 1]) ? v[max + k + 1] : v[max + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) { x++; y++; }
      v[max + k] = x;
      if (x >= n && y >= m) { found = true; break; }
    }
  }
  // walk back through the saved frontiers
  const out = [];
  let x = n, y = m;
  for (let d = trace.length - 1; d >= 0; d--) {
    const vd = trace[d];
    const k = x - y;
    const prevK = k === -d || (k !== d && vd[max + k - 1] < vd[max + k + 1]) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : vd[max + prevK];
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) { out.push({ op: " ", line: a[x - 1] }); x--; y--; }
    if (d > 0) {
      if (x === prevX) out.push({ op: "+", line: b[y - 1] });
      else out.push({ op: "-", line: a[x - 1] });
    }
    x = prevX; y = prevY;
  }
  return out.reverse();
}

/** Keys sorted at every level, so that two versions differ only where they really do. */
export function canonicalJson(value) {
  const sortKeys = (v) => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
    return v;
  };
  return JSON.stringify(sortKeys(value), null, 2);
}

export function renderDiff(textA, textB, context = 3) {
  const ops = diffLines(textA.split("\n"), textB.split("\n"));
  const keep = new Uint8Array(ops.length);
  ops.forEach((o, i) => {
    if (o.op === " ") return;
    for (let j = Math.max(0, i - context); j <= Math.min(ops.length - 1, i + context); j++) keep[j] = 1;
  });
  const lines = [];
  let skipped = 0;
  let adds = 0, dels = 0;
  ops.forEach((o, i) => {
    if (o.op === "+") adds++;
    if (o.op === "-") dels++;
    if (!keep[i]) { skipped++; return; }
    if (skipped) { lines.push(h("div", { class: "gap" }, `… ${skipped} unchanged line${skipped === 1 ? "" : "s"}`)); skipped = 0; }
    lines.push(h("div", { class: o.op === "+" ? "add" : o.op === "-" ? "del" : "ctx" }, `${o.op} ${o.line}`));
  });
  if (skipped) lines.push(h("div", { class: "gap" }, `… ${skipped} unchanged line${skipped === 1 ? "" : "s"}`));
  return h("div", null,
    h("p", { class: "muted", id: "diff-summary" }, adds || dels ? `${adds} line${adds === 1 ? "" : "s"} added, ${dels} removed` : "The two versions are the same."),
    h("pre", { class: "diff", id: "diff" }, lines));
}
