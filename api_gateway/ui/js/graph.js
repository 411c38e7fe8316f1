// The workflow diagram: a model built from a definition (and an execution's tasks), a
// recursive block layout in linear time, and an SVG renderer with zoom and pan.
//
// Conductor definitions are structured (sequences, forks, switch branches, loops, dynamic
// forks), so the layout needs no general graph algorithm: every block is measured bottom-up
// (width, height) and placed top-down, its entry centred over it; the edges are drawn from
// the exits of one block to the entry of the next. A thousand tasks lay out in a few ms.

import { s } from "./dom.js";

export const NODE_W = 196;
export const NODE_H = 46;
const V_GAP = 34; // between blocks of a sequence
const H_GAP = 24; // between branches
const LABEL_H = 16; // room for branch labels
const PAD = 14; // inside a loop's frame
const LANE = 26; // the loop-back edge's lane
const EMPTY_W = 60; // an empty branch
const TERM_R = 15; // start/end circles
export const DYN_MAX = 24; // dynamic-fork children drawn; the rest behind a "+N more" node

// -- the model ------------------------------------------------------------------------------

function stripIteration(task) {
  const ref = task.referenceTaskName || "";
  if (!(task.iteration > 0)) return ref;
  const i = ref.lastIndexOf("__");
  return i > 0 ? ref.slice(0, i) : ref;
}

/** Tasks of an execution by reference name (loop iterations under the body's own ref). */
export function indexTasks(tasks) {
  const byRef = new Map();
  for (const t of tasks || []) {
    const ref = stripIteration(t);
    let list = byRef.get(ref);
    if (!list) byRef.set(ref, (list = []));
    list.push(t);
  }
  for (const list of byRef.values()) list.sort((a, b) => (a.seq || 0) - (b.seq || 0));
  return byRef;
}

function makeNode(ctx, wt, extra = {}) {
  const ref = wt.taskReferenceName;
  const attempts = ctx.byRef.get(ref) || [];
  const latest = attempts.length ? attempts[attempts.length - 1] : null;
  const node = {
    id: ref,
    ref,
    name: wt.name || ref,
    type: wt.type || (latest && latest.taskType) || "SIMPLE",
    status: latest ? latest.status : "NONE",
    taskId: latest ? latest.taskId : null,
    attempts: attempts.length,
    iteration: latest && latest.iteration > 0 ? latest.iteration : 0,
    subWorkflowId: latest ? latest.subWorkflowId || (latest.outputData && latest.outputData.subWorkflowId) : null,
    wt,
    ...extra,
  };
  ctx.nodes.push(node);
  return node;
}

function seqBlock(ctx, wts) {
  return { kind: "seq", items: (wts || []).filter(Boolean).map((wt) => taskBlock(ctx, wt)) };
}

function selectedCase(node, ctx) {
  const latest = (ctx.byRef.get(node.ref) || []).at(-1);
  if (!latest) return null;
  const out = latest.outputData || {};
  if (out.selectedCase !== undefined && out.selectedCase !== null) return String(out.selectedCase);
  if (Array.isArray(out.evaluationResult) && out.evaluationResult.length) return String(out.evaluationResult[0]);
  return null;
}

