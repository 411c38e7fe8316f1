// The task panel of the execution view: one task (one attempt of it), its summary, input,
// output, logs, JSON, poll data and definition, and what can be done with it by hand.

import { can } from "./access.js";
import { api, get, seg } from "./api.js";
import { confirmDialog, fmtDuration, fmtTime, h, replace, statusBadge, tabs, toast } from "./dom.js";
import { executionHref } from "./router.js";
import { TASK_TERMINAL, WORKFLOW_TERMINAL } from "./statuses.js";
import { errorBanner, jsonView, kv } from "./widgets.js";

function attemptLabel(t) {
  const bits = [];
  if (t.iteration > 0) bits.push(`iteration ${t.iteration}`);
  bits.push(`attempt ${(t.retryCount || 0) + 1}`);
  return `${bits.join(", ")} · ${t.status} · seq ${t.seq}`;
}

/**
 * The panel for `sel` ({taskId} or {ref} of a task that has not run) in workflow `wf`.
 * `attempts` are every task record of that reference (retries, iterations), oldest first.
 */
export function renderTaskPanel({ wf, task, attempts, node, tab, onClose, onSelect, onTab, onChanged }) {
  const panel = h("aside", { class: "task-panel", id: "task-panel", "aria-label": "task details", dataset: { taskId: task ? task.taskId : "", ref: task ? task.referenceTaskName : (node && node.ref) || "" } });
  const ref = task ? task.referenceTaskName : node ? node.ref : "";
  const type = (task && task.workflowTask && task.workflowTask.type) || (task ? task.taskType : node ? node.type : "");
  const head = h("div", { class: "panel-head" },
    h("h2", null, ref),
    task ? statusBadge(task.status) : statusBadge(null),
    h("button", { type: "button", class: "btn btn-small btn-ghost", "aria-label": "Close", id: "close-panel", onClick: onClose }, "✕"));
  panel.appendChild(head);
  panel.appendChild(h("div", { class: "muted" }, type, node && node.name && node.name !== ref ? ` · ${node.name}` : ""));

  if (attempts && attempts.length > 1 && task) {
    const sel = h("select", { id: "attempt", "aria-label": "Attempt", onChange: (ev) => onSelect(ev.target.value) },
      attempts.map((t) => h("option", { value: t.taskId, selected: t.taskId === task.taskId }, attemptLabel(t))));
    panel.appendChild(h("label", { class: "field attempts" }, h("span", null, `Attempts and iterations (${attempts.length})`), sel));
  }

  panel.appendChild(actions({ wf, task, node, ref, onChanged }));

  if (!task) {
    panel.appendChild(h("p", { class: "muted" }, "This task has not run in this execution."));
    if (node && node.more && node.more.length) {
      panel.appendChild(h("p", null, `${node.more.length} more dynamic tasks:`));
      const list = h("ul", null, node.more.slice(0, 500).map((r) => {
        const t = (attemptsOfRef(wf, r)).at(-1);
        return h("li", null, t ? h("a", { href: executionHref(wf.workflowId, { task: t.taskId }) }, `${r} (${t.status})`) : `${r} (not run)`);
      }));
      panel.appendChild(list);
    }
    if (node && node.wt) panel.appendChild(jsonView(node.wt, { title: "Definition (workflow task)" }));
    return panel;
  }

  const t = task;
  const items = [
    { id: "summary", label: "Summary", render: () => summary(wf, t) },
    { id: "input", label: "Input", render: () => jsonView(t.inputData, { title: "Input" }) },
    { id: "output", label: "Output", render: () => jsonView(t.outputData, { title: "Output" }) },
    { id: "logs", label: "Logs", render: () => logs(t) },
    { id: "json", label: "JSON", render: () => jsonView(t, { title: "Task" }) },
    { id: "poll", label: "Poll data", render: () => pollData(t) },
    { id: "definition", label: "Definition", render: () => definition(t) },
  ];
  panel.appendChild(tabs(items, tab || "summary", onTab).el);
  return panel;
}

