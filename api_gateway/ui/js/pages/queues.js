// Queues and cluster: every task queue with its ready and in-flight counts (per shard), the
// workers that polled it last, and the service replicas this gateway can reach.

import { get } from "../api.js";
import { fmtDuration, fmtTime, h, replace } from "../dom.js";
import { buildHash } from "../router.js";
import { errorBanner } from "../widgets.js";

const REFRESH_MS = 5000;

export async function queuesPage(root) {
  let timer = null;
  let disposed = false;
  const filter = h("input", { type: "search", placeholder: "Filter queues", id: "queue-filter", "aria-label": "Filter queues" });
  const hideEmpty = h("input", { type: "checkbox", id: "hide-empty" });
  const clusterBox = h("div", { class: "health-grid", id: "cluster" });
  const out = h("div", { id: "queues" });
  const stamp = h("span", { class: "muted", id: "queues-updated" });
  let last = null;

  replace(root,
    h("div", { class: "page-head" }, h("h1", null, "Queues and cluster"), stamp,
      h("label", { class: "inline" }, hideEmpty, "hide empty queues"), filter,
      h("button", { type: "button", class: "btn", onClick: () => refresh() }, "Refresh")),
    h("h2", null, "Service replicas"), clusterBox,
    h("h2", null, "Task queues"), out);
  filter.addEventListener("input", () => last && paint(last));
  hideEmpty.addEventListener("change", () => last && paint(last));

  function paint({ stats, polls }) {
    const byQueue = new Map();
    for (const p of polls || []) {
      const key = p.domain ? `${p.domain}:${p.queueName}` : p.queueName;
      if (!byQueue.has(key)) byQueue.set(key, []);
      byQueue.get(key).push(p);
    }
    const needle = filter.value.trim().toLowerCase();
    const now = Date.now();
    const rows = (stats.queues || [])
      .map((q) => ({ ...q, workers: (byQueue.get(q.queue) || []).sort((a, b) => (b.lastPollTime || 0) - (a.lastPollTime || 0)) }))
      .filter((r) => !needle || r.queue.toLowerCase().includes(needle))
      .filter((r) => !hideEmpty.checked || r.ready || r.delayed || r.leased || r.inProgress)
      .sort((a, b) => (b.ready + (b.inProgress || 0)) - (a.ready + (a.inProgress || 0)) || a.queue.localeCompare(b.queue));
    if (!rows.length) { replace(out, h("p", { class: "empty" }, "No task queue yet (a queue appears when its first task is scheduled).")); return; }
    const system = (name) => name.startsWith("_");
    const num = (v, key) => h("td", { class: "num", dataset: { [key]: v ?? "" } }, v === undefined ? "—" : v.toLocaleString());
    replace(out,
      stats.complete ? null : h("div", { class: "banner banner-warn" }, "Too many pending tasks to count them all: some in-progress counts are left out."),
      h("table", { class: "grid", id: "queue-table" },
        h("thead", null, h("tr", null,
          h("th", null, "Queue"), h("th", { class: "num", title: "messages due now" }, "Ready"),
          h("th", { class: "num", title: "messages due later (delays, timers)" }, "Delayed"),
          h("th", { class: "num", title: "tasks a worker is running (IN_PROGRESS)" }, "In flight"),
          h("th", { class: "num", title: "messages popped and not yet acknowledged" }, "Leased"),
          h("th", null, "Per shard (ready / delayed / leased)"), h("th", null, "Workers (last poll)"))),
        h("tbody", null, rows.map((r) => h("tr", { dataset: { queue: r.queue } },
          h("td", null, system(r.queue) ? h("span", { title: "an internal queue" }, r.queue) : h("a", { href: buildHash(["tasks"], { name: r.queue.split(":").pop() }) }, r.queue)),
          num(r.ready, "ready"), num(r.delayed, "delayed"), num(r.inProgress, "inflight"), num(r.leased, "leased"),
          h("td", { class: "mono" }, Object.entries(r.shards).map(([s, v]) => `${s}: ${v.ready}/${v.delayed}/${v.leased}`).join("  ")),
          h("td", null, r.workers.length ? h("ul", { class: "workers" }, r.workers.slice(0, 8).map((w) => h("li", null,
            h("span", { class: `dot ${now - (w.lastPollTime || 0) < 60_000 ? "up" : ""}` }), w.workerId,
            h("span", { class: "muted" }, ` · ${fmtDuration(now - (w.lastPollTime || 0))} ago`))))
            : h("span", { class: "muted" }, system(r.queue) ? "" : "no poll yet")))))));
  }

  function paintCluster(info) {
    const gw = info.gateway || {};
    replace(clusterBox,
      h("div", { class: "card", dataset: { service: "gateway" } }, h("strong", null, h("span", { class: "dot up" }), "gateway (this one)"),
        h("div", { class: "muted" }, `v${gw.version} · up ${fmtDuration(gw.uptimeMs)} · store ${gw.store}${gw.authEnabled ? " · auth on" : ""}`)),
      (info.replicas || []).map((r) => h("div", { class: "card", dataset: { service: r.service, reachable: r.reachable ? "1" : "0" } },
        h("strong", null, h("span", { class: `dot ${r.reachable ? "up" : "down"}` }), r.service),
        h("div", { class: "mono" }, r.address),
        h("div", { class: "muted" }, r.reachable ? `reachable · ${r.latencyMs} ms` : `unreachable: ${r.error || ""}`))));
  }

  async function refresh() {
    clearTimeout(timer);
    const [queues, cluster] = await Promise.allSettled([
      Promise.all([get("admin/queue-stats"), get("tasks/queue/polldata/all")]),
      get("admin/cluster"),
    ]);
    if (disposed) return;
    if (queues.status === "fulfilled") { last = { stats: queues.value[0], polls: queues.value[1] }; paint(last); }
    else replace(out, errorBanner("Cannot read the queues:", queues.reason));
    if (cluster.status === "fulfilled") paintCluster(cluster.value);
    else replace(clusterBox, errorBanner("Cannot tell the cluster's health:", cluster.reason));
    stamp.textContent = `updated ${fmtTime(Date.now()).slice(11, 19)} · every ${REFRESH_MS / 1000} s`;
    timer = setTimeout(refresh, REFRESH_MS);
  }
  await refresh();
  return { dispose() { disposed = true; clearTimeout(timer); } };
}
