// Building the DOM from data, safely: every value becomes a text node or an attribute set
// through the DOM API. Nothing here (or anywhere in the UI) assigns HTML strings, so what a
// workflow carries (names, inputs, reasons) can never become markup or script.

const SVG_NS = "http://www.w3.org/2000/svg";

function applyProps(el, props) {
  if (!props) return;
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === "value" && "value" in el) el.value = value;
    else if (key === "checked" || key === "disabled" || key === "selected" || key === "multiple") el[key] = Boolean(value);
    else if (/^(innerHTML|outerHTML|srcdoc)$/i.test(key)) throw new Error(`refusing to set ${key}`);
    else if (key === "href" && typeof value === "string" && /^\s*javascript:/i.test(value)) throw new Error("refusing a javascript: link");
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** h("div", {class: "x", onClick: fn}, "text", child, [more]) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  applyProps(el, props);
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

export function fmtTime(ms) {
  if (ms === undefined || ms === null || ms === "" || ms === 0) return "";
  const d = typeof ms === "number" ? new Date(ms) : new Date(ms);
  if (Number.isNaN(d.getTime())) return String(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function toMs(value) {
  if (value === undefined || value === null || value === "") return 0;
  if (typeof value === "number") return value;
  const t = Date.parse(value);
  return Number.isNaN(t) ? 0 : t;
}

export function fmtDuration(ms) {
  if (ms === undefined || ms === null || ms < 0 || Number.isNaN(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min} m ${Math.round(sec % 60)} s`;
  const hr = Math.floor(min / 60);
  if (hr < 48) return `${hr} h ${min % 60} m`;
  return `${Math.floor(hr / 24)} d ${hr % 24} h`;
}

export function statusBadge(status) {
  return h("span", { class: `badge st-${status || "NONE"}`, dataset: { status: status || "" } }, status || "NOT RUN");
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const el = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.appendChild(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

/** A table from columns [{label, key?, render?(row), class?, sort?}] and rows. */
export function table(columns, rows, opts = {}) {
  const head = h("tr", null, columns.map((c) => {
    const th = h("th", { class: c.class, scope: "col" }, c.header || c.label);
    if (c.sort && opts.onSort) {
      th.classList.add("sortable");
      const active = opts.sort && opts.sort.field === c.sort;
      if (active) th.classList.add(opts.sort.desc ? "sort-desc" : "sort-asc");
      th.addEventListener("click", () => opts.onSort(c.sort));
      th.setAttribute("aria-sort", active ? (opts.sort.desc ? "descending" : "ascending") : "none");
    }
    return th;
  }));
  const body = h("tbody");
  for (const row of rows) {
    const tr = h("tr", opts.rowProps ? opts.rowProps(row) : null,
      columns.map((c) => h("td", { class: c.class }, c.render ? c.render(row) : fmtCell(row[c.key]))));
    body.appendChild(tr);
  }
  return h("table", { class: ["grid", opts.class] }, h("thead", null, head), body);
}

function fmtCell(v) {
  if (v === undefined || v === null) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** Tabs: [{id, label, render()}]; returns {el, select(id)}. */
export function tabs(items, active, onChange) {
  const bar = h("div", { class: "tabs", role: "tablist" });
  const panel = h("div", { class: "tab-panel" });
  const buttons = {};
  let current = null;
  function select(id) {
    const item = items.find((t) => t.id === id) || items[0];
    current = item.id;
    for (const [k, b] of Object.entries(buttons)) {
      b.classList.toggle("active", k === current);
      b.setAttribute("aria-selected", k === current ? "true" : "false");
    }
    replace(panel, item.render());
    if (onChange) onChange(current);
  }
  for (const item of items) {
    buttons[item.id] = h("button", { class: "tab", role: "tab", type: "button", dataset: { tab: item.id }, onClick: () => select(item.id) }, item.label);
    bar.appendChild(buttons[item.id]);
  }
  const el = h("div", { class: "tabset" }, bar, panel);
  select(active);
  return { el, select, get current() { return current; } };
}

/** A confirmation dialog; resolves to the values of its fields, or null if cancelled. */
export function confirmDialog({ title, message, fields = [], confirmLabel = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const inputs = {};
    const body = fields.map((f) => {
      let input;
      if (f.type === "textarea") input = h("textarea", { name: f.name, rows: f.rows || 8, class: "code", spellcheck: "false" });
      else if (f.type === "checkbox") input = h("input", { type: "checkbox", name: f.name, checked: f.value });
      else input = h("input", { type: "text", name: f.name, placeholder: f.placeholder || "" });
      if (f.type !== "checkbox" && f.value !== undefined) input.value = f.value;
      inputs[f.name] = input;
      return h("label", { class: f.type === "checkbox" ? "field check" : "field" }, h("span", null, f.label), input);
    });
    const error = h("div", { class: "error-text", role: "alert" });
    const dialog = h("dialog", { class: "modal" },
      h("form", { method: "dialog" },
        h("h3", null, title),
        message ? h("p", null, message) : null,
        body,
        error,
        h("div", { class: "modal-actions" },
          h("button", { type: "button", class: "btn", value: "cancel", onClick: () => { dialog.close(); } }, "Cancel"),
          h("button", { type: "submit", class: danger ? "btn btn-danger" : "btn btn-primary", value: "ok", dataset: { confirm: "1" } }, confirmLabel))));
    let result = null;
    dialog.querySelector("form").addEventListener("submit", (ev) => {
      const values = {};
      for (const f of fields) {
        const el = inputs[f.name];
        values[f.name] = f.type === "checkbox" ? el.checked : el.value;
        if (f.json) {
          try { values[f.name] = el.value.trim() ? JSON.parse(el.value) : (f.json === "object" ? {} : null); }
          catch (e) { ev.preventDefault(); error.textContent = `${f.label}: ${e.message}`; return; }
        }
        if (f.required && !String(values[f.name] || "").trim()) { ev.preventDefault(); error.textContent = `${f.label} is required`; return; }
      }
      result = values;
    });
    dialog.addEventListener("close", () => { dialog.remove(); resolve(result); });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

export function copyButton(getText, label = "Copy") {
  return h("button", { type: "button", class: "btn btn-small", onClick: async (ev) => {
    try { await navigator.clipboard.writeText(getText()); ev.target.textContent = "Copied"; }
    catch { ev.target.textContent = "Copy failed"; }
    setTimeout(() => { ev.target.textContent = label; }, 1500);
  } }, label);
}
