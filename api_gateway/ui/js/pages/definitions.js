// Definitions: workflow definitions (list, diagram, JSON, editor with the server's
// validation, differences between versions), task definitions and event handlers.

import { allowed } from "../access.js";
import { api, ApiError, get, seg } from "../api.js";
import { debounce, fmtTime, h, replace, table, toast } from "../dom.js";
import { canonicalJson, renderDiff } from "../diff.js";
import { renderDiagram } from "../diagram.js";
import { buildModel } from "../graph.js";
import { buildHash, setHashSilently } from "../router.js";
import { errorBanner, jsonView } from "../widgets.js";

const NEW_WORKFLOW = {
  name: "my_workflow",
  description: "What this workflow does",
  version: 1,
  schemaVersion: 2,
  ownerEmail: "team@example.com",
  inputParameters: ["item"],
  tasks: [
    { name: "my_task", taskReferenceName: "my_task", type: "SIMPLE", inputParameters: { item: "${workflow.input.item}" } },
  ],
  outputParameters: { result: "${my_task.output.result}" },
  timeoutPolicy: "ALERT_ONLY",
  timeoutSeconds: 0,
};

const NEW_TASK_DEF = {
  name: "my_task",
  description: "What this task does",
  retryCount: 3,
  retryLogic: "FIXED",
  retryDelaySeconds: 10,
  timeoutSeconds: 300,
  timeoutPolicy: "TIME_OUT_WF",
  responseTimeoutSeconds: 60,
  concurrentExecLimit: 0,
  rateLimitPerFrequency: 0,
  rateLimitFrequencyInSeconds: 1,
  ownerEmail: "team@example.com",
  inputKeys: [],
  outputKeys: [],
};

const NEW_EVENT_HANDLER = {
  name: "my_handler",
  event: "conductor:my_workflow:my_task",
  condition: "true",
  active: true,
  actions: [{ action: "start_workflow", start_workflow: { name: "my_workflow", input: {} } }],
};

/** The editor's answer to a failed save: the server's message and validation errors. */
function saveError(err) {
  return errorBanner("The server refused this definition:", err);
}

function parseEditor(textarea, errors) {
  try {
    const value = JSON.parse(textarea.value);
    if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error("the definition must be a JSON object");
    return value;
  } catch (err) {
    replace(errors, errorBanner("This is not valid JSON:", err));
    return null;
  }
}

function diagramBox(def, small = false) {
  const wrap = h("div", { class: small ? "diagram-wrap small" : "diagram-wrap", id: "def-diagram" });
  const box = h("div", null, wrap);
  queueMicrotask(() => {
    if (!wrap.isConnected) return;
    const ctl = renderDiagram(wrap, buildModel(def, [], null), {});
    wrap.appendChild(h("div", { class: "diagram-tools" },
      h("button", { type: "button", class: "btn btn-small", onClick: () => ctl.zoomBy(1.25) }, "+"),
      h("button", { type: "button", class: "btn btn-small", onClick: () => ctl.zoomBy(0.8) }, "−"),
      h("button", { type: "button", class: "btn btn-small", onClick: () => ctl.fit(true) }, "Fit")));
  });
  return box;
}

// -- workflow definitions -------------------------------------------------------------------

export async function definitionsPage(root, params) {
  if (params[0] === "new") return workflowEditorPage(root, null);
  const [latest, versions] = await Promise.all([get("metadata/workflow/latest-versions"), get("metadata/workflow/names-and-versions")]);
  const rows = (latest || []).sort((a, b) => a.name.localeCompare(b.name));
  const filter = h("input", { type: "search", placeholder: "Filter by name", id: "def-filter", "aria-label": "Filter by name" });
  const out = h("div");
  function paint() {
    const needle = filter.value.trim().toLowerCase();
    const shown = rows.filter((d) => !needle || d.name.toLowerCase().includes(needle));
    replace(out, shown.length ? table([
      { label: "Name", render: (d) => h("a", { href: buildHash(["definition", d.name, d.version]), dataset: { def: d.name } }, d.name) },
      { label: "Latest", class: "num", render: (d) => String(d.version) },
      { label: "Versions", render: (d) => ((versions && versions[d.name]) || []).map((v) => v.version).sort((a, b) => a - b)
        .map((v) => h("a", { href: buildHash(["definition", d.name, v]), class: "pad-s" }, `v${v}`)) },
      { label: "Description", render: (d) => d.description || "" },
      { label: "Tasks", class: "num", render: (d) => String((d.tasks || []).length) },
      { label: "Owner", render: (d) => d.ownerEmail || "" },
      { label: "Updated", render: (d) => fmtTime(d.updateTime || d.createTime) },
      { label: "", render: (d) => allowed("operate", h("a", { class: "btn btn-small", href: buildHash(["run"], { name: d.name, version: d.version }) }, "Run")) },
    ], shown, { class: "results-table" }) : h("p", { class: "empty" }, rows.length ? "No definition matches." : "No workflow definition yet."));
  }
  filter.addEventListener("input", paint);
  replace(root,
    h("div", { class: "page-head" }, h("h1", null, "Workflow definitions"), filter,
      allowed("operate", h("a", { class: "btn btn-primary", href: "#/definitions/new", id: "new-def" }, "New definition"))),
    out);
  paint();
  return null;
}

