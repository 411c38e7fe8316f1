// Hash routes: #/page/param1/param2?key=value&key=value

export function parseHash(hash) {
  const text = (hash || "").replace(/^#\/?/, "");
  const [path, qs = ""] = text.split("?", 2);
  const parts = path.split("/").filter((p) => p !== "");
  const query = Object.fromEntries(new URLSearchParams(qs));
  return { parts, query };
}

export function buildHash(parts, query = {}) {
  const path = parts.map((p) => encodeURIComponent(String(p))).join("/");
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === "" || (Array.isArray(v) && !v.length)) continue;
    qs.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  const q = qs.toString();
  return `#/${path}${q ? "?" + q : ""}`;
}

/** Change the address without re-rendering the page (its state already shows it). */
export function setHashSilently(hash) {
  if (location.hash === hash) return;
  window.__podiumSilentHash = hash;
  history.replaceState(null, "", hash);
  window.__podiumSilentHash = null;
}

export function go(hash) {
  location.hash = hash;
}

export function executionHref(workflowId, query = {}) {
  return buildHash(["execution", workflowId], query);
}
