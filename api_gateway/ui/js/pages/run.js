// Run a workflow: name, version, input (prefilled from the definition's inputParameters),
// correlation id, task-to-domain and priority; then straight to the live execution. The
// recent runs are kept in this browser (localStorage).

import { api, get, seg } from "../api.js";
import { fmtTime, h, replace } from "../dom.js";
import { executionHref } from "../router.js";
import { errorBanner } from "../widgets.js";

const RECENT_KEY = "podium.recentRuns";
const RECENT_MAX = 20;

function recentRuns() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

function remember(run) {
  const list = [run, ...recentRuns().filter((r) => r.workflowId !== run.workflowId)].slice(0, RECENT_MAX);
  localStorage.setItem(RECENT_KEY, JSON.stringify(list));
}

function inputTemplate(def) {
  const params = (def && def.inputParameters) || [];
  return JSON.stringify(Object.fromEntries(params.map((p) => [p, ""])), null, 2);
}

export async function runPage(root, params, query) {
  const versions = (await get("metadata/workflow/names-and-versions")) || {};
  const names = Object.keys(versions).sort();
  const nameSel = h("select", { id: "run-name", name: "name" }, h("option", { value: "" }, "Choose a workflow"), names.map((n) => h("option", { value: n }, n)));
  const versionSel = h("select", { id: "run-version", name: "version" });
  const input = h("textarea", { id: "run-input", name: "input", rows: 10, spellcheck: "false" });
  const corr = h("input", { id: "run-correlation", name: "correlationId" });
  const domains = h("textarea", { id: "run-domains", name: "taskToDomain", rows: 3, spellcheck: "false", placeholder: '{"my_task": "my_domain"}' });
  const priority = h("input", { id: "run-priority", name: "priority", type: "number", min: 0, max: 99, value: "0" });
  const errors = h("div", { id: "run-errors", role: "alert" });
  input.value = "{}";

  async function pickName(name, version) {
    const list = ((versions[name] || []).map((v) => v.version)).sort((a, b) => b - a);
    replace(versionSel, h("option", { value: "" }, "latest"), list.map((v) => h("option", { value: v }, `v${v}`)));
    versionSel.value = version ? String(version) : "";
    await prefill();
  }
  async function prefill() {
    if (!nameSel.value) return;
    try {
      const def = await get(`metadata/workflow/${seg(nameSel.value)}`, { version: versionSel.value || undefined });
      input.value = inputTemplate(def);
    } catch (err) {
      replace(errors, errorBanner("Cannot load the definition:", err));
    }
  }
  nameSel.addEventListener("change", () => pickName(nameSel.value));
  versionSel.addEventListener("change", prefill);

  const form = h("form", { class: "card", id: "run-form" },
    h("div", { class: "form-grid" },
      h("label", { class: "field" }, h("span", null, "Workflow"), nameSel),
      h("label", { class: "field" }, h("span", null, "Version"), versionSel),
      h("label", { class: "field" }, h("span", null, "Correlation id"), corr),
      h("label", { class: "field" }, h("span", null, "Priority (0-99)"), priority)),
    h("label", { class: "field" }, h("span", null, "Input (JSON)"), input),
    h("label", { class: "field" }, h("span", null, "Task to domain (JSON, optional)"), domains),
    errors,
    h("div", { class: "form-actions" },
      h("button", { type: "submit", class: "btn btn-primary", id: "run-submit" }, "Run workflow"),
      h("button", { type: "button", class: "btn", onClick: prefill }, "Reset input from the definition")));

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    replace(errors);
    if (!nameSel.value) { replace(errors, h("div", { class: "banner banner-error" }, "Choose a workflow.")); return; }
    let inputValue, domainValue;
    try {
      inputValue = input.value.trim() ? JSON.parse(input.value) : {};
      domainValue = domains.value.trim() ? JSON.parse(domains.value) : undefined;
    } catch (err) {
      replace(errors, errorBanner("This is not valid JSON:", err));
      return;
    }
    const body = {
      name: nameSel.value,
      input: inputValue,
      correlationId: corr.value.trim() || undefined,
      taskToDomain: domainValue,
      priority: parseInt(priority.value || "0", 10) || 0,
    };
    if (versionSel.value) body.version = parseInt(versionSel.value, 10);
    try {
      const id = await api("POST", "workflow", { body });
      const workflowId = String(id).trim();
      remember({ workflowId, name: body.name, version: body.version || null, correlationId: body.correlationId || null, time: Date.now() });
      location.hash = executionHref(workflowId);
    } catch (err) {
      replace(errors, errorBanner("The workflow did not start:", err));
    }
  });

  const recent = recentRuns();
  replace(root,
    h("div", { class: "page-head" }, h("h1", null, "Run a workflow")),
    form,
    h("div", { class: "recent card", id: "recent-runs" },
      h("h2", null, "Recent runs in this browser"),
      recent.length ? h("ul", null, recent.map((r) => h("li", null,
        h("a", { href: executionHref(r.workflowId) }, r.workflowId), ` ${r.name}${r.version ? ` v${r.version}` : ""}`,
        r.correlationId ? ` · ${r.correlationId}` : "", h("span", { class: "muted" }, ` · ${fmtTime(r.time)}`))))
        : h("p", { class: "muted" }, "None yet.")));

  if (query.name && versions[query.name]) {
    nameSel.value = query.name;
    await pickName(query.name, query.version);
  }
  return null;
}