export async function definitionPage(root, params, query) {
  const [name, versionText] = params;
  const versionsAll = await get(`metadata/workflow/${seg(name)}/versions`).catch(() => []);
  const versions = (versionsAll || []).map((v) => (typeof v === "number" ? v : v.version)).sort((a, b) => a - b);
  const version = versionText ? parseInt(versionText, 10) : versions.at(-1);
  const def = await get(`metadata/workflow/${seg(name)}`, { version });
  const tab = query.tab || "diagram";
  const header = h("div", { class: "page-head" },
    h("h1", null, def.name),
    h("label", { class: "inline" }, "Version ",
      h("select", { id: "def-version", onChange: (ev) => { location.hash = buildHash(["definition", name, ev.target.value], { tab }); } },
        versions.map((v) => h("option", { value: v, selected: v === def.version }, `v${v}`)))),
    allowed("operate", h("a", { class: "btn", href: buildHash(["run"], { name, version: def.version }), id: "def-run" }, "Run")),
    h("a", { class: "btn", href: buildHash(["executions"], { name }) }, "Executions"));
  const tabsBar = h("div", { class: "tabs", role: "tablist" });
  const body = h("div");
  replace(root, header, def.description ? h("p", { class: "muted" }, def.description) : null, tabsBar, body);
  const items = [["diagram", "Diagram"], ["json", "JSON"], ["edit", "Edit"], ["diff", "Versions diff"]];
  let current = null;
  let dispose = null;

  function select(t) {
    if (dispose) { dispose(); dispose = null; }
    current = t;
    setHashSilently(buildHash(["definition", name, def.version], { tab: t === "diagram" ? "" : t }));
    for (const b of tabsBar.children) b.classList.toggle("active", b.dataset.tab === t);
    if (t === "diagram") replace(body, diagramBox(def));
    else if (t === "json") replace(body, jsonView(def, { title: `${def.name} v${def.version}` }));
    else if (t === "edit") dispose = editor(body, def, false);
    else if (t === "diff") replace(body, diffView(name, versions, def.version, query));
  }
  for (const [t, label] of items) tabsBar.appendChild(h("button", { type: "button", class: "tab", dataset: { tab: t }, onClick: () => select(t) }, label));
  select(items.some(([t]) => t === tab) ? tab : "diagram");
  return { dispose() { if (dispose) dispose(); } };
}

function diffView(name, versions, version, query) {
  const box = h("div");
  if (versions.length < 2) return h("p", { class: "empty" }, "There is only one version of this definition.");
  const a = h("select", { id: "diff-a" }, versions.map((v) => h("option", { value: v }, `v${v}`)));
  const b = h("select", { id: "diff-b" }, versions.map((v) => h("option", { value: v }, `v${v}`)));
  const prev = versions[Math.max(0, versions.indexOf(version) - 1)];
  a.value = String(query.a || (prev === version ? versions[0] : prev));
  b.value = String(query.b || version);
  const out = h("div", { id: "diff-out" });
  async function run() {
    try {
      const [da, db] = await Promise.all([get(`metadata/workflow/${seg(name)}`, { version: a.value }), get(`metadata/workflow/${seg(name)}`, { version: b.value })]);
      for (const d of [da, db]) { delete d.createTime; delete d.updateTime; }
      replace(out, renderDiff(canonicalJson(da), canonicalJson(db)));
    } catch (err) {
      replace(out, errorBanner("Cannot load the versions:", err));
    }
  }
  a.addEventListener("change", run);
  b.addEventListener("change", run);
  replace(box, h("div", { class: "form-actions" }, h("label", { class: "inline" }, "From ", a), h("label", { class: "inline" }, "to ", b)), out);
  run();
  return box;
}