function taskBlock(ctx, wt) {
  const type = wt.type || "SIMPLE";
  if (type === "FORK_JOIN") {
    return { kind: "fork", node: makeNode(ctx, wt), branches: (wt.forkTasks || []).map((b) => ({ seq: seqBlock(ctx, b) })) };
  }
  if (type === "SWITCH" || type === "DECISION") {
    const node = makeNode(ctx, wt);
    const cases = Object.entries(wt.decisionCases || {});
    const ran = node.status !== "NONE";
    const chosen = ran ? selectedCase(node, ctx) : null;
    const taken = chosen !== null && cases.some(([k]) => k === chosen) ? chosen : ran ? "default" : null;
    const branches = cases.map(([k, tasks]) => ({ label: k, seq: seqBlock(ctx, tasks), taken: taken === null ? null : taken === k }));
    branches.push({ label: "default", seq: seqBlock(ctx, wt.defaultCase), taken: taken === null ? null : taken === "default" });
    node.taken = taken;
    for (const b of branches) if (b.taken === false) markNotTaken(b.seq);
    return { kind: "switch", node, branches };
  }
  if (type === "DO_WHILE") {
    const node = makeNode(ctx, wt);
    const latest = (ctx.byRef.get(node.ref) || []).at(-1);
    node.iterations = latest ? (latest.iteration || (latest.outputData && latest.outputData.iteration) || 0) : 0;
    return { kind: "loop", node, body: seqBlock(ctx, wt.loopOver) };
  }
  if (type === "FORK_JOIN_DYNAMIC") {
    const node = makeNode(ctx, wt);
    const fork = (ctx.byRef.get(node.ref) || []).at(-1);
    const refs = (fork && fork.inputData && Array.isArray(fork.inputData.forkedTasks)) ? fork.inputData.forkedTasks : [];
    const children = refs.slice(0, refs.length > DYN_MAX ? DYN_MAX - 1 : DYN_MAX).map((ref) => {
      const t = (ctx.byRef.get(ref) || []).at(-1);
      const cwt = (t && t.workflowTask) || { name: (t && t.taskDefName) || ref, taskReferenceName: ref, type: (t && t.taskType) || "SIMPLE" };
      return makeNode(ctx, { ...cwt, taskReferenceName: ref }, { dynamicChild: true });
    });
    let more = null;
    if (refs.length > children.length) {
      const rest = refs.slice(children.length);
      const statuses = rest.map((r) => ((ctx.byRef.get(r) || []).at(-1) || {}).status || "NONE");
      more = { id: `${node.ref}__more`, ref: null, name: `+${rest.length} more`, type: "dynamic tasks", status: worstStatus(statuses), more: rest, attempts: 0 };
      ctx.nodes.push(more);
    }
    if (!children.length && !more) {
      more = { id: `${node.ref}__dynamic`, ref: null, name: "dynamic tasks", type: "decided at run time", status: "NONE", more: [], attempts: 0 };
      ctx.nodes.push(more);
    }
    return { kind: "dyn", node, children: more ? [...children, more] : children };
  }
  return { kind: "node", node: makeNode(ctx, wt) };
}

function markNotTaken(seq) {
  const walk = (b) => {
    if (b.node) b.node.notTaken = b.node.status === "NONE";
    if (b.kind === "seq") b.items.forEach(walk);
    if (b.branches) b.branches.forEach((br) => walk(br.seq));
    if (b.body) walk(b.body);
    if (b.children) b.children.forEach((c) => { c.notTaken = c.status === "NONE"; });
  };
  walk(seq);
}

const SEVERITY = ["FAILED", "FAILED_WITH_TERMINAL_ERROR", "TIMED_OUT", "CANCELED", "IN_PROGRESS", "SCHEDULED", "COMPLETED_WITH_ERRORS", "COMPLETED", "SKIPPED", "NONE"];
function worstStatus(statuses) {
  let best = SEVERITY.length - 1;
  for (const st of statuses) { const i = SEVERITY.indexOf(st); if (i >= 0 && i < best) best = i; }
  return SEVERITY[best];
}

/**
 * The workflow tasks of an execution whose definition is not embedded (an old record): its
 * tasks in the order they ran, one node per reference.
 */
function definitionFromTasks(tasks) {
  const seen = new Set();
  const out = [];
  for (const t of [...(tasks || [])].sort((a, b) => (a.seq || 0) - (b.seq || 0))) {
    const ref = stripIteration(t);
    if (seen.has(ref)) continue;
    seen.add(ref);
    const wt = t.workflowTask || {};
    out.push({ name: wt.name || t.taskDefName || ref, taskReferenceName: ref, type: wt.type && !["FORK_JOIN", "SWITCH", "DECISION", "DO_WHILE", "FORK_JOIN_DYNAMIC"].includes(wt.type) ? wt.type : t.taskType });
  }
  return out;
}

/** The diagram model of a definition, coloured by an execution's tasks when given. */
export function buildModel(def, tasks, workflowStatus) {
  const ctx = { byRef: indexTasks(tasks), nodes: [] };
  const defined = def && Array.isArray(def.tasks) && def.tasks.length ? def.tasks : definitionFromTasks(tasks);
  const root = seqBlock(ctx, defined);
  const byId = new Map(ctx.nodes.map((n) => [n.id, n]));
  const signature = ctx.nodes.map((n) => `${n.id}:${n.taken ?? ""}:${n.more ? n.more.length : ""}`).join("|");
  return { root, nodes: ctx.nodes, byId, byRef: ctx.byRef, signature, workflowStatus: workflowStatus || null };
}

