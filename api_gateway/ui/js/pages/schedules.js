// Schedules: every workflow schedule (its cron, zone, workflow, state and next times) with
// pause and resume for operators, and the recent runs of all of them or of one, each linked
// to the workflow it started.

import { allowed } from "../access.js";
import { api, get, seg } from "../api.js";
import { fmtTime, h, replace, table, toast } from "../dom.js";
import { buildHash, executionHref, setHashSilently } from "../router.js";
import { errorBanner } from "../widgets.js";

const RUNS = 50;
const REFRESH_MS = 5000;

function runState(state) {
  const css = { EXECUTED: "COMPLETED", FAILED: "FAILED", POLLED: "RUNNING" }[state] || "";
  return h("span", { class: `badge st-${css}`, dataset: { state } }, state || "?");
}

export async function schedulesPage(root, params, query) {
  const only = query.schedule || "";
  let timer = null;
  let disposed = false;
  const list = h("div", { id: "schedules" }, h("p", { class: "muted" }, "Loading…"));
  const runs = h("div", { id: "schedule-runs" });
  const stamp = h("span", { class: "muted", id: "schedules-updated" });
  replace(root,
    h("div", { class: "page-head" }, h("h1", null, "Schedules"), stamp,
      h("button", { type: "button", class: "btn", onClick: () => refresh() }, "Refresh")),
    list,
    h("div", { class: "section-head" },
      h("h2", null, only ? `Recent runs of ${only}` : "Recent runs"),
      only ? h("a", { class: "btn btn-small", href: buildHash(["schedules"]), id: "all-runs" }, "All schedules") : null),
    runs);
  setHashSilently(buildHash(["schedules"], { schedule: only }));

  async function setPaused(name, paused) {
    try {
      await api("PUT", `scheduler/schedules/${seg(name)}/${paused ? "pause" : "resume"}`);
      toast(`${name} ${paused ? "paused" : "resumed"}`);
    } catch (err) {
      toast(`Cannot ${paused ? "pause" : "resume"} ${name}: ${err.message}`, "error");
    }
    refresh();
  }

  async function nextTimes(s) {
    if (s.paused) return [];
    try {
      return await get("scheduler/nextFewSchedules", {
        cronExpression: s.cronExpression, zoneId: s.zoneId || "UTC", limit: 2,
        scheduleStartTime: s.scheduleStartTime || "", scheduleEndTime: s.scheduleEndTime || "",
      });
    } catch {
      return [];
    }
  }

  async function paintList(schedules) {
    if (!schedules.length) {
      replace(list, h("p", { class: "empty" }, "No schedule yet: save one with POST /api/scheduler/schedules (the SDK's SchedulerClient)."));
      return;
    }
    const next = await Promise.all(schedules.map(nextTimes));
    const rows = schedules.map((s, i) => ({ ...s, next: next[i] }));
    replace(list, table([
      { label: "Name", render: (s) => h("a", { href: buildHash(["schedules"], { schedule: s.name }) }, s.name) },
      { label: "Cron", render: (s) => h("code", null, s.cronExpression) },
      { label: "Zone", key: "zoneId" },
      { label: "Workflow", render: (s) => {
        const req = s.startWorkflowRequest || {};
        return h("a", { href: buildHash(["definition", req.name, req.version || ""]) }, req.version ? `${req.name} v${req.version}` : req.name);
      } },
      { label: "State", render: (s) => h("span", { class: `badge st-${s.paused ? "PAUSED" : "RUNNING"}`, dataset: { paused: s.paused ? "1" : "0" }, title: s.pausedReason || "" }, s.paused ? "paused" : "active") },
      { label: "Catch-up", render: (s) => (s.runCatchupScheduleInstances ? "yes" : "no") },
      { label: "Next runs", render: (s) => (s.next.length ? s.next.map((t) => fmtTime(t)).join(", ") : "—") },
      { label: "", render: (s) => allowed("operate", h("button", {
        type: "button", class: "btn btn-small", dataset: { toggle: s.name },
        onClick: () => setPaused(s.name, !s.paused) }, s.paused ? "Resume" : "Pause")) },
    ], rows, { class: "schedules", rowProps: (s) => ({ dataset: { schedule: s.name } }) }));
  }

  function paintRuns(found) {
    const results = found.results || [];
    if (!results.length) {
      replace(runs, h("p", { class: "empty", id: "no-runs" }, "No run in the last 7 days."));
      return;
    }
    replace(runs,
      h("p", { class: "muted" }, `${found.totalHits} runs in the last 7 days; the newest ${results.length}:`),
      table([
        { label: "Scheduled", render: (r) => fmtTime(r.scheduledTime) },
        { label: "Started", render: (r) => fmtTime(r.executionTime) },
        { label: "Schedule", render: (r) => h("a", { href: buildHash(["schedules"], { schedule: r.scheduleName }) }, r.scheduleName) },
        { label: "State", render: (r) => runState(r.state) },
        { label: "Workflow", render: (r) => (r.workflowId ? h("a", { class: "mono", href: executionHref(r.workflowId) }, r.workflowId) : "") },
        { label: "Reason", key: "reason" },
      ], results, { class: "schedule-runs", rowProps: (r) => ({ dataset: { run: `${r.scheduleName}@${r.scheduledTime}` } }) }));
  }

  async function refresh() {
    clearTimeout(timer);
    const q = only ? `scheduleName IN (${only})` : "";
    const [schedules, found] = await Promise.allSettled([
      get("scheduler/schedules"),
      get("scheduler/search/executions", { query: q, size: RUNS }),
    ]);
    if (disposed) return;
    if (schedules.status === "fulfilled") await paintList(schedules.value || []);
    else replace(list, errorBanner("Cannot read the schedules:", schedules.reason));
    if (found.status === "fulfilled") paintRuns(found.value || {});
    else replace(runs, errorBanner("Cannot search the runs:", found.reason));
    if (disposed) return;
    stamp.textContent = `updated ${fmtTime(Date.now()).slice(11, 19)} · every ${REFRESH_MS / 1000} s`;
    timer = setTimeout(refresh, REFRESH_MS);
  }
  await refresh();
  return { dispose() { disposed = true; clearTimeout(timer); } };
}
