// Executions search (filters, server-side paging and sorting, counts per status, bulk
// actions) and task search. The filters live in the address (#/executions?name=...), so a
// search is a link. A search that fails says so, with the server's message.

import { allowed, can } from "../access.js";
import { api, get } from "../api.js";
import { confirmDialog, fmtDuration, fmtTime, h, replace, statusBadge, table, toMs } from "../dom.js";
import { buildHash, executionHref, setHashSilently } from "../router.js";
import { TASK_STATUSES, WORKFLOW_STATUSES } from "../statuses.js";
import { errorBanner, multiSelect } from "../widgets.js";

const LOOKBACKS = [["", "Any time"], ["1h", "Last hour"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["30d", "Last 30 days"]];
const LOOKBACK_MS = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const PAGE_SIZES = [10, 25, 50, 100, 250];

const list = (v) => (v ? String(v).split(",").map((x) => x.trim()).filter(Boolean) : []);
const quote = (v) => `'${String(v).replaceAll("'", "")}'`;

/** Conductor's query language from the filters (workflowType IN (...) AND status IN (...)). */
export function buildQuery(f, { forTasks = false } = {}) {
  const conds = [];
  if (f.names && f.names.length) conds.push(`${forTasks ? "taskType" : "workflowType"} IN (${f.names.join(",")})`);
  if (f.statuses && f.statuses.length) conds.push(`status IN (${f.statuses.join(",")})`);
  const [from, to] = timeRange(f);
  if (from) conds.push(`startTime>${from - 1}`);
  if (to) conds.push(`startTime<${to + 1}`);
  if (f.id) conds.push(`workflowId=${quote(f.id)}`);
  if (f.corr) conds.push(`correlationId=${quote(f.corr)}`);
  return conds.join(" AND ");
}

function timeRange(f) {
  if (f.lookback && LOOKBACK_MS[f.lookback]) return [Date.now() - LOOKBACK_MS[f.lookback], 0];
  return [f.from ? toMs(f.from) : 0, f.to ? toMs(f.to) : 0];
}

function readFilters(query) {
  return {
    names: list(query.name),
    statuses: list(query.status),
    from: query.from || "",
    to: query.to || "",
    lookback: query.lookback || "",
    id: query.id || "",
    corr: query.corr || "",
    text: query.q || "",
    sort: query.sort || "startTime:DESC",
    page: Math.max(0, parseInt(query.page || "0", 10) || 0),
    size: PAGE_SIZES.includes(parseInt(query.size, 10)) ? parseInt(query.size, 10) : 25,
  };
}

function filtersToQuery(f) {
  return {
    name: f.names, status: f.statuses, from: f.from, to: f.to, lookback: f.lookback, id: f.id,
    corr: f.corr, q: f.text, sort: f.sort === "startTime:DESC" ? "" : f.sort,
    page: f.page || "", size: f.size === 25 ? "" : f.size,
  };
}

function parseSort(sort) {
  const [field, dir] = (sort || "startTime:DESC").split(":");
  return { field, desc: (dir || "ASC").toUpperCase() === "DESC" };
}

function input(name, label, value, props = {}) {
  const el = h("input", { name, value, ...props });
  return { el, field: h("label", { class: "field" }, h("span", null, label), el) };
}

function select(name, label, options, value) {
  const el = h("select", { name }, options.map(([v, l]) => h("option", { value: v, selected: v === value }, l)));
  return { el, field: h("label", { class: "field" }, h("span", null, label), el) };
}

function pager(f, total, shown, onPage, onSize) {
  const first = total === 0 ? 0 : f.page * f.size + 1;
  const last = f.page * f.size + shown;
  return h("div", { class: "pager" },
    h("span", { class: "count", dataset: { total: String(total) } }, total === 0 ? "No results" : `${first}–${last} of ${total.toLocaleString()}`),
    h("button", { type: "button", class: "btn btn-small", disabled: f.page === 0, onClick: () => onPage(f.page - 1) }, "‹ Prev"),
    h("button", { type: "button", class: "btn btn-small", disabled: last >= total, onClick: () => onPage(f.page + 1) }, "Next ›"),
    h("label", { class: "inline" }, "Rows ",
      h("select", { onChange: (ev) => onSize(parseInt(ev.target.value, 10)) },
        PAGE_SIZES.map((n) => h("option", { value: n, selected: n === f.size }, String(n))))));
}

// -- executions -----------------------------------------------------------------------------

const BULK = [
  { id: "pause", label: "Pause", method: "PUT", path: "workflow/bulk/pause" },
  { id: "resume", label: "Resume", method: "PUT", path: "workflow/bulk/resume" },
  { id: "retry", label: "Retry", method: "POST", path: "workflow/bulk/retry" },
  { id: "restart", label: "Restart", method: "POST", path: "workflow/bulk/restart", latest: true },
  { id: "terminate", label: "Terminate", method: "POST", path: "workflow/bulk/terminate", reason: true, danger: true },
];

export async function executionsPage(root, params, query) {
  const f = readFilters(query);
  const selected = new Set();
  let countsOn = false;
  const results = new Map(); // workflowId -> {ok, text}
  let rows = [];
  let disposed = false;

  const names = multiSelect({ name: "names", label: "Workflow name", options: f.names, selected: f.names });
  const statuses = multiSelect({ name: "statuses", label: "Status", options: WORKFLOW_STATUSES, selected: f.statuses });
  const id = input("workflowId", "Workflow id", f.id, { placeholder: "exact id" });
  const corr = input("correlationId", "Correlation id", f.corr, { placeholder: "exact correlation id" });
  const text = input("freeText", "Free text", f.text, { placeholder: "in input and output" });
  const lookback = select("lookback", "Started", LOOKBACKS, f.lookback);
  const from = input("from", "From", f.from, { type: "datetime-local", step: 1 });
  const to = input("to", "To", f.to, { type: "datetime-local", step: 1 });
  const syncRange = () => { from.el.disabled = to.el.disabled = Boolean(lookback.el.value); };
  lookback.el.addEventListener("change", syncRange);
  syncRange();

  get("metadata/workflow/names").then((all) => names.setOptions(all || []), () => {});

  const form = h("form", { class: "filters card", id: "search-form" },
    names.el, statuses.el, lookback.field, from.field, to.field, id.field, corr.field, text.field,
    h("div", { class: "filter-actions" },
      h("button", { type: "submit", class: "btn btn-primary", id: "search-btn" }, "Search"),
      h("button", { type: "button", class: "btn", onClick: () => { location.hash = "#/executions"; } }, "Reset")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    Object.assign(f, {
      names: names.values, statuses: statuses.values, id: id.el.value.trim(), corr: corr.el.value.trim(),
      text: text.el.value.trim(), lookback: lookback.el.value, from: from.el.value, to: to.el.value, page: 0,
    });
    run();
  });

  const counts = h("div", { class: "status-counts", id: "status-counts" });
  const bulkBar = h("div", { class: "bulkbar", id: "bulkbar" });
  const out = h("div", { class: "results", id: "results" });
  replace(root,
    h("div", { class: "page-head" }, h("h1", null, "Workflow executions"),
      allowed("operate", h("a", { class: "btn", href: "#/run", id: "run-link" }, "Run a workflow"))),
    form, counts, bulkBar, out);

  function paintBulk() {
    const n = selected.size;
    replace(bulkBar, n === 0 ? h("span", { class: "muted" }, "Select rows for bulk actions.") : [
      h("strong", null, `${n} selected`),
      !can("operate") ? h("span", { class: "muted" }, "This key may not change workflows.") : BULK.map((b) => h("button", { type: "button", class: b.danger ? "btn btn-small btn-danger" : "btn btn-small", dataset: { bulk: b.id }, onClick: () => bulk(b) }, b.label)),
      h("button", { type: "button", class: "btn btn-small btn-ghost", onClick: () => { selected.clear(); paintRows(); } }, "Clear"),
    ]);
  }

  async function bulk(action) {
    const ids = [...selected];
    const fields = [];
    if (action.reason) fields.push({ name: "reason", label: "Reason", placeholder: "why (stored on each workflow)" });
    if (action.latest) fields.push({ name: "latest", label: "Use the latest definitions", type: "checkbox", value: false });
    const answer = await confirmDialog({
      title: `${action.label} ${ids.length} workflow${ids.length === 1 ? "" : "s"}?`,
      message: ids.join(", "),
      fields,
      confirmLabel: action.label,
      danger: action.danger,
    });
    if (!answer) return;
    const q = {};
    if (action.reason && answer.reason) q.reason = answer.reason;
    if (action.latest && answer.latest) q.useLatestDefinitions = "true";
    try {
      const resp = await api(action.method, action.path, { query: q, body: ids });
      const failed = (resp && resp.bulkErrorResults) || {};
      for (const wid of ids) {
        results.set(wid, wid in failed ? { ok: false, text: `${action.label} failed: ${failed[wid]}` } : { ok: true, text: `${action.label}: done` });
      }
    } catch (err) {
      for (const wid of ids) results.set(wid, { ok: false, text: `${action.label} failed: ${err.message}` });
    }
    selected.clear();
    await run(false);
  }

  function paintRows(total) {
    const sort = parseSort(f.sort);
    const allBox = h("input", { type: "checkbox", "aria-label": "Select all rows", checked: rows.length > 0 && rows.every((r) => selected.has(r.workflowId)),
      onChange: (ev) => { rows.forEach((r) => (ev.target.checked ? selected.add(r.workflowId) : selected.delete(r.workflowId))); paintRows(total); } });
    const columns = [
      { label: "", header: allBox, class: "sel", render: (r) => h("input", { type: "checkbox", "aria-label": `Select ${r.workflowId}`, dataset: { select: r.workflowId }, checked: selected.has(r.workflowId),
        onChange: (ev) => { if (ev.target.checked) selected.add(r.workflowId); else selected.delete(r.workflowId); paintBulk(); } }) },
      { label: "Start time", sort: "startTime", render: (r) => fmtTime(r.startTime) },
      { label: "Workflow id", sort: "workflowId", class: "mono", render: (r) => h("a", { href: executionHref(r.workflowId), dataset: { wid: r.workflowId } }, r.workflowId) },
      { label: "Name", sort: "workflowType", render: (r) => r.workflowType },
      { label: "Ver", sort: "version", class: "num", render: (r) => r.version },
      { label: "Correlation id", sort: "correlationId", render: (r) => r.correlationId || "" },
      { label: "Status", sort: "status", render: (r) => statusBadge(r.status) },
      { label: "End time", sort: "endTime", render: (r) => fmtTime(r.endTime) },
      { label: "Duration", class: "num", render: (r) => (r.executionTime ? fmtDuration(r.executionTime) : "") },
      { label: "Reason", class: "reason", render: (r) => r.reasonForIncompletion || "" },
    ];
    if (results.size) {
      columns.push({ label: "Bulk result", render: (r) => {
        const res = results.get(r.workflowId);
        return res ? h("span", { class: res.ok ? "ok-text" : "error-text", dataset: { result: res.ok ? "ok" : "error" } }, res.text) : "";
      } });
    }
    const grid = table(columns, rows, {
      sort, class: "results-table",
      onSort: (field) => {
        const cur = parseSort(f.sort);
        f.sort = `${field}:${cur.field === field && cur.desc ? "ASC" : "DESC"}`;
        f.page = 0;
        run();
      },
      rowProps: (r) => ({ dataset: { workflowId: r.workflowId, status: r.status } }),
    });
    if (total !== undefined) out.dataset.total = String(total);
    replace(out,
      pager(f, Number(out.dataset.total || 0), rows.length, (p) => { f.page = p; run(); }, (n) => { f.size = n; f.page = 0; run(); }),
      rows.length ? grid : h("p", { class: "empty", id: "no-results" }, "No workflow matches these filters."));
    paintBulk();
  }

  async function paintCounts() {
    const base = { ...f, statuses: [] };
    const q = buildQuery(base);
    replace(counts, h("span", { class: "muted" }, "Counting…"));
    const chips = await Promise.all(WORKFLOW_STATUSES.map(async (st) => {
      try {
        const r = await get("workflow/search", { query: [q, `status IN (${st})`].filter(Boolean).join(" AND "), freeText: f.text || "*", size: 0 });
        return [st, r.totalHits];
      } catch { return [st, null]; }
    }));
    if (disposed) return;
    replace(counts, chips.map(([st, n]) => h("button", {
      type: "button", class: `chip st-${st}${f.statuses.includes(st) ? " chip-on" : ""}`, dataset: { count: st },
      title: `Show only ${st}`, onClick: () => { f.statuses = [st]; statuses.set([st]); f.page = 0; run(); },
    }, `${st} `, h("b", null, n === null ? "?" : n.toLocaleString()))));
  }

  async function run(clearResults = true) {
    if (clearResults) results.clear();
    setHashSilently(buildHash(["executions"], filtersToQuery(f)));
    out.setAttribute("aria-busy", "true");
    const started = performance.now();
    try {
      const resp = await get("workflow/search", {
        start: f.page * f.size, size: f.size, sort: f.sort, freeText: f.text || "*", query: buildQuery(f),
      });
      if (disposed) return;
      rows = resp.results || [];
      const visible = new Set(rows.map((r) => r.workflowId));
      for (const wid of [...selected]) if (!visible.has(wid)) selected.delete(wid);
      paintRows(resp.totalHits || 0);
      out.dataset.ms = String(Math.round(performance.now() - started));
      // For benchmarks/ui_render.py: when the first results were built, and painted.
      if (!window.__podiumSearchRendered) {
        window.__podiumSearchRendered = performance.now();
        window.__podiumTimings = { searchMs: performance.now() - started, totalHits: resp.totalHits };
        requestAnimationFrame(() => requestAnimationFrame(() => { window.__podiumSearchPainted = performance.now(); }));
      }
    } catch (err) {
      if (disposed) return;
      rows = [];
      replace(out, errorBanner("The search cannot answer:", err));
      paintBulk();
    } finally {
      out.removeAttribute("aria-busy");
    }
    // One search per status: cheap for a few names (each has its own index), a scan of the
    // whole window otherwise, so then only on demand.
    if (f.names.length || countsOn) paintCounts();
    else replace(counts, h("button", { type: "button", class: "btn btn-small", id: "count-statuses", onClick: () => { countsOn = true; paintCounts(); } }, "Count by status"));
  }

  await run(true);
  return { dispose() { disposed = true; } };
}

// -- tasks ----------------------------------------------------------------------------------

export async function tasksPage(root, params, query) {
  const f = readFilters(query);
  let disposed = false;
  const types = multiSelect({ name: "types", label: "Task type", options: f.names, selected: f.names });
  const statuses = multiSelect({ name: "statuses", label: "Status", options: TASK_STATUSES, selected: f.statuses });
  const wid = input("workflowId", "Workflow id", f.id);
  const text = input("freeText", "Free text", f.text, { placeholder: "in input and output" });
  const lookback = select("lookback", "Scheduled", LOOKBACKS, f.lookback);
  get("metadata/taskdefs").then((defs) => types.setOptions((defs || []).map((d) => d.name)), () => {});

  const form = h("form", { class: "filters card", id: "task-search-form" }, types.el, statuses.el, lookback.field, wid.field, text.field,
    h("div", { class: "filter-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Search")));
  const out = h("div", { class: "results", id: "task-results" });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    Object.assign(f, { names: types.values, statuses: statuses.values, id: wid.el.value.trim(), text: text.el.value.trim(), lookback: lookback.el.value, page: 0 });
    run();
  });
  replace(root, h("div", { class: "page-head" }, h("h1", null, "Task executions")), form, out);

  async function run() {
    const q = filtersToQuery(f);
    setHashSilently(buildHash(["tasks"], q));
    try {
      const resp = await get("tasks/search-v2", {
        start: f.page * f.size, size: f.size, sort: f.sort.replace(/^startTime/, "scheduledTime"),
        freeText: f.text || "*", query: buildQuery(f, { forTasks: true }),
      });
      if (disposed) return;
      const rows = resp.results || [];
      const total = resp.totalHits || 0;
      const grid = table([
        { label: "Scheduled", render: (t) => fmtTime(t.scheduledTime) },
        { label: "Task", render: (t) => h("a", { href: executionHref(t.workflowInstanceId, { task: t.taskId }) }, t.referenceTaskName) },
        { label: "Type", render: (t) => t.taskType },
        { label: "Status", render: (t) => statusBadge(t.status) },
        { label: "Workflow", class: "mono", render: (t) => h("a", { href: executionHref(t.workflowInstanceId) }, `${t.workflowType || ""} ${t.workflowInstanceId}`) },
        { label: "Worker", render: (t) => t.workerId || "" },
        { label: "Retry", class: "num", render: (t) => t.retryCount },
        { label: "Polls", class: "num", render: (t) => t.pollCount },
        { label: "Duration", class: "num", render: (t) => (t.endTime && t.startTime ? fmtDuration(t.endTime - t.startTime) : "") },
        { label: "Reason", class: "reason", render: (t) => t.reasonForIncompletion || "" },
      ], rows, { class: "results-table" });
      replace(out, pager(f, total, rows.length, (p) => { f.page = p; run(); }, (n) => { f.size = n; f.page = 0; run(); }),
        rows.length ? grid : h("p", { class: "empty" }, "No task matches these filters."));
    } catch (err) {
      if (!disposed) replace(out, errorBanner("The task search cannot answer:", err));
    }
  }
  await run();
  return { dispose() { disposed = true; } };
}
