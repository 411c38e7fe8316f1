// Failures: the workflows that failed or timed out in the last hour / day / week, grouped by
// workflow and reason (ids and numbers in reasons folded, so that one cause is one group),
// with counts and links to the executions.

import { get } from "../api.js";
import { fmtTime, h, replace, statusBadge, toMs } from "../dom.js";
import { buildHash, executionHref, setHashSilently } from "../router.js";
import { errorBanner } from "../widgets.js";

const WINDOWS = [["1h", "Last hour", 3600e3], ["24h", "Last 24 hours", 86400e3], ["7d", "Last 7 days", 7 * 86400e3]];
const MAX_ROWS = 5000;
const EXAMPLES = 5;

/** A reason with its ids and numbers folded: "Task 3f2a... failed after 3 tries" -> "Task # failed after # tries". */
export function foldReason(reason) {
  return String(reason || "(no reason given)")
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, "<id>")
    .replace(/\b\d+(\.\d+)?\b/g, "#")
    .slice(0, 300);
}

export async function failuresPage(root, params, query) {
  const win = WINDOWS.find(([id]) => id === query.window) || WINDOWS[1];
  const terminated = query.terminated === "1";
  const statuses = ["FAILED", "TIMED_OUT", ...(terminated ? ["TERMINATED"] : [])];
  const picker = h("div", { class: "form-actions" },
    WINDOWS.map(([id, label]) => h("a", { class: id === win[0] ? "btn btn-primary" : "btn", href: buildHash(["failures"], { window: id, terminated: terminated ? 1 : "" }), dataset: { window: id } }, label)),
    h("label", { class: "inline" }, h("input", { type: "checkbox", id: "include-terminated", checked: terminated,
      onChange: (ev) => { location.hash = buildHash(["failures"], { window: win[0], terminated: ev.target.checked ? 1 : "" }); } }), "include terminated"));
  const out = h("div", { id: "failures" }, h("p", { class: "muted" }, "Loading…"));
  replace(root, h("div", { class: "page-head" }, h("h1", null, "Failures")), picker, out);
  setHashSilently(buildHash(["failures"], { window: win[0], terminated: terminated ? 1 : "" }));

  const since = Date.now() - win[2];
  let resp;
  try {
    // Started within the window or before it (a long run may fail late): filtered on endTime.
    const startBound = win[0] === "7d" ? ` AND startTime>${since}` : "";
    resp = await get("workflow/search", { query: `status IN (${statuses.join(",")})${startBound}`, sort: "endTime:DESC", size: MAX_ROWS, freeText: "*" });
  } catch (err) {
    replace(out, errorBanner("The search cannot answer:", err));
    return null;
  }
  const recent = (resp.results || []).filter((w) => toMs(w.endTime || w.updateTime || w.startTime) >= since);
  const groups = new Map();
  for (const w of recent) {
    const key = `${w.workflowType}\u0000${foldReason(w.reasonForIncompletion)}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { name: w.workflowType, reason: foldReason(w.reasonForIncompletion), items: [], statuses: new Map() }));
    g.items.push(w);
    g.statuses.set(w.status, (g.statuses.get(w.status) || 0) + 1);
  }
  const sorted = [...groups.values()].sort((a, b) => b.items.length - a.items.length);
  const byName = new Map();
  for (const g of sorted) byName.set(g.name, (byName.get(g.name) || 0) + g.items.length);

  if (!sorted.length) {
    replace(out, h("p", { class: "empty", id: "no-failures" }, `No workflow ${statuses.join(", ").toLowerCase()} in the ${win[1].toLowerCase()}.`));
    return null;
  }
  replace(out,
    h("p", { class: "muted", id: "failure-summary" },
      `${recent.length.toLocaleString()} workflow${recent.length === 1 ? "" : "s"} in ${sorted.length} group${sorted.length === 1 ? "" : "s"}, ${byName.size} workflow name${byName.size === 1 ? "" : "s"}`,
      resp.totalHits > (resp.results || []).length ? ` (the newest ${MAX_ROWS} of ${resp.totalHits} read)` : ""),
    h("table", { class: "grid", id: "failure-table" },
      h("thead", null, h("tr", null, ["Count", "Workflow", "Reason", "Statuses", "Latest", "Examples"].map((c, i) => h("th", { class: i === 0 ? "num" : "" }, c)))),
      h("tbody", null, sorted.map((g) => h("tr", { dataset: { workflow: g.name, count: g.items.length } },
        h("td", { class: "num" }, h("b", null, String(g.items.length))),
        h("td", null, h("a", { href: buildHash(["executions"], { name: g.name, status: statuses, lookback: win[0] === "1h" ? "" : win[0] }) }, g.name),
          h("div", { class: "muted" }, `${byName.get(g.name)} in all for this workflow`)),
        h("td", { class: "reason", title: g.items[0].reasonForIncompletion || "" }, g.reason),
        h("td", null, [...g.statuses].map(([st, n]) => h("span", null, statusBadge(st), ` ${n} `))),
        h("td", null, fmtTime(g.items[0].endTime)),
        h("td", { class: "mono" }, g.items.slice(0, EXAMPLES).map((w) => h("div", null, h("a", { href: executionHref(w.workflowId) }, w.workflowId.slice(0, 13) + "…"))),
          g.items.length > EXAMPLES ? h("div", { class: "muted" }, `+${g.items.length - EXAMPLES} more`) : null))))));
  return null;
}
