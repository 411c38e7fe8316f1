// The gateway's public API, from the browser: same origin, the session's token in
// X-Authorization (as Conductor's clients send it), Conductor's error envelope turned into
// an ApiError that pages show as it is (never as an empty result).

const TOKEN_KEY = "podium.token";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body || null;
    this.validationErrors = (body && body.validationErrors) || [];
  }

  /** The message with the server's validation errors, for display. */
  get details() {
    const lines = [this.message];
    for (const v of this.validationErrors) lines.push(`${v.path ? v.path + ": " : ""}${v.message}`);
    return lines.join("\n");
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function url(path, query) {
  const u = new URL(path.startsWith("/") ? path : `/api/${path}`, location.origin);
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null || v === "") continue;
      if (Array.isArray(v)) v.forEach((item) => u.searchParams.append(k, item));
      else u.searchParams.set(k, String(v));
    }
  }
  return u.pathname + u.search;
}

/** Encode one path segment. */
export function seg(value) {
  return encodeURIComponent(String(value));
}

/**
 * api("GET", "workflow/search", {query: {...}}) -> parsed JSON, text, or null (empty answer).
 * Throws ApiError for an HTTP error or when the gateway cannot be reached (status 0).
 */
export async function api(method, path, { query, body, text } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers["X-Authorization"] = token;
  const init = { method, headers };
  if (body !== undefined) {
    if (text) { headers["Content-Type"] = "text/plain"; init.body = String(body); }
    else { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  }
  let resp;
  try {
    resp = await fetch(url(path, query), init);
  } catch (err) {
    throw new ApiError(0, `The gateway cannot be reached (${err.message})`);
  }
  const raw = await resp.text();
  const type = resp.headers.get("content-type") || "";
  let data = raw;
  if (raw && type.includes("json")) {
    try { data = JSON.parse(raw); } catch { data = raw; }
  }
  if (!resp.ok) {
    const message = (data && typeof data === "object" && data.message) || raw || resp.statusText || `HTTP ${resp.status}`;
    const err = new ApiError(resp.status, message, typeof data === "object" ? data : null);
    // A refused token ends the session (a refused sign-in is the login form's own error).
    if (resp.status === 401 && token) window.dispatchEvent(new CustomEvent("podium:unauthorized", { detail: err }));
    throw err;
  }
  if (!raw) return null;
  return data;
}

export const get = (path, query) => api("GET", path, { query });

/** Exchange a key id and secret for a token (POST /api/token). */
export async function login(keyId, keySecret) {
  const answer = await api("POST", "token", { body: { keyId, keySecret } });
  setToken(answer.token);
  return answer.token;
}
