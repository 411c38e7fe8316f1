// What the gateway tells the page before anyone signs in (GET /ui/config.json).

export const config = { authEnabled: false, traceUrl: "" };

export async function loadConfig() {
  const resp = await fetch("/ui/config.json");
  if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
  Object.assign(config, await resp.json());
  return config;
}

/** The trace viewer's address for a trace id, or "" when none is configured. */
export function traceLink(traceId) {
  if (!config.traceUrl || !traceId || !/^[0-9a-fA-F]{16,32}$/.test(traceId)) return "";
  return config.traceUrl.replaceAll("{traceId}", encodeURIComponent(traceId));
}