// -- the layout -----------------------------------------------------------------------------

function measure(b) {
  switch (b.kind) {
    case "seq": {
      let w = 0, h = 0;
      for (const it of b.items) { measure(it); w = Math.max(w, it.w); h += it.h; }
      if (b.items.length > 1) h += V_GAP * (b.items.length - 1);
      b.w = b.items.length ? w : EMPTY_W;
      b.h = h;
      break;
    }
    case "node": b.w = NODE_W; b.h = NODE_H; break;
    case "fork":
    case "switch": {
      let w = 0, h = 0;
      for (const br of b.branches) { measure(br.seq); w += br.seq.w; h = Math.max(h, br.seq.h); }
      w += H_GAP * Math.max(0, b.branches.length - 1);
      b.rowW = w;
      b.rowH = h;
      b.w = Math.max(NODE_W, w);
      b.h = NODE_H + V_GAP + (b.kind === "switch" ? LABEL_H : 0) + h;
      break;
    }
    case "loop": {
      measure(b.body);
      const inner = Math.max(b.body.w, NODE_W);
      b.frameW = inner + 2 * PAD;
      b.frameH = b.body.h + 2 * PAD + LABEL_H;
      b.w = Math.max(NODE_W, b.frameW) + LANE;
      b.h = NODE_H + V_GAP + b.frameH;
      break;
    }
    case "dyn": {
      const n = b.children.length;
      b.rowW = n * NODE_W + Math.max(0, n - 1) * H_GAP;
      b.w = Math.max(NODE_W, b.rowW);
      b.h = NODE_H + V_GAP + NODE_H;
      break;
    }
    default: throw new Error(`unknown block ${b.kind}`);
  }
}

/**
 * Lay out a model: node positions (x, y of the top-left corner) and edges
 * ({d, cls, label, lx, ly}). Returns {width, height, edges, frames, terminals}.
 */
export function layout(model) {
  const out = { edges: [], frames: [], terminals: [] };
  const root = model.root;
  measure(root);
  const margin = 40;
  const width = Math.max(root.w, NODE_W) + 2 * margin;
  const cx = width / 2;
  const start = { x: cx, y: margin + TERM_R };
  out.terminals.push({ kind: "start", x: start.x, y: start.y, label: "start" });
  const top = start.y + TERM_R + V_GAP;
  const exits = placeSeq(root, (width - root.w) / 2, top, [{ pts: [[start.x, start.y + TERM_R]] }], out);
  const endY = top + root.h + (root.items.length ? V_GAP : 0) + TERM_R;
  connectAll(exits, [cx, endY - TERM_R], out);
  out.terminals.push({ kind: "end", x: cx, y: endY, label: "end" });
  out.width = width;
  out.height = endY + TERM_R + margin;
  return out;
}

function placeSeq(seq, left, top, incoming, out) {
  let y = top;
  let exits = incoming;
  for (const it of seq.items) {
    exits = placeBlock(it, left + (seq.w - it.w) / 2, y, exits, out);
    y += it.h + V_GAP;
  }
  return exits;
}

function placeNode(node, cx, top) {
  node.x = cx - NODE_W / 2;
  node.y = top;
  return [cx, top];
}

