// The timeline (Gantt) of an execution: one row per task, the wait in its queue (scheduled
// to start) in grey and the run (start to end, or to now) in the status colour.

import { fmtDuration, fmtTime, h, s } from "./dom.js";

const ROW_H = 22;
const LABEL_W = 230;
const MAX_ROWS = 2000;

export function renderTimeline(wf, { onSelect, selectedTaskId, width = 1100 } = {}) {
  const tasks = [...(wf.tasks || [])].sort((a, b) => (a.seq || 0) - (b.seq || 0)).slice(0, MAX_ROWS);
  if (!tasks.length) return h("p", { class: "empty" }, "No task has been scheduled yet.");
  const now = Date.now();
  let t0 = Infinity, t1 = 0;
  for (const t of tasks) {
    const a = t.scheduledTime || t.startTime;
    if (a) t0 = Math.min(t0, a);
    t1 = Math.max(t1, t.endTime || 0, t.startTime || 0, t.scheduledTime || 0);
  }
  if (wf.startTime) t0 = Math.min(t0, wf.startTime);
  if (wf.status === "RUNNING" || wf.status === "PAUSED") t1 = Math.max(t1, now);
  if (wf.endTime) t1 = Math.max(t1, wf.endTime);
  if (!Number.isFinite(t0)) t0 = now;
  const span = Math.max(1, t1 - t0);
  const plotW = Math.max(300, width - LABEL_W - 20);
  const x = (ms) => LABEL_W + ((ms - t0) / span) * plotW;
  const height = (tasks.length + 1) * ROW_H + 10;
  const svg = s("svg", { class: "timeline", width: LABEL_W + plotW + 20, height, role: "img", "aria-label": "timeline" });

  const axis = s("g", { class: "axis" });
  for (let i = 0; i <= 5; i++) {
    const ms = t0 + (span * i) / 5;
    const xx = x(ms);
    axis.appendChild(s("line", { x1: xx, x2: xx, y1: ROW_H - 4, y2: height }));
    axis.appendChild(s("text", { x: xx, y: 12, "text-anchor": i === 0 ? "start" : i === 5 ? "end" : "middle" }, i === 0 ? fmtTime(t0).slice(11) : `+${fmtDuration(ms - t0)}`));
  }
  svg.appendChild(axis);

  tasks.forEach((t, i) => {
    const y = (i + 1) * ROW_H;
    const row = s("g", { class: "row", dataset: { taskId: t.taskId } });
    row.appendChild(s("rect", { class: "hover", x: 0, y, width: LABEL_W + plotW + 20, height: ROW_H }));
    const label = `${t.seq ?? ""} ${t.referenceTaskName}`;
    row.appendChild(s("text", { x: 6, y: y + 15, "font-weight": t.taskId === selectedTaskId ? "700" : null }, label.length > 34 ? `${label.slice(0, 33)}…` : label));
    const sched = t.scheduledTime || t.startTime || t0;
    const start = t.startTime || 0;
    const end = t.endTime || (start ? now : 0);
    if (start > sched) row.appendChild(s("rect", { class: "wait", x: x(sched), y: y + 6, width: Math.max(1, x(start) - x(sched)), height: ROW_H - 12 }));
    const barStart = start || sched;
    const barEnd = end || (t.status === "SCHEDULED" ? now : barStart);
    const bar = s("rect", { class: `bar st-${t.status}`, x: x(barStart), y: y + 4, width: Math.max(2, x(barEnd) - x(barStart)), height: ROW_H - 8, rx: 2 });
    bar.appendChild(s("title", null, `${t.referenceTaskName} ${t.status}\nscheduled ${fmtTime(t.scheduledTime)}\nstart ${fmtTime(t.startTime)}\nend ${fmtTime(t.endTime)}\n${start && t.endTime ? fmtDuration(t.endTime - start) : ""}`));
    row.appendChild(bar);
    row.addEventListener("click", () => onSelect && onSelect(t));
    svg.appendChild(row);
  });
  const wrap = h("div", { class: "timeline-wrap", id: "timeline" }, svg);
  if ((wf.tasks || []).length > MAX_ROWS) wrap.appendChild(h("p", { class: "muted pad-s" }, `The first ${MAX_ROWS} tasks are shown.`));
  return wrap;
}