export function attemptsOfRef(wf, ref) {
  return (wf.tasks || []).filter((t) => t.referenceTaskName === ref);
}

function summary(wf, t) {
  const wait = t.startTime && t.scheduledTime ? t.startTime - t.scheduledTime : null;
  const run = t.startTime && t.endTime ? t.endTime - t.startTime : null;
  const sub = t.subWorkflowId || (t.outputData && t.outputData.subWorkflowId);
  return h("div", null,
    t.reasonForIncompletion ? h("div", { class: "banner banner-error", id: "task-reason" }, t.reasonForIncompletion) : null,
    kv([
      ["Task id", h("span", { class: "mono" }, t.taskId)],
      ["Reference", t.referenceTaskName],
      ["Type", t.taskType],
      ["Definition", t.taskDefName],
      ["Status", statusBadge(t.status)],
      ["Sequence", String(t.seq ?? "")],
      ["Iteration", t.iteration > 0 ? String(t.iteration) : ""],
      ["Retry count", String(t.retryCount ?? 0)],
      ["Retried task", t.retriedTaskId ? h("span", { class: "mono" }, t.retriedTaskId) : ""],
      ["Poll count", String(t.pollCount ?? 0)],
      ["Worker", t.workerId || ""],
      ["Domain", t.domain || ""],
      ["Scheduled", fmtTime(t.scheduledTime)],
      ["Started", fmtTime(t.startTime)],
      ["Ended", fmtTime(t.endTime)],
      ["Updated", fmtTime(t.updateTime)],
      ["Queue wait", wait !== null ? fmtDuration(wait) : ""],
      ["Duration", run !== null ? fmtDuration(run) : ""],
      ["Callback after", t.callbackAfterSeconds ? `${t.callbackAfterSeconds} s` : ""],
      ["Sub-workflow", sub ? h("a", { href: executionHref(sub), id: "open-sub" }, sub) : ""],
    ]));
}

function logs(t) {
  const box = h("div", null, h("p", { class: "muted" }, "Loading logs…"));
  get(`tasks/${seg(t.taskId)}/log`).then((items) => {
    const list = items || [];
    replace(box, list.length ? h("ul", { class: "logs" }, list.map((l) => h("li", null, h("time", null, fmtTime(l.createdTime)), l.log)))
      : h("p", { class: "muted" }, "No logs for this task."));
  }, (err) => replace(box, errorBanner("Cannot load the logs:", err)));
  return box;
}

function pollData(t) {
  const box = h("div", null, h("p", { class: "muted" }, "Loading poll data…"));
  get("tasks/queue/polldata", { taskType: t.taskType }).then((items) => {
    const list = items || [];
    replace(box, list.length
      ? h("table", { class: "grid" }, h("thead", null, h("tr", null, h("th", null, "Worker"), h("th", null, "Domain"), h("th", null, "Last poll"))),
        h("tbody", null, list.map((p) => h("tr", null, h("td", null, p.workerId), h("td", null, p.domain || ""), h("td", null, fmtTime(p.lastPollTime))))))
      : h("p", { class: "muted" }, `No worker has polled ${t.taskType}.`));
  }, (err) => replace(box, errorBanner("Cannot load the poll data:", err)));
  return box;
}

function definition(t) {
  const box = h("div", null, jsonView(t.workflowTask, { title: "Workflow task" }));
  if (t.workflowTask && (t.workflowTask.type || "SIMPLE") === "SIMPLE") {
    const def = h("div", null, h("p", { class: "muted" }, "Loading the task definition…"));
    box.appendChild(def);
    get(`metadata/taskdefs/${seg(t.taskDefName || t.taskType)}`).then(
      (td) => replace(def, jsonView(td, { title: "Task definition" })),
      (err) => replace(def, err.status === 404 ? h("p", { class: "muted" }, "No registered task definition.") : errorBanner("Cannot load the task definition:", err)));
  }
  return box;
}

// -- what can be done by hand ---------------------------------------------------------------

