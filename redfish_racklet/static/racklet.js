/* racklet.js — the rack in a browser: login, the dashboard ("/") and the browsable Redfish
 * API (any /redfish/... page). The server sends one data-free page for every navigation;
 * this script fetches the JSON of the page's path with the session token (sessionStorage,
 * sent as X-Auth-Token: no cookies, no CSRF surface) and draws it with createElement and
 * textContent only: data never becomes markup, and nothing is inline (a strict CSP).
 * Live updates: the EventService's SSE stream (fetch: EventSource sends no X-Auth-Token;
 * another origin, allowed by CORS); an event's unit is re-read at once, and a slow poll
 * catches drift. Without the stream: a poll every POLL_MS, and retries with backoff. */
"use strict";
(function () {
  const TOKEN = "racklet.token";
  const SESSION = "racklet.session";
  const WHO = "racklet.who";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const SVG_TAGS = new Set(["svg", "polyline", "line", "text", "title"]);
  const LINK_KEYS = new Set(["@odata.id", "target", "@Redfish.ActionInfo", "TaskMonitor",
    "Members@odata.nextLink", "DataSourceUri"]);
  const ALLOWABLE = "@Redfish.AllowableValues";
  const POLL_MS = 1000;
  const SLOW_POLL_MS = 5000;
  const RETRY_MS = [1000, 30000];  // the stream's first and longest wait before a retry
  const UNIT_URI = /^\/redfish\/v1\/(?:Systems|Chassis)\/([^/]+)/;
  const TASK_POLL_MS = 500;
  const PLOT_WINDOW_MS = 10 * 60 * 1000;
  const PLOT_POINTS = 600;
  const PLOT_MIN_SPAN_MS = 60 * 1000;
  const LOG_ENTRIES = 20;
  const LOG_URI = "/redfish/v1/Managers/RMC/LogServices/EventLog/Entries";
  const FINISHED = new Set(["Completed", "Exception", "Killed", "Cancelled", "Interrupted"]);

  /** Thrown when a 401 sent the user back to the login form: callers just stop. */
  class LoggedOut extends Error {}

  // -- DOM helpers

  /** An element with attributes (``text``: its text; ``cls``: its class) and children;
   * strings become text nodes, so data can never become markup. */
  function el(tag, props, children) {
    const node = SVG_TAGS.has(tag) ? document.createElementNS(SVG_NS, tag) : document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "cls") node.setAttribute("class", value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of [].concat(children === undefined ? [] : children)) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  /** A section card titled by its h2; ``name``: its class, and its title's id. */
  function card(name, title, children) {
    return el("section", {cls: "card " + name, "aria-labelledby": name + "-title"},
      [el("h2", {id: name + "-title", text: title})].concat(children));
  }

  /** A scrolling table: a row of ``headings`` over ``body`` (a tbody). */
  function table(headings, body) {
    return el("div", {cls: "scroll"}, el("table", {}, [
      el("thead", {}, el("tr", {}, headings.map((text) => el("th", {text})))), body]));
  }

  /** A label for ``control`` (by its id). */
  function label(control, text) {
    return el("label", {for: control.id, text});
  }

  /** A link only to this origin: a JSON value names where it points, not a scheme. */
  function sameOrigin(uri) {
    try {
      return typeof uri === "string" && new URL(uri, location.origin).origin === location.origin;
    } catch (e) {
      return false;
    }
  }

  function slug(text) {
    return String(text).replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "");
  }

  function setDisabled(button, disabled, why) {
    button.disabled = disabled;
    if (why) button.title = why;
    else button.removeAttribute("title");
  }

  // -- the session

  /** JSON.parse, or null for what is not JSON. */
  function parse(text) {
    try {
      return JSON.parse(text);
    } catch (e) {
      return null;
    }
  }

  function who() {
    return parse(sessionStorage.getItem(WHO));
  }

  /** May the logged-in role use a control that needs ``privilege``? (The service decides;
   * this only greys out what would be refused.) */
  function can(privilege) {
    const w = who();
    return !!w && Array.isArray(w.privileges) && w.privileges.includes(privilege);
  }

  function forget() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(SESSION);
    sessionStorage.removeItem(WHO);
  }

  /** One request to the service: JSON in, JSON (or text) out. A 401 on a request that
   * carried no password ends the session and shows the login form. */
  async function api(method, path, body) {
    const headers = {Accept: "application/json, */*;q=0.5"};
    const token = sessionStorage.getItem(TOKEN);
    if (token) headers["X-Auth-Token"] = token;
    let payload;
    if (body instanceof FormData) {
      payload = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const r = await fetch(path, {method, headers, body: payload, credentials: "omit", cache: "no-store"});
    const text = r.status === 204 ? "" : await r.text();
    const data = (r.headers.get("Content-Type") || "").includes("json") ? parse(text) : null;
    if (r.status === 401 && !path.startsWith("/redfish/v1/SessionService/Sessions")) {
      forget();
      showLogin(token ? "Your session has ended: please log in again." : "");
      throw new LoggedOut();
    }
    return {status: r.status, ok: r.ok, data, text, headers: r.headers};
  }

  /** What a response says, in one line: the status and the service's first message. */
  function describe(r) {
    const err = r.data && r.data.error;
    const info = (err && err["@Message.ExtendedInfo"]) || (r.data && r.data["@Message.ExtendedInfo"]) || [];
    let message = (info[0] && info[0].Message) || (err && err.message) || "";
    if (!message && r.status === 202) message = "accepted: " + (r.headers.get("Location") || "running");
    if (!message && r.ok) message = "done";
    if (!message) message = r.text.slice(0, 200);
    return r.status + " " + message;
  }

  /** The role's privileges: Session → UserName → its account's RoleId → the Role. */
  async function learnRole(userName) {
    const accounts = await api("GET", "/redfish/v1/AccountService/Accounts?$expand=.");
    const members = (accounts.data && accounts.data.Members) || [];
    let roleId = (members.find((m) => m.UserName === userName) || {}).RoleId;
    for (const m of members) {  // not expanded: only one's own account may be readable
      if (roleId || m.UserName !== undefined) continue;
      const r = await api("GET", m["@odata.id"]);
      if (r.ok && r.data && r.data.UserName === userName) roleId = r.data.RoleId;
    }
    let privileges = [];
    if (roleId) {
      const role = await api("GET", "/redfish/v1/AccountService/Roles/" + encodeURIComponent(roleId));
      if (role.ok && role.data) privileges = role.data.AssignedPrivileges || [];
    }
    return {user: userName, role: roleId || "unknown", privileges};
  }

  async function logIn(userName, password) {
    const r = await api("POST", "/redfish/v1/SessionService/Sessions", {UserName: userName, Password: password});
    if (r.status !== 201) return describe(r);
    sessionStorage.setItem(TOKEN, r.headers.get("X-Auth-Token") || "");
    sessionStorage.setItem(SESSION, r.headers.get("Location") || (r.data && r.data["@odata.id"]) || "");
    const name = (r.data && r.data.UserName) || userName;
    sessionStorage.setItem(WHO, JSON.stringify(await learnRole(name)));
    return null;
  }

  async function logOut() {
    const session = sessionStorage.getItem(SESSION);
    try {
      if (session) await api("DELETE", session);
    } catch (e) {
      if (!(e instanceof LoggedOut)) throw e;
    }
    forget();
    showLogin("You are logged out.");
  }

  // -- the page frame

  let stopPage = () => {};

  function frame(content) {
    stopPage();
    stopPage = () => {};
    const w = who();
    const nav = el("nav", {"aria-label": "Main"}, [
      el("a", {href: "/", text: "Rack"}),
      el("a", {href: "/redfish/v1", text: "Redfish API"}),
    ]);
    const user = w ? el("span", {cls: "who", text: w.user + " (" + w.role + ")"}) : null;
    const out = w ? el("button", {type: "button", id: "logout", text: "Log out"}) : null;
    if (out) out.addEventListener("click", () => logOut().catch(showFailure));
    const header = el("header", {cls: "top"}, [el("a", {href: "/", cls: "brand", text: "Racklet"}), nav,
      el("div", {cls: "session"}, [user, out])]);
    const main = el("main", {id: "main"}, content);
    document.body.replaceChildren(header, main);
  }

  function showFailure(e) {
    if (e instanceof LoggedOut) return;
    const main = document.getElementById("main");
    const p = el("p", {cls: "msg error", role: "alert", text: "Something went wrong: " + e});
    if (main) main.prepend(p);
  }

  function showLogin(note) {
    document.title = "Log in · Racklet";
    const user = el("input", {id: "login-user", name: "username", autocomplete: "username", required: true});
    const pass = el("input", {id: "login-password", name: "password", type: "password",
      autocomplete: "current-password", required: true});
    const msg = el("p", {cls: "msg", role: "status", text: note || ""});
    const button = el("button", {type: "submit", text: "Log in"});
    const form = el("form", {cls: "card login", id: "login", "aria-labelledby": "login-title"}, [
      el("h1", {id: "login-title", text: "Log in to the rack"}),
      label(user, "User name"), user,
      label(pass, "Password"), pass, button, msg]);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      button.disabled = true;
      msg.textContent = "Logging in…";
      logIn(user.value, pass.value).then((failed) => (failed ? Promise.reject(failed) : route())).catch((e) => {
        msg.textContent = "Not logged in: " + e;
        button.disabled = false;
      });
    });
    frame(form);
    user.focus();
  }

  // -- the browsable API

  function breadcrumb(pathname) {
    const parts = pathname.split("/").filter(Boolean);
    const items = parts.map((part, i) => {
      const href = "/" + parts.slice(0, i + 1).join("/");
      const last = i === parts.length - 1;
      return el("li", {}, el("a", {href, "aria-current": last ? "page" : null, text: decodeURIComponent(part)}));
    });
    return el("nav", {cls: "crumbs", "aria-label": "Breadcrumb"}, el("ol", {}, items));
  }

  function indent(depth) {
    return "\n" + "  ".repeat(depth);
  }

  /** Append ``value`` to ``out`` as highlighted JSON; ``key`` says whether a string is a link. */
  function appendJson(out, value, depth, key) {
    if (value === null) {
      out.append(el("span", {cls: "j-null", text: "null"}));
    } else if (typeof value === "object") {  // an array's items keep the key it is under
      const array = Array.isArray(value);
      const keys = Object.keys(value);
      const [open, close] = array ? "[]" : "{}";
      out.append(open);
      keys.forEach((k, i) => {
        out.append(indent(depth + 1));
        if (!array) out.append(el("span", {cls: "j-key", text: JSON.stringify(k)}), ": ");
        appendJson(out, value[k], depth + 1, array ? key : k);
        if (i < keys.length - 1) out.append(",");
      });
      out.append((keys.length ? indent(depth) : "") + close);
    } else if (typeof value === "string") {
      const text = JSON.stringify(value);
      if (LINK_KEYS.has(key) && value.startsWith("/") && sameOrigin(value)) {
        out.append(el("a", {cls: "j-str j-link", href: value, text}));
      } else {
        out.append(el("span", {cls: "j-str", text}));
      }
    } else {
      out.append(el("span", {cls: typeof value === "number" ? "j-num" : "j-bool", text: String(value)}));
    }
    return out;
  }

  /** The privilege an action needs, roughly (the service checks the real thing): the rack's
   * own services need ConfigureManager, units, chassis and updates ConfigureComponents. */
  function actionPrivilege(target) {
    return /^\/redfish\/v1\/(Managers|AccountService|SessionService|CertificateService|EventService)\b/
      .test(target) ? "ConfigureManager" : "ConfigureComponents";
  }

  function actionForm(name, info, index) {
    const id = "action-" + index;
    const title = name.replace(/^#/, "");
    const fields = [];
    const selects = {};
    for (const [k, values] of Object.entries(info || {})) {
      if (!k.endsWith(ALLOWABLE) || !Array.isArray(values)) continue;
      const param = k.slice(0, -ALLOWABLE.length);
      const sid = id + "-" + slug(param);
      selects[param] = el("select", {id: sid, name: param}, values.map((v) => el("option", {value: v, text: v})));
      fields.push(label(selects[param], param), selects[param]);
    }
    const target = typeof info.target === "string" ? info.target : "";
    const need = actionPrivilege(target);
    const button = el("button", {type: "submit", text: "Run " + title.split(".").pop()});
    setDisabled(button, !can(need) || !sameOrigin(target), can(need) ? null : "Your role lacks " + need);
    const result = el("p", {cls: "result", role: "status"});
    const form = el("form", {cls: "action", id, "aria-label": title}, [
      el("h3", {text: title}),
      el("p", {cls: "target"}, ["target ", el("a", {href: sameOrigin(target) ? target : null, text: target})]),
      el("div", {cls: "fields"}, fields), button, result]);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const body = {};
      for (const [param, select] of Object.entries(selects)) body[param] = select.value;
      result.textContent = "…";
      api("POST", target, body).then((r) => { result.textContent = describe(r); }).catch(showFailure);
    });
    return form;
  }

  function actionsSection(doc) {
    const actions = (doc && doc.Actions) || {};
    const names = Object.keys(actions).filter((k) => k.startsWith("#"));
    if (!names.length) return null;
    return card("actions", "Actions", names.map((n, i) => actionForm(n, actions[n], i)));
  }

  async function browse() {
    const path = location.pathname + location.search;
    const r = await api("GET", path);
    const doc = r.data;
    const name = (doc && (doc.Name || doc.Id)) || location.pathname.split("/").filter(Boolean).pop() || "/";
    document.title = name + " · Racklet";
    const body = doc ? appendJson(el("pre", {cls: "json", tabindex: "0", "aria-label": "JSON"}), doc, 0, null)
      : el("pre", {cls: "json", tabindex: "0", text: r.text});
    frame([
      breadcrumb(location.pathname),
      el("h1", {text: name}),
      r.ok ? null : el("p", {cls: "msg error", role: "alert", text: describe(r)}),
      r.ok ? actionsSection(doc) : null,
      el("section", {cls: "card doc", "aria-label": "Resource"}, body),
    ]);
  }

  // -- the dashboard

  function number(value, digits, unit) {
    return typeof value === "number" ? value.toFixed(digits) + " " + unit : "—";
  }

  function field(label, cls) {
    const dd = el("dd", {cls, text: "—"});
    return {node: el("div", {}, [el("dt", {text: label}), dd]), dd};
  }

  /** One tray of the rack, built once and updated on every poll. */
  function makeTray(id) {
    const fields = {
      presence: field("Presence", "presence"), power: field("Power", "power-state"),
      health: field("Health", "health"), led: field("Identify", "identify"),
      watts: field("Power draw", "watts"), temp: field("Temperature", "temperature"),
    };
    const button = (cls, text) => el("button", {type: "button", cls, text});
    const buttons = {on: button("on", "On"), off: button("off", "Off"), restart: button("restart", "Restart"),
      identify: button("identify-toggle", "Identify")};
    const title = el("a", {href: "/redfish/v1/Systems/" + encodeURIComponent(id), text: id});
    const slot = el("span", {cls: "slot", text: ""});
    const msg = el("p", {cls: "result", role: "status"});
    const led = el("span", {cls: "led", "aria-hidden": "true"});
    const root = el("li", {cls: "tray", "data-unit": id}, [
      el("h3", {}, [led, slot, title]),
      el("dl", {}, Object.values(fields).map((f) => f.node)),
      el("div", {cls: "buttons", role: "group", "aria-label": id + " controls"}, Object.values(buttons)),
      msg]);
    const tray = {id, root, fields, buttons, slot, msg, system: null};
    const reset = (type) => () => control(tray, "POST", "/Actions/ComputerSystem.Reset", {ResetType: type});
    buttons.on.addEventListener("click", reset("On"));
    buttons.off.addEventListener("click", reset("GracefulShutdown"));
    buttons.restart.addEventListener("click", reset("GracefulRestart"));
    buttons.identify.addEventListener("click", () => control(tray, "PATCH", "",
      {LocationIndicatorActive: !(tray.system && tray.system.LocationIndicatorActive)}));
    return tray;
  }

  function control(tray, method, suffix, body) {
    tray.msg.textContent = "…";
    api(method, "/redfish/v1/Systems/" + encodeURIComponent(tray.id) + suffix, body)
      .then((r) => { tray.msg.textContent = describe(r); }).catch(showFailure);
  }

  function updateTray(tray, system, sensors) {
    tray.system = system;
    const status = system.Status || {};
    const absent = status.State === "Absent";
    const power = system.PowerState || "Unknown";
    const lit = !!system.LocationIndicatorActive;
    const slot = system.Oem && system.Oem.Racklet && system.Oem.Racklet.Slot;
    tray.slot.textContent = slot !== undefined ? "Slot " + slot + " · " : "";
    const shown = {presence: absent ? "Absent" : "Present", power, health: status.Health || "Unknown",
      led: lit ? "On" : "Off", watts: number(sensors.Power, 2, "W"), temp: number(sensors.Temperature, 1, "°C")};
    for (const [k, text] of Object.entries(shown)) {
      tray.fields[k].dd.textContent = absent && k !== "presence" && k !== "led" ? "—" : text;
    }
    tray.root.setAttribute("class", ["tray", absent ? "absent" : "present", "power-" + slug(power).toLowerCase(),
      "health-" + slug(status.Health || "unknown").toLowerCase(), lit ? "lit" : ""].join(" ").trim());
    const may = can("ConfigureComponents");
    const why = may ? (absent ? "The tray is empty" : null) : "Your role lacks ConfigureComponents";
    const moot = {on: power === "On", off: power === "Off", restart: power !== "On"};  // and identify: never
    for (const [k, b] of Object.entries(tray.buttons)) setDisabled(b, !may || absent || !!moot[k], why);
    tray.buttons.identify.setAttribute("aria-pressed", lit ? "true" : "false");
  }

  /** A unit's readings by sensor Id (``Power``, ``Temperature``) from its expanded Sensors. */
  function readings(doc) {
    const out = {};
    for (const s of (doc && doc.Members) || []) {
      if (s && s.Id && typeof s.Reading === "number") {
        out[s.Id] = s.Reading;
        out[s.Id + "Time"] = Date.parse(s.ReadingTime || "") || Date.now();
      }
    }
    return out;
  }

  // plots: a series of {t, w} per unit and for the rack

  function addPoint(series, key, t, w) {
    if (typeof w !== "number" || !isFinite(t)) return;
    const points = series.get(key) || [];
    if (!points.length || t > points[points.length - 1].t) points.push({t, w});
    while (points.length > PLOT_POINTS || (points.length && points[0].t < t - PLOT_WINDOW_MS)) points.shift();
    series.set(key, points);
  }

  /** A report's power values (MetricId <key><suffix>) into the plots' series. */
  function seedHistory(series, report, suffix) {
    const values = ((report && report.MetricValues) || []).filter((m) => String(m.MetricId).endsWith(suffix));
    const rows = values.map((m) => ({key: m.MetricId.slice(0, -suffix.length),
      t: Date.parse(m.Timestamp || ""), w: parseFloat(m.MetricValue)}));
    rows.sort((a, b) => a.t - b.t);
    for (const row of rows) addPoint(series, row.key, row.t, row.w);
  }

  function makePlot(key) {
    const line = el("polyline", {cls: "trace", points: ""});
    const label = el("text", {x: "4", y: "12", cls: "plot-label", text: key});
    const svg = el("svg", {viewBox: "0 0 300 80", role: "img", "aria-label": "Power of " + key + " over time"},
      [el("line", {x1: "0", y1: "79", x2: "300", y2: "79", cls: "axis"}), line, label]);
    const caption = el("figcaption", {text: key});
    return {root: el("figure", {cls: "plot", "data-plot": key}, [svg, caption]), line, label, caption};
  }

  function drawPlot(plot, key, points) {
    if (!points || !points.length) return;
    const last = points[points.length - 1];
    const span = Math.max(PLOT_MIN_SPAN_MS, last.t - points[0].t);
    const top = Math.max(1, ...points.map((p) => p.w)) * 1.15;
    plot.line.setAttribute("points", points.map((p) => {
      const x = 300 - ((last.t - p.t) / span) * 300;
      const y = 78 - (p.w / top) * 66;
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" "));
    plot.label.textContent = "max " + top.toFixed(1) + " W";
    plot.caption.textContent = key + ": " + last.w.toFixed(2) + " W (last " + Math.round(span / 1000) + " s)";
  }

  // firmware

  /** One row per device and component (its two slots side by side), the active slot marked. */
  function firmwareRows(inventory) {
    const rows = new Map();
    for (const m of (inventory && inventory.Members) || []) {
      const name = (m.Name || m.Id || "").replace(/, slot \w+$/, "");
      if (!rows.has(name)) rows.set(name, []);
      rows.get(name).push(m);
    }
    return [...rows].map(([name, slots]) => el("tr", {}, [el("th", {scope: "row", text: name}),
      el("td", {}, slots.map((m) => el("div", {cls: m.Active ? "slot-active" : "slot-other"}, [
        el("a", {href: m["@odata.id"], text: (m.Oem && m.Oem.Racklet && m.Oem.Racklet.Slot) || m.Id}), " ",
        m.Version || "empty", m.Active ? " (active)" : m.Staged ? " (staged)" : ""])))]));
  }

  function targetOptions(inventory) {
    const seen = new Map();
    for (const m of (inventory && inventory.Members) || []) {
      const target = m.RelatedItem && m.RelatedItem[0] && m.RelatedItem[0]["@odata.id"];
      if (target && !seen.has(target)) seen.set(target, (m.Name || target).replace(/, slot \w+$/, ""));
    }
    return [...seen].map(([value, text]) => el("option", {value, text}));
  }

  function makeFirmware(onDone) {
    const body = el("tbody");
    const file = el("input", {id: "bundle-file", type: "file", name: "UpdateFile", required: true});
    const target = el("select", {id: "bundle-target", name: "Target"});
    const submit = el("button", {type: "submit", text: "Upload and install"});
    const progress = el("progress", {id: "task-progress", max: "100", value: "0"});
    const state = el("p", {cls: "result task-state", role: "status"});
    const form = el("form", {cls: "upload", id: "upload", "aria-label": "Upload a signed bundle"}, [
      label(file, "Signed bundle"), file,
      label(target, "Install on"), target, submit,
      label(progress, "Task progress"), progress, state]);
    const section = card("firmware", "Firmware", [table(["Device", "Slots"], body), form]);
    const fw = {section, body, target, submit, progress, state, pushUri: null};
    const why = can("ConfigureComponents") ? null : "Your role lacks ConfigureComponents";
    setDisabled(submit, !!why, why);
    file.disabled = !!why;
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (!file.files.length || !fw.pushUri) return;
      const data = new FormData();
      data.append("UpdateParameters", JSON.stringify({Targets: [target.value]}));
      data.append("UpdateFile", file.files[0], file.files[0].name);
      submit.disabled = true;
      progress.value = 0;
      state.textContent = "Uploading…";
      api("POST", fw.pushUri, data).then((r) => {
        if (r.status !== 202) {
          state.textContent = describe(r);
          submit.disabled = false;
          return;
        }
        watchTask(fw, r.headers.get("Location"), () => { submit.disabled = false; onDone(); });
      }).catch((e) => { submit.disabled = false; showFailure(e); });
    });
    return fw;
  }

  /** Poll a task monitor until the task has ended, showing its progress. */
  function watchTask(fw, monitor, done) {
    const step = () => api("GET", monitor).then((r) => {
      const task = r.data || {};
      if (typeof task.PercentComplete === "number") fw.progress.value = task.PercentComplete;
      fw.state.textContent = (task.TaskState || describe(r)) + (task.TaskStatus ? " (" + task.TaskStatus + ")" : "");
      if (FINISHED.has(task.TaskState) || !r.ok) done();
      else setTimeout(step, TASK_POLL_MS);
    }).catch(showFailure);
    step();
  }

  async function loadFirmware(fw) {
    const [service, inventory] = await Promise.all([api("GET", "/redfish/v1/UpdateService"),
      api("GET", "/redfish/v1/UpdateService/FirmwareInventory?$expand=.")]);
    fw.pushUri = service.data && service.data.MultipartHttpPushUri;
    fw.body.replaceChildren(...firmwareRows(inventory.data));
    const chosen = fw.target.value;
    fw.target.replaceChildren(...targetOptions(inventory.data));
    if (chosen) fw.target.value = chosen;
  }

  // the event log: the last entries, newest first

  function logRows(doc) {
    const members = ((doc && doc.Members) || []).slice().reverse();
    return members.map((e) => el("tr", {cls: "sev-" + slug(e.Severity || "").toLowerCase()}, [
      el("td", {text: (e.Created || "").replace("T", " ").replace(/\+00:00$/, "Z")}),
      el("td", {text: e.Severity || ""}),
      el("td", {}, el("a", {href: e["@odata.id"], text: e.Message || e.MessageId || e.Id}))]));
  }

  /** ``fn`` runs once at a time: calls while it runs make one more run after it. */
  function coalesce(fn) {
    let running = null;
    let again = false;
    const run = () => {
      again = !!running;
      running = running || fn().catch(() => {}).finally(() => {
        running = null;
        if (again) run();
      });
      return running;
    };
    return run;
  }

  async function dashboard() {
    document.title = "Rack · Racklet";
    const trays = new Map();
    const plots = new Map();
    const series = new Map();
    const list = el("ol", {cls: "trays", "aria-label": "Trays, top slot first"});
    const rackPower = el("span", {id: "rack-power", text: "—"});
    const budget = el("meter", {id: "budget", min: "0", max: "1", value: "0"});
    const budgetText = el("span", {id: "budget-text", text: "—"});
    const plotBox = el("div", {cls: "plots"});
    const logBody = el("tbody");
    const fw = makeFirmware(() => loadFirmware(fw).catch(showFailure));
    const live = el("span", {text: "connecting…"});
    const mode = el("span", {id: "live-mode", text: "polling"});
    frame([el("div", {cls: "dash"}, [
      card("rack", "Rack", [
        el("p", {}, ["Rack power: ", rackPower]),
        el("p", {}, [label(budget, "Power budget "), budget, " ", budgetText]),
        list]),
      card("power", "Power over time", plotBox),
      fw.section,
      card("events", "Event log (last " + LOG_ENTRIES + ")", table(["Time", "Severity", "Message"], logBody)),
    ]), el("footer", {cls: "live", role: "status"}, ["Updates: ", mode, " · ", live])]);
    let stopped = false;
    let timer = null;
    let retry = null;
    let logCount = 0;
    let seq = 0;  // numbers requests, so an older answer never overwrites a newer one
    let order = [];
    let streaming = false;
    let wait = RETRY_MS[0];
    const aborter = new AbortController();
    stopPage = () => { stopped = true; clearTimeout(timer); clearTimeout(retry); aborter.abort(); };

    function showUnit(s, sensorDoc, n) {
      if (!trays.has(s.Id)) trays.set(s.Id, makeTray(s.Id));
      const tray = trays.get(s.Id);
      if (n < tray.seen) return;
      tray.seen = n;
      const values = readings(sensorDoc);
      updateTray(tray, s, values);
      addPoint(series, s.Id, values.PowerTime, values.Power);
    }

    function drawPlots() {
      for (const key of ["Rack", ...order]) {
        if (!series.has(key)) continue;
        if (!plots.has(key)) plotBox.append((plots.set(key, makePlot(key)).get(key)).root);
        drawPlot(plots.get(key), key, series.get(key));
      }
    }

    async function refreshLog() {
      const tail = () => api("GET", LOG_URI + "?$skip=" + Math.max(0, logCount - LOG_ENTRIES) + "&$top=" + LOG_ENTRIES);
      let page = (await tail()).data;
      const count = (page && page["Members@odata.count"]) || 0;
      if (page && count !== logCount) {  // the tail moved: ask for the last entries again
        logCount = count;
        page = (await tail()).data || page;
      }
      if (page && !stopped) logBody.replaceChildren(...logRows(page));
    }

    async function tick() {
      const n = ++seq;
      const [systems, rack, limit] = await Promise.all([
        api("GET", "/redfish/v1/Systems?$expand=."),
        api("GET", "/redfish/v1/Chassis/Rack/Sensors/Power"),
        api("GET", "/redfish/v1/Chassis/Rack/Controls/PowerLimit"), refreshLog()]);
      const units = ((systems.data && systems.data.Members) || []).filter((s) => s && s.Id);
      const slotOf = (s) => (s.Oem && s.Oem.Racklet && s.Oem.Racklet.Slot) || 0;
      units.sort((a, b) => slotOf(b) - slotOf(a));
      const sensors = await Promise.all(units.map((s) => (s.Status || {}).State === "Absent" ? null
        : api("GET", "/redfish/v1/Chassis/" + encodeURIComponent(s.Id) + "/Sensors?$expand=.")));
      if (stopped) return;
      units.forEach((s, i) => {
        showUnit(s, sensors[i] && sensors[i].data, n);
        list.append(trays.get(s.Id).root);  // keeps slot order, top slot first
      });
      order = units.map((s) => s.Id).reverse();
      const watts = rack.data && rack.data.Reading;
      rackPower.textContent = number(watts, 2, "W");
      addPoint(series, "Rack", Date.parse((rack.data && rack.data.ReadingTime) || "") || Date.now(), watts);
      const setPoint = limit.data && limit.data.SetPoint;
      if (typeof setPoint === "number" && setPoint > 0) {
        budget.max = setPoint;
        budget.high = setPoint * 0.8;
        budget.value = Math.min(typeof watts === "number" ? watts : 0, setPoint);
        budgetText.textContent = number(watts, 1, "W") + " of " + number(setPoint, 0, "W");
      }
      drawPlots();
      live.textContent = "updated " + new Date().toLocaleTimeString();
    }

    async function loop() {
      clearTimeout(timer);
      try {
        await tick();
      } catch (e) {
        if (e instanceof LoggedOut) return;
        live.textContent = "no answer from the rack (" + e + "); retrying";
      }
      if (!stopped) timer = setTimeout(kick, streaming ? SLOW_POLL_MS : POLL_MS);
    }
    const kick = coalesce(loop);
    const logSoon = coalesce(refreshLog);

    /** An event's unit, re-read now: its System and its Chassis' Sensors. */
    async function refreshUnit(id) {
      const n = ++seq;
      const uri = "/" + encodeURIComponent(id);
      const [s, sensors] = await Promise.all([api("GET", "/redfish/v1/Systems" + uri),
        api("GET", "/redfish/v1/Chassis" + uri + "/Sensors?$expand=.")]);
      if (stopped) return;
      if (!s.ok || !trays.has(id)) return kick();  // a unit the page does not show yet
      showUnit(s.data, sensors.data, n);
      drawPlots();
    }

    /** One Event from the stream: re-read what its records name. */
    function onEvent(data) {
      let all = false;
      for (const rec of (parse(data) || {}).Events || []) {
        const origin = (rec.OriginOfCondition || {})["@odata.id"] || "";
        const unit = UNIT_URI.exec(origin);
        if (/TelemetryDataCreated$/.test(rec.MessageId) && origin.endsWith("/PowerAndEnergy")) {
          api("GET", origin).then((r) => seedHistory(series, r.data, "Power")).then(drawPlots).catch(() => {});
        } else if (unit && unit[1] !== "Rack") {
          refreshUnit(decodeURIComponent(unit[1])).catch(() => {});
        } else {
          all = true;
        }
      }
      (all ? kick : logSoon)();
    }

    function setMode(on) {
      streaming = on;
      mode.textContent = on ? "live (events)" : "polling";
    }

    async function listen() {
      const service = await api("GET", "/redfish/v1/EventService");
      const uri = service.data && service.data.ServerSentEventUri;
      if (!uri) throw new Error("no stream");
      const r = await fetch(uri, {headers: {Accept: "text/event-stream", "X-Auth-Token":
        sessionStorage.getItem(TOKEN) || ""}, credentials: "omit", cache: "no-store", signal: aborter.signal});
      if (!r.ok || !r.body) throw new Error("stream: " + r.status);
      setMode(true);
      wait = RETRY_MS[0];
      kick();  // what happened before the stream opened
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";  // SSE: events end with a blank line; their data: lines hold an Event
      for (let part = await reader.read(); !part.done; part = await reader.read()) {
        const blocks = (buf + part.value).split("\n\n");
        buf = blocks.pop();
        for (const block of blocks) {
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n");
          if (data) onEvent(data);
        }
      }
    }

    /** The stream while the page lasts; when it fails or ends: poll, and retry with backoff. */
    async function follow() {
      while (!stopped) {
        await listen().catch(() => {});  // refused, unreachable or logged out
        if (stopped) return;
        setMode(false);
        kick();
        await new Promise((ok) => { retry = setTimeout(ok, wait); });
        wait = Math.min(wait * 2, RETRY_MS[1]);
      }
    }

    const history = await api("GET", "/redfish/v1/TelemetryService/MetricReports/PowerHistory");
    seedHistory(series, history.data, "PowerAverage");
    loadFirmware(fw).catch(showFailure);
    follow();
    await kick();
  }

  // -- start

  function route() {
    if (!sessionStorage.getItem(TOKEN)) return showLogin("");
    const page = location.pathname === "/" ? dashboard() : browse();
    page.catch(showFailure);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", route);
  else route();
})();