async function workflowEditorPage(root) {
  replace(root, h("div", { class: "page-head" }, h("h1", null, "New workflow definition")));
  const body = h("div");
  root.appendChild(body);
  const dispose = editor(body, NEW_WORKFLOW, true);
  return { dispose };
}

/** The JSON editor with a live diagram, validation and save through the server. */
function editor(body, def, isNew) {
  const clean = { ...def };
  delete clean.createTime;
  delete clean.updateTime;
  const text = h("textarea", { class: "editor", id: "def-editor", spellcheck: "false", "aria-label": "Definition JSON" });
  text.value = JSON.stringify(clean, null, 2);
  const errors = h("div", { id: "editor-errors", role: "alert" });
  const preview = h("div", { id: "editor-preview" });
  const newVersion = h("input", { type: "checkbox", id: "as-new-version" });
  const renderPreview = () => {
    try {
      const value = JSON.parse(text.value);
      replace(preview, diagramBox(value, true));
    } catch {
      /* keep the last good preview while the user types */
    }
  };
  const paintPreview = debounce(renderPreview, 300);
  text.addEventListener("input", paintPreview);
  text.addEventListener("keydown", (ev) => {
    if (ev.key === "Tab") { ev.preventDefault(); text.setRangeText("  ", text.selectionStart, text.selectionEnd, "end"); }
  });

  async function validate() {
    replace(errors);
    const value = parseEditor(text, errors);
    if (!value) return;
    try {
      await api("POST", "metadata/workflow/validate", { body: value });
      replace(errors, h("div", { class: "banner banner-info", dataset: { ok: "1" } }, "The server accepts this definition."));
    } catch (err) {
      replace(errors, saveError(err));
    }
  }

  async function save() {
    replace(errors);
    const value = parseEditor(text, errors);
    if (!value) return;
    try {
      if (!isNew && newVersion.checked) {
        const versions = await get(`metadata/workflow/${seg(value.name)}/versions`).catch(() => []);
        const top = Math.max(0, ...(versions || []).map((v) => (typeof v === "number" ? v : v.version)));
        value.version = top + 1;
        await api("POST", "metadata/workflow", { body: value });
      } else {
        await api("POST", "metadata/workflow", { body: value, query: isNew ? {} : { overwrite: "true" } });
      }
      toast(`Saved ${value.name} v${value.version ?? 1}`, "ok");
      location.hash = buildHash(["definition", value.name, value.version ?? 1]);
    } catch (err) {
      replace(errors, err instanceof ApiError && err.status === 409
        ? errorBanner("A definition of this name and version exists already (edit it, or change the version):", err)
        : saveError(err));
    }
  }

  replace(body,
    h("div", { class: "form-actions" },
      h("button", { type: "button", class: "btn", id: "validate-def", onClick: validate }, "Validate"),
      allowed("operate", h("button", { type: "button", class: "btn btn-primary", id: "save-def", onClick: save }, isNew ? "Create" : "Save")),
      isNew ? null : allowed("operate", h("label", { class: "inline" }, newVersion, "as a new version")),
      h("span", { class: "muted" }, isNew ? "" : "Save overwrites this version; running workflows keep the definition they started with.")),
    errors,
    h("div", { class: "editor-grid" }, text, preview));
  renderPreview();
  return () => {};
}

// -- task definitions -----------------------------------------------------------------------

