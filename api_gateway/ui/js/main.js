// The single page: boot (configuration, login when authentication is on), the navigation
// and the hash router. Every page is a deep link: #/<page>/<params>?<state>. After sign-in
// the key's roles (GET /api/auth/me) decide which pages and actions are offered.

import { can, forgetMe, loadMe, me } from "./access.js";
import { ApiError, get, getToken, login, setToken } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { config, loadConfig } from "./config.js";
import { parseHash } from "./router.js";
import { executionsPage, tasksPage } from "./pages/search.js";
import { executionPage } from "./pages/execution.js";
import { definitionsPage, definitionPage, taskDefsPage, taskDefPage, eventsPage, eventPage } from "./pages/definitions.js";
import { runPage } from "./pages/run.js";
import { queuesPage } from "./pages/queues.js";
import { failuresPage } from "./pages/failures.js";
import { schedulesPage } from "./pages/schedules.js";

const NAV = [
  ["executions", "Executions"],
  ["tasks", "Tasks"],
  ["failures", "Failures"],
  ["definitions", "Definitions"],
  ["taskdefs", "Task definitions"],
  ["events", "Event handlers"],
  ["schedules", "Schedules"],
  ["run", "Run workflow"],
  ["queues", "Queues"],
];

// What each page needs of the key (every other page only reads: "read").
const PAGE_NEEDS = { run: "operate" };
const needOf = (page) => PAGE_NEEDS[page] || "read";

const ROUTES = {
  "": executionsPage,
  executions: executionsPage,
  tasks: tasksPage,
  execution: executionPage,
  failures: failuresPage,
  definitions: definitionsPage,
  definition: definitionPage,
  taskdefs: taskDefsPage,
  taskdef: taskDefPage,
  events: eventsPage,
  event: eventPage,
  run: runPage,
  queues: queuesPage,
  schedules: schedulesPage,
};

let current = null; // {dispose?}
const app = () => document.getElementById("app");

function renderNav(active) {
  const nav = document.getElementById("nav");
  replace(nav, NAV.filter(([id]) => can(needOf(id))).map(([id, label]) =>
    h("a", { href: `#/${id}`, class: id === active ? "active" : "", dataset: { nav: id } }, label)));
  const right = document.getElementById("topbar-right");
  replace(right,
    config.authEnabled && getToken()
      ? [
          me.loaded ? h("span", { class: "muted", id: "whoami" }, `${me.keyId} (${me.roles.join(", ")})`) : null,
          h("button", { type: "button", class: "btn btn-small btn-ghost", id: "logout", onClick: () => { setToken(null); forgetMe(); route(); } }, "Sign out"),
        ]
      : null);
}

function loginForm(message) {
  const keyId = h("input", { name: "keyId", autocomplete: "username", required: true });
  const secret = h("input", { name: "keySecret", type: "password", autocomplete: "current-password" });
  const token = h("input", { name: "token", placeholder: "or paste a token" });
  const error = h("div", { class: "error-text", role: "alert", id: "login-error" }, message || "");
  keyId.required = false;
  const form = h("form", { class: "card login", id: "login-form" },
    h("h2", null, "Sign in to Podium"),
    h("p", { class: "muted" }, "This gateway requires authentication: a key id and secret (exchanged for a token at /api/token), or a token."),
    h("label", { class: "field" }, h("span", null, "Key id"), keyId),
    h("label", { class: "field" }, h("span", null, "Key secret"), secret),
    h("label", { class: "field" }, h("span", null, "Token"), token),
    error,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Sign in")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    try {
      if (token.value.trim()) {
        setToken(token.value.trim());
        await loadMe(); // the token works, or this throws
      } else {
        await login(keyId.value.trim(), secret.value);
      }
      route();
    } catch (err) {
      setToken(null);
      forgetMe();
      error.textContent = err instanceof ApiError ? err.message : String(err);
    }
  });
  return h("div", { class: "page" }, form);
}

async function route() {
  if (current && current.dispose) {
    try { current.dispose(); } catch (e) { console.error(e); }
  }
  current = null;
  const { parts, query } = parseHash(location.hash);
  const [page, ...params] = parts;
  if (config.authEnabled && !getToken()) {
    renderNav(page || "executions");
    document.getElementById("nav").hidden = true;
    replace(app(), loginForm());
    return;
  }
  if (!me.loaded) {
    try {
      await loadMe();
    } catch (err) {
      // A refused token has already sent us back to the sign-in form.
      if (!(err instanceof ApiError && err.status === 401)) {
        replace(app(), h("div", { class: "banner banner-error", role: "alert" }, `Cannot read this key's roles: ${err.message}`));
      }
      return;
    }
  }
  renderNav(page || "executions");
  document.getElementById("nav").hidden = false;
  const render = ROUTES[page || ""];
  if (!render) {
    replace(app(), h("div", { class: "page" }, h("h2", null, "Not found"), h("p", null, `No page ${page}.`)));
    return;
  }
  // The execution page belongs to the executions list, the editors to their lists.
  const owner = { execution: "executions", definition: "definitions", taskdef: "taskdefs", event: "events" }[page] || page || "executions";
  if (!can(needOf(owner))) {
    replace(app(), h("div", { class: "page", id: "not-allowed" },
      h("h2", null, "Not available to this key"),
      h("p", null, me.roles.includes("worker") && !can("read")
        ? `Key ${me.keyId} is a worker key (task types ${me.taskTypes.join(", ")}): it polls and updates tasks through the API, and has no page here.`
        : `Key ${me.keyId} (${me.roles.join(", ")}) may not use this page.`)));
    return;
  }
  const container = h("div", { class: "page", dataset: { page: page || "executions" } });
  replace(app(), container);
  try {
    current = (await render(container, params.map(decodeURIComponent), query)) || null;
  } catch (err) {
    console.error(err);
    replace(container, h("div", { class: "banner banner-error", role: "alert" },
      err instanceof ApiError ? `The server answered ${err.status || "nothing"}: ${err.message}` : String(err)));
  }
}

window.addEventListener("podium:unauthorized", () => {
  if (!config.authEnabled) return;
  setToken(null);
  forgetMe();
  toast("Your session has ended: sign in again", "error");
  route();
});

window.addEventListener("hashchange", () => {
  // A page may update its own query string without re-rendering (filters, tabs).
  if (window.__podiumSilentHash === location.hash) return;
  route();
});

loadConfig().then(route, (err) => {
  replace(app(), h("div", { class: "banner banner-error" }, `Cannot load the UI configuration: ${err.message}`));
});