function placeBlock(b, left, top, incoming, out) {
  const cx = left + b.w / 2;
  switch (b.kind) {
    case "node": {
      connectAll(incoming, placeNode(b.node, cx, top), out);
      return [{ pts: [[cx, top + NODE_H]] }];
    }
    case "fork":
    case "switch": {
      connectAll(incoming, placeNode(b.node, cx, top), out);
      const bottom = top + NODE_H;
      const rowTop = bottom + V_GAP + (b.kind === "switch" ? LABEL_H : 0);
      let x = cx - b.rowW / 2;
      const exits = [];
      for (const br of b.branches) {
        const bcx = x + br.seq.w / 2;
        const cls = br.taken === true ? "taken" : br.taken === false ? "not-taken" : "";
        const label = b.kind === "switch" ? { text: br.label, x: bcx, y: rowTop - 6, cls } : null;
        if (label) out.edges.push({ label: label.text, lx: label.x, ly: label.y, cls, box: [label.x - 90, label.y - 14, label.x + 90, label.y + 4] });
        const enter = [{ pts: [[cx, bottom]], cls }];
        if (!br.seq.items.length) {
          exits.push({ pts: [[cx, bottom], [bcx, rowTop]], cls });
        } else {
          exits.push(...placeSeq(br.seq, x, rowTop, enter, out).map((e) => ({ ...e, cls: e.cls || cls })));
        }
        x += br.seq.w + H_GAP;
      }
      return exits;
    }
    case "loop": {
      const nodeCx = cx - LANE / 2;
      connectAll(incoming, placeNode(b.node, nodeCx, top), out);
      const frameTop = top + NODE_H + V_GAP;
      const frameLeft = nodeCx - b.frameW / 2;
      out.frames.push({ x: frameLeft, y: frameTop, w: b.frameW, h: b.frameH, label: `${b.node.ref} body${b.node.iterations ? ` · iteration ${b.node.iterations}` : ""}` });
      const bodyTop = frameTop + PAD + LABEL_H;
      const bodyExits = placeSeq(b.body, nodeCx - b.body.w / 2, bodyTop, [{ pts: [[nodeCx, top + NODE_H]] }], out);
      const frameBottom = frameTop + b.frameH;
      const loopY = frameBottom - PAD / 2;
      connectAll(bodyExits, [nodeCx, loopY], out, true);
      const lane = frameLeft + b.frameW + LANE / 2;
      out.edges.push({
        d: `M${nodeCx},${loopY} L${lane - 6},${loopY} Q${lane},${loopY} ${lane},${loopY - 6} L${lane},${top + NODE_H / 2 + 6} Q${lane},${top + NODE_H / 2} ${lane - 6},${top + NODE_H / 2} L${nodeCx + NODE_W / 2},${top + NODE_H / 2}`,
        cls: "back", arrow: true, box: [nodeCx, top, lane + 2, loopY + 2],
      });
      return [{ pts: [[nodeCx, loopY], [nodeCx, frameBottom]] }];
    }
    case "dyn": {
      connectAll(incoming, placeNode(b.node, cx, top), out);
      const bottom = top + NODE_H;
      const rowTop = bottom + V_GAP;
      let x = cx - b.rowW / 2;
      const exits = [];
      for (const child of b.children) {
        const ccx = x + NODE_W / 2;
        connectAll([{ pts: [[cx, bottom]] }], placeNode(child, ccx, rowTop), out);
        exits.push({ pts: [[ccx, rowTop + NODE_H]] });
        x += NODE_W + H_GAP;
      }
      return exits;
    }
    default: throw new Error(`unknown block ${b.kind}`);
  }
}

function curve(x1, y1, x2, y2) {
  if (Math.abs(x1 - x2) < 0.5) return `L${x2},${y2}`;
  const my = (y1 + y2) / 2;
  return `C${x1},${my} ${x2},${my} ${x2},${y2}`;
}

function connectAll(exits, entry, out, noArrow = false) {
  for (const e of exits) {
    const [x0, y0] = e.pts[0];
    let d = `M${x0},${y0}`;
    let [px, py] = [x0, y0];
    for (const [x, y] of e.pts.slice(1)) { d += curve(px, py, x, y); [px, py] = [x, y]; }
    const [ex, ey] = entry;
    if (ey - py > V_GAP * 1.5 && Math.abs(px - ex) > 0.5) {
      d += `L${px},${ey - V_GAP}`;
      py = ey - V_GAP;
    }
    d += curve(px, py, ex, ey);
    let [bx0, by0, bx1, by1] = [ex, ey, ex, ey];
    for (const [x, y] of e.pts) { bx0 = Math.min(bx0, x); by0 = Math.min(by0, y); bx1 = Math.max(bx1, x); by1 = Math.max(by1, y); }
    out.edges.push({ d, cls: e.cls || "", arrow: !noArrow, box: [bx0 - 2, by0 - 2, bx1 + 2, by1 + 2] });
  }
}

// -- the renderer ---------------------------------------------------------------------------
//
// Only what is in view (and a margin around it) is in the DOM: the items of the layout are
// indexed in a grid of cells, and each pan or zoom adds the items that came into view and
// removes those that left. A workflow of thousands of tasks costs the DOM of one screen.
// Zoomed far out, nodes are drawn without their text (nothing could be read anyway).

const CELL = 800; // grid cell, in diagram units
const LOD_TEXT = 0.33; // below this scale nodes are drawn as boxes only

