// The execution view: header and actions, the diagram, the task list, the timeline, the
// workflow's summary, input/output, variables and JSON, and the task panel. It follows a
// running workflow by polling and stops when the workflow ends.
// Deep link: #/execution/<id>?tab=<tab>&task=<taskId>|ref=<ref>&ptab=<panel tab>

import { allowed } from "../access.js";
import { api, get, seg } from "../api.js";
import { traceLink } from "../config.js";
import { confirmDialog, fmtDuration, fmtTime, h, replace, statusBadge, toast } from "../dom.js";
import { renderDiagram } from "../diagram.js";
import { buildModel } from "../graph.js";
import { buildHash, executionHref, setHashSilently } from "../router.js";
import { LEGEND, WORKFLOW_TERMINAL } from "../statuses.js";
import { attemptsOfRef, renderTaskPanel } from "../taskpanel.js";
import { renderTimeline } from "../timeline.js";
import { errorBanner, jsonView, kv } from "../widgets.js";

const POLL_MS = 1000;
const PAUSED_POLL_MS = 3000;
const FULL_EVERY_MS = 10_000;
const TABS = [
  ["diagram", "Diagram"], ["tasks", "Task list"], ["timeline", "Timeline"], ["summary", "Summary"],
  ["io", "Input / output"], ["variables", "Variables"], ["json", "JSON"],
];

export function legend() {
  return h("div", { class: "legend", id: "legend" }, LEGEND.map(([st, label]) =>
    h("span", null, h("span", { class: `swatch st-${st}` }), label)));
}

