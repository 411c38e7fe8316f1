// The workflow diagram in SVG, with zoom and pan, drawing only what is in view.

import { s } from "./dom.js";
import { layout, NODE_H, NODE_W, TERM_R } from "./graph.js";

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