async function act(what, fn, onChanged) {
  try {
    await fn();
    toast(`${what}: done`, "ok");
    onChanged(`${what}: done`, null);
  } catch (err) {
    toast(`${what} failed: ${err.message}`, "error");
    onChanged(null, err, what);
  }
}

function actions({ wf, task, node, ref, onChanged }) {
  const box = h("div", { class: "panel-actions" });
  // Completing, failing, rerunning and skipping are for keys that may operate.
  const operate = can("operate");
  const running = wf.status === "RUNNING";
  const latest = task ? attemptsOfRef(wf, task.referenceTaskName).at(-1) : null;
  if (operate && task && running && latest && latest.taskId === task.taskId && !TASK_TERMINAL.has(task.status)) {
    box.appendChild(h("button", { type: "button", class: "btn btn-small", id: "complete-task", onClick: async () => {
      const v = await confirmDialog({
        title: `Complete ${ref}?`, message: `The task is set COMPLETED with this output, as a worker would.`,
        fields: [{ name: "output", label: "Output (JSON)", type: "textarea", json: "object", value: "{\n  \n}" }], confirmLabel: "Complete",
      });
      if (v) await act(`Complete ${ref}`, () => api("POST", "tasks", { body: { workflowInstanceId: wf.workflowId, taskId: task.taskId, status: "COMPLETED", outputData: v.output, workerId: "podium-ui" } }), onChanged);
    } }, "Complete…"));
    box.appendChild(h("button", { type: "button", class: "btn btn-small btn-danger", id: "fail-task", onClick: async () => {
      const v = await confirmDialog({
        title: `Fail ${ref}?`, message: "The task is set FAILED (retried if its definition allows).",
        fields: [{ name: "reason", label: "Reason", required: true }, { name: "terminal", label: "Terminal (no retry)", type: "checkbox", value: false }],
        confirmLabel: "Fail", danger: true,
      });
      if (v) await act(`Fail ${ref}`, () => api("POST", "tasks", { body: { workflowInstanceId: wf.workflowId, taskId: task.taskId, status: v.terminal ? "FAILED_WITH_TERMINAL_ERROR" : "FAILED", reasonForIncompletion: v.reason, workerId: "podium-ui" } }), onChanged);
    } }, "Fail…"));
  }
  if (operate && task && WORKFLOW_TERMINAL.has(wf.status)) {
    box.appendChild(h("button", { type: "button", class: "btn btn-small", id: "rerun-from-task", onClick: async () => {
      const v = await confirmDialog({
        title: `Rerun from ${ref}?`, message: "The tasks after it are dropped and it runs again with this input.",
        fields: [{ name: "input", label: "Task input (JSON)", type: "textarea", json: "object", rows: 12, value: JSON.stringify(task.inputData || {}, null, 2) }],
        confirmLabel: "Rerun",
      });
      if (v) await act(`Rerun from ${ref}`, () => api("POST", `workflow/${seg(wf.workflowId)}/rerun`, { body: { reRunFromWorkflowId: wf.workflowId, reRunFromTaskId: task.taskId, taskInput: v.input } }), onChanged);
    } }, "Rerun from here…"));
  }
  if (operate && !task && node && node.ref && running) {
    box.appendChild(h("button", { type: "button", class: "btn btn-small", id: "skip-task", onClick: async () => {
      const v = await confirmDialog({
        title: `Skip ${node.ref}?`, message: "The task is recorded SKIPPED when the workflow reaches it.",
        fields: [{ name: "output", label: "Output to record (JSON)", type: "textarea", json: "object", rows: 5, value: "{}" }], confirmLabel: "Skip",
      });
      if (v) await act(`Skip ${node.ref}`, () => api("PUT", `workflow/${seg(wf.workflowId)}/skiptask/${seg(node.ref)}`, { body: { taskOutput: v.output } }), onChanged);
    } }, "Skip…"));
  }
  const sub = task && (task.subWorkflowId || (task.outputData && task.outputData.subWorkflowId));
  if (sub) box.appendChild(h("a", { class: "btn btn-small", href: executionHref(sub), id: "panel-open-sub" }, "Open sub-workflow ↗"));
  return box;
}