export async function executionPage(root, params, query) {
  const id = params[0];
  const st = {
    wf: null, tab: TABS.some(([t]) => t === query.tab) ? query.tab : "diagram",
    taskId: query.task || null, ref: query.ref || null, ptab: query.ptab || "summary",
    timer: null, disposed: false, diagram: null, view: null, model: null, stamp: "", lastError: null, fullAt: 0,
  };
  const t0 = performance.now();

  const head = h("div", { class: "exec-head", id: "exec-head" });
  const message = h("div", { id: "action-result", role: "status" });
  const tabBar = h("div", { class: "tabs", role: "tablist" }, TABS.map(([t, label]) =>
    h("button", { type: "button", class: "tab", role: "tab", dataset: { tab: t }, onClick: () => selectTab(t) }, label)));
  const main = h("div", { class: "exec-main", id: "exec-main" });
  const side = h("div", { id: "panel-slot" });
  const body = h("div", { class: "exec-body" }, main, side);
  replace(root, head, message, tabBar, body);

  function syncHash() {
    const q = { tab: st.tab === "diagram" ? "" : st.tab };
    if (st.taskId) q.task = st.taskId; else if (st.ref) q.ref = st.ref;
    if ((st.taskId || st.ref) && st.ptab !== "summary") q.ptab = st.ptab;
    setHashSilently(buildHash(["execution", id], q));
  }

  // -- loading and following -----------------------------------------------------------------

  async function load() {
    const wf = await get(`workflow/${seg(id)}`, { includeTasks: true });
    st.fullAt = Date.now();
    return wf;
  }

  function stampOf(wf) {
    const tasks = wf.tasks || [];
    let last = 0;
    for (const t of tasks) last = Math.max(last, t.updateTime || 0);
    return `${wf.status}|${wf.updateTime}|${tasks.length}|${last}|${wf.endTime}`;
  }

  function schedule() {
    clearTimeout(st.timer);
    if (st.disposed || !st.wf) return;
    if (WORKFLOW_TERMINAL.has(st.wf.status)) { paintLive(); return; }
    st.timer = setTimeout(poll, st.wf.status === "PAUSED" ? PAUSED_POLL_MS : POLL_MS);
    paintLive();
  }

  async function poll() {
    if (st.disposed) return;
    try {
      // The workflow's head first (every change of a task changes its updateTime): the tasks,
      // which may be megabytes, only when something changed (or every FULL_EVERY_MS anyway).
      const head = await get(`workflow/${seg(id)}`, { includeTasks: false });
      const stale = head.updateTime !== st.wf.updateTime || head.status !== st.wf.status ||
        Date.now() - st.fullAt > FULL_EVERY_MS;
      const wf = stale ? await load() : null;
      if (st.disposed) return;
      st.lastError = null;
      if (wf) apply(wf);
    } catch (err) {
      st.lastError = err;
      paintLive();
    }
    schedule();
  }

  function paintLive() {
    const el = head.querySelector("#live");
    if (!el) return;
    const live = st.wf && !WORKFLOW_TERMINAL.has(st.wf.status);
    el.className = live && !st.lastError ? "live" : "live stopped";
    el.textContent = st.lastError ? `updates failing: ${st.lastError.message}` : live ? "live" : "finished";
    el.dataset.live = live ? "1" : "0";
  }

  function apply(wf) {
    const stamp = stampOf(wf);
    const changed = stamp !== st.stamp;
    st.wf = wf;
    st.stamp = stamp;
    if (!changed) return;
    st.model = buildModel(wf.workflowDefinition || { tasks: [] }, wf.tasks, wf.status);
    paintHead();
    paintTab(true);
    paintPanel();
  }

  // -- header and actions --------------------------------------------------------------------

  function paintHead() {
    const wf = st.wf;
    const trace = wf.traceId ? traceLink(wf.traceId) : "";
    const def = wf.workflowDefinition || {};
    const duration = wf.startTime ? (wf.endTime || Date.now()) - wf.startTime : null;
    replace(head,
      h("div", { class: "exec-title" },
        h("h1", { id: "wf-name" }, wf.workflowName || def.name || "workflow"),
        h("span", { class: "muted" }, `v${wf.workflowVersion ?? def.version ?? ""}`),
        h("span", { id: "wf-status", dataset: { status: wf.status } }, statusBadge(wf.status)),
        h("span", { id: "live", class: "live" }),
        h("span", { class: "spacer" }),
        actionButtons(wf)),
      wf.reasonForIncompletion ? h("div", { class: "banner banner-error", id: "wf-reason" }, wf.reasonForIncompletion) : null,
      h("div", { class: "exec-meta" },
        h("span", null, "Id ", h("b", { class: "mono", id: "wf-id" }, wf.workflowId)),
        wf.correlationId ? h("span", null, "Correlation ", h("b", { id: "wf-corr" }, wf.correlationId)) : null,
        h("span", null, "Started ", h("b", null, fmtTime(wf.startTime || wf.createTime))),
        wf.endTime ? h("span", null, "Ended ", h("b", null, fmtTime(wf.endTime))) : null,
        duration !== null ? h("span", null, "Duration ", h("b", null, fmtDuration(duration))) : null,
        wf.parentWorkflowId ? h("span", null, "Parent ", h("a", { id: "parent-link", href: executionHref(wf.parentWorkflowId, wf.parentWorkflowTaskId ? { task: wf.parentWorkflowTaskId } : {}) }, wf.parentWorkflowId)) : null,
        h("span", null, "Definition ", h("a", { href: buildHash(["definition", wf.workflowName, wf.workflowVersion]) }, `${wf.workflowName} v${wf.workflowVersion}`)),
        wf.traceId ? h("span", null, "Trace ", trace
          ? h("a", { id: "trace-link", href: trace, target: "_blank", rel: "noopener noreferrer" }, wf.traceId)
          : h("b", { class: "mono", id: "trace-id" }, wf.traceId)) : null));
    paintLive();
  }

  function actionButtons(wf) {
    const status = wf.status;
    const terminal = WORKFLOW_TERMINAL.has(status);
    const b = (idName, label, enabled, fn, danger) => h("button", { type: "button", class: danger ? "btn btn-small btn-danger" : "btn btn-small", id: idName, disabled: !enabled, onClick: fn }, label);
    // Changing the workflow is for keys that may operate; anyone may refresh.
    const op = (...args) => allowed("operate", b(...args));
    return h("div", { class: "actions" },
      b("act-refresh", "Refresh", true, () => refresh()),
      op("act-pause", "Pause", status === "RUNNING", () => action("Pause", { title: "Pause this workflow?", message: "No new task is scheduled until it is resumed." }, () => api("PUT", `workflow/${seg(id)}/pause`))),
      op("act-resume", "Resume", status === "PAUSED", () => action("Resume", { title: "Resume this workflow?" }, () => api("PUT", `workflow/${seg(id)}/resume`))),
      op("act-retry", "Retry", terminal && status !== "COMPLETED", () => action("Retry", {
        title: "Retry this workflow?", message: "Its last failed task is scheduled again.",
        fields: [{ name: "resumeSub", label: "Resume sub-workflow tasks", type: "checkbox", value: false }],
      }, (v) => api("POST", `workflow/${seg(id)}/retry`, { query: { resumeSubworkflowTasks: v.resumeSub ? "true" : "" } }))),
      op("act-restart", "Restart", terminal, () => action("Restart", {
        title: "Restart this workflow?", message: "It runs again from the beginning with the same input.",
        fields: [{ name: "latest", label: "Use the latest definition", type: "checkbox", value: false }],
      }, (v) => api("POST", `workflow/${seg(id)}/restart`, { query: { useLatestDefinitions: v.latest ? "true" : "" } }))),
      op("act-rerun", "Rerun…", terminal, () => action("Rerun", {
        title: "Rerun this workflow?", message: "From the start, with this input (pick a task in the diagram to rerun from it).",
        fields: [
          { name: "input", label: "Workflow input (JSON)", type: "textarea", json: "object", rows: 10, value: JSON.stringify(wf.input || {}, null, 2) },
          { name: "corr", label: "Correlation id", value: wf.correlationId || "" },
        ],
      }, (v) => api("POST", `workflow/${seg(id)}/rerun`, { body: { reRunFromWorkflowId: id, workflowInput: v.input, correlationId: v.corr || undefined } }))),
      op("act-terminate", "Terminate", !terminal, () => action("Terminate", {
        title: "Terminate this workflow?", message: "Its running tasks are canceled.", danger: true,
        fields: [{ name: "reason", label: "Reason", placeholder: "why (stored on the workflow)" }],
      }, (v) => api("DELETE", `workflow/${seg(id)}`, { query: { reason: v.reason } })), true));
  }

  async function action(what, dialog, call) {
    const v = await confirmDialog({ confirmLabel: what, ...dialog });
    if (!v) return;
    try {
      await call(v);
      showResult(`${what}: done`, null);
    } catch (err) {
      showResult(null, err, what);
    }
  }

  function showResult(ok, err, what) {
    if (err) {
      replace(message, errorBanner(`${what || "The action"} failed:`, err));
      toast(`${what || "The action"} failed: ${err.message}`, "error");
    } else {
      replace(message, h("div", { class: "banner banner-info", dataset: { ok: "1" } }, ok));
      toast(ok, "ok");
    }
    refresh();
  }

  async function refresh() {
    try {
      apply(await load());
      st.lastError = null;
    } catch (err) {
      st.lastError = err;
    }
    schedule();
  }

  // -- tabs ----------------------------------------------------------------------------------

  function selectTab(t) {
    st.tab = t;
    syncHash();
    paintTab(false);
  }

  function selectedTask() {
    if (!st.wf) return null;
    if (st.taskId) return (st.wf.tasks || []).find((t) => t.taskId === st.taskId) || null;
    return null;
  }

  function selectNode(n) {
    if (n.taskId) { st.taskId = n.taskId; st.ref = null; }
    else { st.taskId = null; st.ref = n.id; }
    syncHash();
    if (st.diagram) st.diagram.select(n.id);
    paintPanel();
    if (st.tab !== "diagram") paintTab(false);
  }

  function selectTask(t) {
    st.taskId = t.taskId;
    st.ref = null;
    syncHash();
    if (st.diagram) st.diagram.select(nodeIdOfTask(t));
    paintPanel();
    if (st.tab === "tasks" || st.tab === "timeline") paintTab(false);
  }

  function nodeIdOfTask(t) {
    if (!t) return null;
    const ref = t.referenceTaskName;
    if (st.model.byId.has(ref)) return ref;
    const stripped = t.iteration > 0 ? ref.slice(0, ref.lastIndexOf("__")) : ref;
    return st.model.byId.has(stripped) ? stripped : null;
  }

  function paintTab(live) {
    for (const btn of tabBar.children) {
      btn.classList.toggle("active", btn.dataset.tab === st.tab);
      btn.setAttribute("aria-selected", btn.dataset.tab === st.tab ? "true" : "false");
    }
    const wf = st.wf;
    if (!wf) return;
    if (st.tab === "diagram") {
      if (live && st.diagram) { st.diagram.update(st.model); return; }
      const wrap = h("div", { class: "diagram-wrap", id: "diagram" });
      const tools = h("div", { class: "diagram-tools" },
        h("button", { type: "button", class: "btn btn-small", title: "Zoom in", onClick: () => st.diagram.zoomBy(1.25) }, "+"),
        h("button", { type: "button", class: "btn btn-small", title: "Zoom out", onClick: () => st.diagram.zoomBy(0.8) }, "−"),
        h("button", { type: "button", class: "btn btn-small", title: "Fit", onClick: () => st.diagram.fit(true) }, "Fit"));
      wrap.appendChild(tools);
      replace(main, legend(), wrap);
      const selected = st.taskId ? nodeIdOfTask(selectedTask()) : st.ref;
      st.diagram = renderDiagram(wrap, st.model, {
        selectedId: selected,
        view: st.view,
        onSelect: selectNode,
        onOpen: (sub) => { location.hash = executionHref(sub); },
      });
      if (selected && !st.view) st.diagram.center(selected);
      return;
    }
    if (st.diagram) st.view = st.diagram.view;
    st.diagram = null;
    if (st.tab === "tasks") {
      const prev = main.querySelector(".tasklist-wrap");
      const scroll = prev ? prev.scrollTop : 0;
      const wrap = h("div", { class: "tasklist-wrap" }, taskTable(wf));
      replace(main, wrap);
      wrap.scrollTop = scroll;
    } else if (st.tab === "timeline") {
      const prev = main.querySelector(".timeline-wrap");
      const scroll = prev ? [prev.scrollTop, prev.scrollLeft] : [0, 0];
      replace(main, renderTimeline(wf, { onSelect: selectTask, selectedTaskId: st.taskId, width: Math.max(700, main.clientWidth - 4) }));
      const now = main.querySelector(".timeline-wrap");
      if (now) [now.scrollTop, now.scrollLeft] = scroll;
    } else if (st.tab === "summary") {
      replace(main, h("div", { class: "card" }, workflowSummary(wf)));
    } else if (st.tab === "io") {
      replace(main, h("div", { class: "two-col" }, jsonView(wf.input, { title: "Input" }), jsonView(wf.output, { title: "Output" })));
    } else if (st.tab === "variables") {
      replace(main, jsonView(wf.variables || {}, { title: "Variables" }));
    } else if (st.tab === "json") {
      if (live && main.querySelector(".json-box")) return; // keep the reader's place
      replace(main, jsonView(wf, { title: "Workflow" }));
    }
  }

  function taskTable(wf) {
    const tasks = [...(wf.tasks || [])].sort((a, b) => (a.seq || 0) - (b.seq || 0));
    if (!tasks.length) return h("p", { class: "empty" }, "No task has been scheduled yet.");
    const cols = ["Seq", "Reference", "Type", "Status", "Scheduled", "Started", "Ended", "Duration", "Retry", "Polls", "Worker"];
    const rows = tasks.map((t) => h("tr", {
      class: ["clickable", t.taskId === st.taskId ? "selected" : ""], dataset: { taskId: t.taskId, ref: t.referenceTaskName, status: t.status },
      onClick: () => selectTask(t),
    },
    h("td", { class: "num" }, String(t.seq ?? "")),
    h("td", null, t.referenceTaskName),
    h("td", null, t.taskType),
    h("td", null, statusBadge(t.status)),
    h("td", null, fmtTime(t.scheduledTime)),
    h("td", null, fmtTime(t.startTime)),
    h("td", null, fmtTime(t.endTime)),
    h("td", { class: "num" }, t.startTime && t.endTime ? fmtDuration(t.endTime - t.startTime) : ""),
    h("td", { class: "num" }, String(t.retryCount ?? 0)),
    h("td", { class: "num" }, String(t.pollCount ?? 0)),
    h("td", null, t.workerId || "")));
    return h("table", { class: "grid", id: "task-table" }, h("thead", null, h("tr", null, cols.map((c) => h("th", null, c)))), h("tbody", null, rows));
  }

  function workflowSummary(wf) {
    return kv([
      ["Workflow id", h("span", { class: "mono" }, wf.workflowId)],
      ["Name", wf.workflowName],
      ["Version", String(wf.workflowVersion ?? "")],
      ["Status", statusBadge(wf.status)],
      ["Reason", wf.reasonForIncompletion || ""],
      ["Failed tasks", (wf.failedReferenceTaskNames || []).join(", ")],
      ["Correlation id", wf.correlationId || ""],
      ["Priority", String(wf.priority ?? 0)],
      ["Created", fmtTime(wf.createTime)],
      ["Started", fmtTime(wf.startTime)],
      ["Updated", fmtTime(wf.updateTime)],
      ["Ended", fmtTime(wf.endTime)],
      ["Created by", wf.createdBy || ""],
      ["Idempotency key", wf.idempotencyKey || ""],
      ["Parent workflow", wf.parentWorkflowId ? h("a", { href: executionHref(wf.parentWorkflowId) }, wf.parentWorkflowId) : ""],
      ["Re-run from", wf.reRunFromWorkflowId || ""],
      ["Trace id", wf.traceId || ""],
      ["Task to domain", wf.taskToDomain && Object.keys(wf.taskToDomain).length ? JSON.stringify(wf.taskToDomain) : ""],
      ["Tasks", String((wf.tasks || []).length)],
    ]);
  }

  // -- the task panel ------------------------------------------------------------------------

  function paintPanel() {
    const wf = st.wf;
    if (!wf || (!st.taskId && !st.ref)) { replace(side); return; }
    const task = selectedTask();
    let node = null;
    if (task) node = st.model.byId.get(nodeIdOfTask(task)) || null;
    else if (st.ref) node = st.model.byId.get(st.ref) || null;
    if (!task && !node) { replace(side); return; }
    const attempts = task ? attemptsForPanel(task) : [];
    replace(side, renderTaskPanel({
      wf, task, attempts, node, tab: st.ptab,
      onClose: () => { st.taskId = null; st.ref = null; syncHash(); if (st.diagram) st.diagram.select(null); replace(side); },
      onSelect: (taskId) => { st.taskId = taskId; syncHash(); paintPanel(); },
      onTab: (t) => { st.ptab = t; syncHash(); },
      onChanged: (ok, err, what) => showResult(ok, err, what),
    }));
  }

  function attemptsForPanel(task) {
    const nodeId = nodeIdOfTask(task);
    if (nodeId && nodeId !== task.referenceTaskName) {
      // a loop body task: every iteration's attempts
      return (st.wf.tasks || []).filter((t) => nodeIdOfTask(t) === nodeId).sort((a, b) => (a.seq || 0) - (b.seq || 0));
    }
    return attemptsOfRef(st.wf, task.referenceTaskName).sort((a, b) => (a.seq || 0) - (b.seq || 0));
  }

  // -- first render --------------------------------------------------------------------------

  try {
    const wf = await load();
    const fetched = performance.now();
    apply(wf);
    const done = performance.now();
    root.dataset.rendered = String(Math.round(done - t0));
    // For benchmarks/ui_render.py: when the view was built, and painted (the next frame).
    window.__podiumTimings = { fetchMs: fetched - t0, renderMs: done - fetched, tasks: (wf.tasks || []).length };
    window.__podiumExecutionRendered = done;
    requestAnimationFrame(() => requestAnimationFrame(() => { window.__podiumExecutionPainted = performance.now(); }));
  } catch (err) {
    replace(root, errorBanner(`Cannot load workflow ${id}:`, err),
      h("p", null, h("a", { href: "#/executions" }, "Back to the search")));
    return null;
  }
  schedule();
  return {
    dispose() {
      st.disposed = true;
      clearTimeout(st.timer);
    },
  };
}
