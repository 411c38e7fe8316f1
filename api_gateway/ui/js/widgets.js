// Small shared widgets: a multi-select, a JSON viewer, key-value lists, an error banner.

import { ApiError } from "./api.js";
import { copyButton, h, replace } from "./dom.js";

/** A dropdown of checkboxes; `options` is a list of strings. */
export function multiSelect({ name, label, options, selected = [], onChange }) {
  const chosen = new Set(selected);
  const summary = h("summary", { class: "ms-summary" });
  const list = h("div", { class: "ms-list" });
  const filter = h("input", { type: "search", class: "ms-filter", placeholder: "Filter…", "aria-label": `Filter ${label}` });
  const root = h("details", { class: "multiselect", dataset: { name } }, summary, h("div", { class: "ms-pop" }, filter, list));
  let all = [...options];

  function paintSummary() {
    const values = [...chosen];
    replace(summary, values.length ? values.join(", ") : h("span", { class: "muted" }, `Any ${label.toLowerCase()}`));
    summary.title = values.join(", ");
  }
  function paintList() {
    const needle = filter.value.trim().toLowerCase();
    const shown = all.filter((o) => !needle || o.toLowerCase().includes(needle));
    replace(list, shown.length ? shown.map((o) => {
      const box = h("input", { type: "checkbox", value: o, checked: chosen.has(o), onChange: (ev) => {
        if (ev.target.checked) chosen.add(o); else chosen.delete(o);
        paintSummary();
        if (onChange) onChange([...chosen]);
      } });
      return h("label", { class: "ms-item" }, box, h("span", null, o));
    }) : h("div", { class: "muted pad-s" }, "No match"));
  }
  filter.addEventListener("input", paintList);
  paintSummary();
  paintList();
  return {
    el: h("label", { class: "field" }, h("span", null, label), root),
    get values() { return [...chosen]; },
    setOptions(opts) { all = [...new Set([...opts, ...chosen])].sort(); paintList(); },
    set(values) { chosen.clear(); values.forEach((v) => chosen.add(v)); paintSummary(); paintList(); },
  };
}

const JSON_HIGHLIGHT_LIMIT = 300_000;

/** Pretty JSON as text nodes (coloured by token when not too large), with a copy button. */
export function jsonView(value, { title, empty = "(empty)" } = {}) {
  const text = value === undefined ? "" : JSON.stringify(value, null, 2);
  const isEmpty = value === undefined || value === null ||
    (typeof value === "object" && Object.keys(value).length === 0);
  const pre = h("pre", { class: "json" });
  if (text.length <= JSON_HIGHLIGHT_LIMIT) highlight(pre, text);
  else pre.textContent = text;
  return h("div", { class: "json-box" },
    h("div", { class: "json-head" }, title ? h("strong", null, title) : null, isEmpty ? h("span", { class: "muted" }, empty) : null,
      h("span", { class: "spacer" }), copyButton(() => text)),
    pre);
}

const TOKEN_RE = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;

function highlight(pre, text) {
  let last = 0;
  const frag = document.createDocumentFragment();
  for (const m of text.matchAll(TOKEN_RE)) {
    if (m.index > last) frag.appendChild(document.createTextNode(text.slice(last, m.index)));
    let cls = "j-num";
    if (m[1]) cls = m[2] ? "j-key" : "j-str";
    else if (m[3]) cls = m[3] === "null" ? "j-null" : "j-bool";
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = m[1] ? m[1] : m[0];
    frag.appendChild(span);
    if (m[1] && m[2]) frag.appendChild(document.createTextNode(m[2]));
    last = m.index + m[0].length;
  }
  if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
  pre.appendChild(frag);
}

/** A definition list of [label, value] pairs (values: string or Node; empty ones left out). */
export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

/** An error banner that says what failed and why (the search's "cannot answer"). */
export function errorBanner(what, err) {
  const status = err instanceof ApiError ? err.status : undefined;
  const msg = err instanceof ApiError ? err.details : String(err && err.message ? err.message : err);
  return h("div", { class: "banner banner-error", role: "alert", dataset: { error: "1" } },
    h("strong", null, what), " ",
    status === 0 ? "(the gateway cannot be reached)" : status ? `(HTTP ${status})` : "",
    h("pre", { class: "error-pre" }, msg));
}

export function link(href, text, props = {}) {
  return h("a", { href, ...props }, text);
}