function truncate(text, max) {
  const t = String(text ?? "");
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

function nodeSub(n) {
  const bits = [n.type];
  if (n.name && n.ref && n.name !== n.ref) bits.push(n.name);
  return bits.join(" · ");
}

function nodeClass(n, selectedId) {
  return ["node", `st-${n.status || "NONE"}`, n.notTaken ? "not-taken" : "", n.more ? "more" : "", n.id === selectedId ? "selected" : ""].filter(Boolean).join(" ");
}

function badgeText(n) {
  if (n.type === "DO_WHILE" && n.iterations > 0) return `${n.iterations}`;
  if (n.iteration > 0) return `${n.iteration}`;
  if (n.attempts > 1) return `${n.attempts}`;
  return "";
}

function drawNode(n, selectedId, handlers, detail) {
  const badge = badgeText(n);
  const g = s("g", { class: nodeClass(n, selectedId), transform: `translate(${n.x},${n.y})`, tabindex: "0", role: "button",
    "aria-label": `${n.ref || n.name} ${n.status}`, dataset: { id: n.id, ref: n.ref || "", status: n.status || "NONE", type: n.type, badge } });
  g.appendChild(s("title", null, `${n.ref || n.name} (${n.type}) ${n.status === "NONE" ? "not run" : n.status}`));
  g.appendChild(s("rect", { class: "box", width: NODE_W, height: NODE_H, rx: 7 }));
  if (detail) {
    g.appendChild(s("text", { class: "title", x: 10, y: 19 }, truncate(n.ref || n.name, 24)));
    g.appendChild(s("text", { class: "sub", x: 10, y: 35 }, truncate(nodeSub(n), 30)));
    if (badge) {
      g.appendChild(s("circle", { class: "badge-c", cx: NODE_W - 4, cy: 4, r: 10 }));
      g.appendChild(s("text", { class: "badge-n", x: NODE_W - 4, y: 8, "text-anchor": "middle" }, badge));
    }
  }
  if (n.subWorkflowId) {
    const link = s("text", { class: "link", x: NODE_W - 22, y: 36, dataset: { sub: n.subWorkflowId } }, "↗");
    link.appendChild(s("title", null, "Open the sub-workflow"));
    link.addEventListener("click", (ev) => { ev.stopPropagation(); handlers.onOpen && handlers.onOpen(n.subWorkflowId); });
    g.appendChild(link);
  }
  return g;
}

function drawEdge(e) {
  if (e.label) return s("text", { class: `edge-label ${e.cls || ""}`, x: e.lx, y: e.ly, "text-anchor": "middle", dataset: { case: e.label } }, truncate(e.label, 22));
  return s("path", { class: `edge ${e.cls || ""}`, d: e.d, "marker-end": e.arrow ? "url(#arrow)" : null });
}

function drawFrame(f) {
  return s("g", { class: "frame" },
    s("rect", { class: "container", x: f.x, y: f.y, width: f.w, height: f.h, rx: 10 }),
    s("text", { class: "container-label", x: f.x + 10, y: f.y + 15 }, f.label));
}

/** A grid index of boxes: items overlapping a rectangle, without looking at the others. */
class Grid {
  constructor() { this.cells = new Map(); }
  add(item, [x0, y0, x1, y1]) {
    for (let cx = Math.floor(x0 / CELL); cx <= Math.floor(x1 / CELL); cx++) {
      for (let cy = Math.floor(y0 / CELL); cy <= Math.floor(y1 / CELL); cy++) {
        const key = `${cx},${cy}`;
        let list = this.cells.get(key);
        if (!list) this.cells.set(key, (list = []));
        list.push(item);
      }
    }
  }
  query(x0, y0, x1, y1) {
    const out = new Set();
    for (let cx = Math.floor(x0 / CELL); cx <= Math.floor(x1 / CELL); cx++) {
      for (let cy = Math.floor(y0 / CELL); cy <= Math.floor(y1 / CELL); cy++) {
        const list = this.cells.get(`${cx},${cy}`);
        if (list) for (const item of list) out.add(item);
      }
    }
    return out;
  }
}

/**
 * Draw a model into `container`; returns a controller:
 * {update(model), select(id), fit(force), zoomBy(f), center(id), svg, model, scale}.
 */
export function renderDiagram(container, model, handlers = {}) {
  const svg = s("svg", { class: "diagram", role: "img", "aria-label": "workflow diagram" });
  const defs = s("defs", null,
    s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#9aa6b4" })));
  const view = s("g", { class: "viewport" });
  const layers = { frame: s("g", { class: "frames" }), edge: s("g", { class: "edges" }), label: s("g", { class: "labels" }), term: s("g", { class: "terminals" }), node: s("g", { class: "nodes" }) };
  view.append(layers.frame, layers.edge, layers.label, layers.term, layers.node);
  svg.append(defs, view);
  container.appendChild(svg);

  const state = { k: 1, x: 0, y: 0, selectedId: handlers.selectedId || null, model, geo: null, grid: null, shown: new Map(), detail: true, frame: 0, w: 0, h: 0 };

  function measureView() {
    state.w = container.clientWidth || 800;
    state.h = container.clientHeight || 600;
  }

  function apply() {
    view.setAttribute("transform", `translate(${state.x},${state.y}) scale(${state.k})`);
    if (!state.frame) state.frame = requestAnimationFrame(() => { state.frame = 0; sync(); });
  }

  function build(item) {
    switch (item.kind) {
      case "node": {
        const el = drawNode(item.node, state.selectedId, handlers, state.detail);
        el.addEventListener("click", () => handlers.onSelect && handlers.onSelect(item.node));
        el.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); handlers.onSelect && handlers.onSelect(item.node); } });
        return el;
      }
      case "edge": return drawEdge(item.edge);
      case "frame": return drawFrame(item.frame);
      default: {
        const t = item.term;
        const m = state.model;
        const endStatus = t.kind === "end" && m.workflowStatus && m.workflowStatus !== "RUNNING" ? ` st-${m.workflowStatus}` : "";
        return s("g", { class: `terminal ${t.kind}${endStatus}` }, s("circle", { cx: t.x, cy: t.y, r: TERM_R }), s("text", { x: t.x, y: t.y + 4 }, t.label));
      }
    }
  }

  /** Put in the DOM what is in view (plus half a screen around it), take out the rest. */
  function sync() {
    const detail = state.k >= LOD_TEXT;
    if (detail !== state.detail) {
      state.detail = detail;
      for (const [item, el] of state.shown) if (item.kind === "node") { el.remove(); state.shown.delete(item); }
    }
    const mx = state.w * 0.5, my = state.h * 0.5;
    const x0 = (-state.x - mx) / state.k, y0 = (-state.y - my) / state.k;
    const x1 = (state.w - state.x + mx) / state.k, y1 = (state.h - state.y + my) / state.k;
    const want = state.grid.query(x0, y0, x1, y1);
    for (const [item, el] of state.shown) if (!want.has(item)) { el.remove(); state.shown.delete(item); }
    for (const item of want) {
      if (state.shown.has(item)) continue;
      const el = build(item);
      state.shown.set(item, el);
      layers[item.layer].appendChild(el);
    }
    svg.dataset.shown = String(state.shown.size);
  }

  function draw(m) {
    state.model = m;
    state.geo = layout(m);
    for (const el of state.shown.values()) el.remove();
    state.shown = new Map();
    const grid = new Grid();
    for (const f of state.geo.frames) grid.add({ kind: "frame", layer: "frame", frame: f }, [f.x, f.y, f.x + f.w, f.y + f.h]);
    for (const e of state.geo.edges) grid.add({ kind: "edge", layer: e.label ? "label" : "edge", edge: e }, e.box);
    for (const t of state.geo.terminals) grid.add({ kind: "term", layer: "term", term: t }, [t.x - TERM_R, t.y - TERM_R, t.x + TERM_R, t.y + TERM_R]);
    for (const n of m.nodes) grid.add({ kind: "node", layer: "node", node: n }, [n.x, n.y, n.x + NODE_W, n.y + NODE_H]);
    state.grid = grid;
    svg.dataset.nodes = String(m.nodes.length);
  }

  function shownNode(id) {
    for (const [item, el] of state.shown) if (item.kind === "node" && item.node.id === id) return [item, el];
    return null;
  }

  /** Recolour in place when the shape is the same; redraw (keeping zoom and pan) if not. */
  function update(m) {
    if (m.signature !== state.model.signature) { draw(m); sync(); return; }
    const before = state.model.byId;
    for (const n of m.nodes) {
      const old = before.get(n.id);
      if (old) { n.x = old.x; n.y = old.y; }
    }
    state.model = m;
    for (const [item, el] of [...state.shown]) {
      if (item.kind === "node") {
        const n = m.byId.get(item.node.id);
        if (!n) continue;
        const changed = el.dataset.status !== n.status || el.dataset.badge !== badgeText(n) ||
          Boolean(el.querySelector(".link")) !== Boolean(n.subWorkflowId) || el.classList.contains("not-taken") !== Boolean(n.notTaken);
        item.node = n;
        if (changed) {
          const fresh = build(item);
          el.replaceWith(fresh);
          state.shown.set(item, fresh);
        }
      } else if (item.kind === "term" && item.term.kind === "end") {
        const fresh = build(item);
        el.replaceWith(fresh);
        state.shown.set(item, fresh);
      }
    }
    // the nodes not in view take the new model's data when they come into view
    for (const list of state.grid.cells.values()) for (const item of list) if (item.kind === "node") item.node = m.byId.get(item.node.id) || item.node;
  }

  function select(id) {
    state.selectedId = id;
    for (const [item, el] of state.shown) if (item.kind === "node") el.classList.toggle("selected", item.node.id === id);
  }

  /** Fit the whole diagram if it stays readable, else fit its width and show the top. */
  function fit(force = false) {
    measureView();
    const { w, h } = state;
    const gw = state.geo.width, gh = state.geo.height;
    const whole = Math.min(w / gw, h / gh, 1.2);
    if (whole >= 0.55 || force) {
      state.k = Math.max(0.02, whole);
      state.x = (w - gw * state.k) / 2;
      state.y = (h - gh * state.k) / 2;
    } else {
      state.k = Math.max(0.55, Math.min(1, w / gw));
      state.x = (w - gw * state.k) / 2;
      state.y = 0;
    }
    apply();
    sync();
  }

  function zoomAt(factor, px, py) {
    const k = Math.min(3, Math.max(0.02, state.k * factor));
    const f = k / state.k;
    state.x = px - (px - state.x) * f;
    state.y = py - (py - state.y) * f;
    state.k = k;
    apply();
  }

  function zoomBy(factor) {
    measureView();
    zoomAt(factor, state.w / 2, state.h / 2);
  }

  function center(id) {
    const n = state.model.byId.get(id);
    if (!n || n.x === undefined) return;
    measureView();
    if (state.k < 0.55) state.k = 0.8;
    state.x = state.w / 2 - (n.x + NODE_W / 2) * state.k;
    state.y = state.h / 2 - (n.y + NODE_H / 2) * state.k;
    apply();
    sync();
  }

  // wheel pans (as a page scrolls); ctrl/cmd + wheel (and pinch) zooms around the pointer
  svg.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    if (ev.ctrlKey || ev.metaKey) {
      const r = svg.getBoundingClientRect();
      zoomAt(Math.exp(-ev.deltaY * 0.0022), ev.clientX - r.left, ev.clientY - r.top);
    } else {
      state.x -= ev.deltaX;
      state.y -= ev.deltaY;
      apply();
    }
  }, { passive: false });
  let drag = null;
  svg.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0 || ev.target.closest(".node")) return;
    drag = { x: ev.clientX, y: ev.clientY, sx: state.x, sy: state.y };
    svg.setPointerCapture(ev.pointerId);
    svg.classList.add("panning");
  });
  svg.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    state.x = drag.sx + ev.clientX - drag.x;
    state.y = drag.sy + ev.clientY - drag.y;
    apply();
  });
  const endDrag = () => { drag = null; svg.classList.remove("panning"); };
  svg.addEventListener("pointerup", endDrag);
  svg.addEventListener("pointercancel", endDrag);

  // Keep the middle of the view in place when the view is resized (the task panel opens).
  const resize = new ResizeObserver(() => {
    const before = state.w;
    measureView();
    if (before && Math.abs(state.w - before) > 1) { state.x += (state.w - before) / 2; apply(); }
  });
  resize.observe(container);

  draw(model);
  if (handlers.view) {
    // the zoom and pan the user left (the page's tabs redraw the diagram)
    measureView();
    Object.assign(state, { k: handlers.view.k, x: handlers.view.x, y: handlers.view.y });
    apply();
    sync();
  } else {
    fit();
  }
  return {
    svg, update, select, fit, zoomBy, center,
    get model() { return state.model; },
    get scale() { return state.k; },
    get view() { return { k: state.k, x: state.x, y: state.y }; },
  };
}