export async function taskDefsPage(root) {
  const defs = ((await get("metadata/taskdefs")) || []).sort((a, b) => a.name.localeCompare(b.name));
  replace(root,
    h("div", { class: "page-head" }, h("h1", null, "Task definitions"), allowed("operate", h("a", { class: "btn btn-primary", href: "#/taskdef", id: "new-taskdef" }, "New task definition"))),
    defs.length ? table([
      { label: "Name", render: (d) => h("a", { href: buildHash(["taskdef", d.name]) }, d.name) },
      { label: "Retries", class: "num", render: (d) => `${d.retryCount ?? ""}${d.retryLogic ? ` (${d.retryLogic})` : ""}` },
      { label: "Retry delay", class: "num", render: (d) => (d.retryDelaySeconds !== undefined ? `${d.retryDelaySeconds} s` : "") },
      { label: "Timeout", class: "num", render: (d) => (d.timeoutSeconds ? `${d.timeoutSeconds} s` : "") },
      { label: "Response timeout", class: "num", render: (d) => (d.responseTimeoutSeconds ? `${d.responseTimeoutSeconds} s` : "") },
      { label: "Concurrency", class: "num", render: (d) => (d.concurrentExecLimit ? String(d.concurrentExecLimit) : "") },
      { label: "Rate limit", render: (d) => (d.rateLimitPerFrequency ? `${d.rateLimitPerFrequency} / ${d.rateLimitFrequencyInSeconds || 1} s` : "") },
      { label: "Owner", render: (d) => d.ownerEmail || "" },
      { label: "Description", render: (d) => d.description || "" },
    ], defs, { class: "results-table" }) : h("p", { class: "empty" }, "No task definition yet."));
  return null;
}

export async function taskDefPage(root, params) {
  const name = params[0];
  const def = name ? await get(`metadata/taskdefs/${seg(name)}`) : NEW_TASK_DEF;
  const isNew = !name;
  return simpleEditor(root, {
    title: isNew ? "New task definition" : `Task definition ${def.name}`,
    value: def,
    back: "#/taskdefs",
    save: (value) => (isNew ? api("POST", "metadata/taskdefs", { body: [value] }) : api("PUT", "metadata/taskdefs", { body: value })),
    after: (value) => buildHash(["taskdef", value.name]),
    extra: isNew ? null : h("a", { class: "btn", href: buildHash(["tasks"], { name: def.name }) }, "Executions"),
  });
}

// -- event handlers -------------------------------------------------------------------------

export async function eventsPage(root) {
  const handlers = ((await get("event")) || []).sort((a, b) => a.name.localeCompare(b.name));
  replace(root,
    h("div", { class: "page-head" }, h("h1", null, "Event handlers"), allowed("operate", h("a", { class: "btn btn-primary", href: "#/event", id: "new-event" }, "New event handler"))),
    h("p", { class: "muted" }, "Handlers are stored and validated; Podium has no event queues that run them yet."),
    handlers.length ? table([
      { label: "Name", render: (e) => h("a", { href: buildHash(["event", e.name]) }, e.name) },
      { label: "Event", render: (e) => e.event },
      { label: "Active", render: (e) => (e.active ? "yes" : "no") },
      { label: "Condition", class: "mono", render: (e) => e.condition || "" },
      { label: "Actions", render: (e) => (e.actions || []).map((a) => a.action).join(", ") },
    ], handlers, { class: "results-table" }) : h("p", { class: "empty" }, "No event handler yet."));
  return null;
}

export async function eventPage(root, params) {
  const name = params[0];
  let value = NEW_EVENT_HANDLER;
  if (name) {
    const all = (await get("event")) || [];
    value = all.find((e) => e.name === name);
    if (!value) throw new ApiError(404, `No event handler named ${name}`);
  }
  return simpleEditor(root, {
    title: name ? `Event handler ${name}` : "New event handler",
    value,
    back: "#/events",
    save: (v) => api(name ? "PUT" : "POST", "event", { body: v }),
    after: (v) => buildHash(["event", v.name]),
  });
}

function simpleEditor(root, { title, value, back, save, after, extra }) {
  const text = h("textarea", { class: "editor", id: "json-editor", spellcheck: "false", "aria-label": "JSON" });
  const clean = { ...value };
  delete clean.createTime;
  delete clean.updateTime;
  text.value = JSON.stringify(clean, null, 2);
  const errors = h("div", { id: "editor-errors", role: "alert" });
  replace(root,
    h("div", { class: "page-head" }, h("h1", null, title), extra || null, h("a", { class: "btn", href: back }, "Back to the list")),
    h("div", { class: "form-actions" },
      allowed("operate", h("button", { type: "button", class: "btn btn-primary", id: "save-json", onClick: async () => {
        replace(errors);
        const v = parseEditor(text, errors);
        if (!v) return;
        try {
          await save(v);
          toast(`Saved ${v.name}`, "ok");
          location.hash = after(v);
        } catch (err) {
          replace(errors, saveError(err));
        }
      } }, "Save"))),
    errors, text);
  return null;
}
