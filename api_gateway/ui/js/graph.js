// The workflow diagram's model, built from a definition (and an execution's tasks), and its
// recursive block layout in linear time (the SVG renderer is diagram.js).
//
// Conductor definitions are structured (sequences, forks, switch branches, loops, dynamic
// forks), so the layout needs no general graph algorithm: every block is measured bottom-up
// (width, height) and placed top-down, its entry centred over it; the edges are drawn from
// the exits of one block to the entry of the next. A thousand tasks lay out in a few ms.

export const NODE_W = 196;
export const NODE_H = 46;
const V_GAP = 34; // between blocks of a sequence
const H_GAP = 24; // between branches
const LABEL_H = 16; // room for branch labels
const PAD = 14; // inside a loop's frame
const LANE = 26; // the loop-back edge's lane
const EMPTY_W = 60; // an empty branch
export const TERM_R = 15; // start/end circles
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
