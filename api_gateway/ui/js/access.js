// What the signed-in key may do, from GET /api/auth/me: pages and actions its roles do not
// allow are not offered (the gateway refuses them anyway; this keeps the page honest).
// With authentication off the gateway answers as an admin, so everything is offered.

import { get } from "./api.js";

export const me = { loaded: false, authEnabled: false, keyId: "", roles: [], taskTypes: [] };

// The roles behind each kind of use (the gateway's rules, docs/gateway.md#roles).
const NEEDS = {
  read: ["admin", "operator", "viewer"],
  operate: ["admin", "operator"],
  admin: ["admin"],
};

/** Whether the key may do this kind of thing: "read", "operate" or "admin". */
export function can(need) {
  return me.roles.some((role) => NEEDS[need].includes(role));
}

/** The node when the key may do `need`, else null (so it is never put on the page). */
export function allowed(need, node) {
  return can(need) ? node : null;
}

export async function loadMe() {
  Object.assign(me, await get("auth/me"), { loaded: true });
  return me;
}

export function forgetMe() {
  Object.assign(me, { loaded: false, keyId: "", roles: [], taskTypes: [] });
}
