// The duro inspector: one page over the admin API, no framework and no build step. Views by
// URL fragment (#/, #/class/C, #/object/C/ID, #/top, #/tail); data is only ever put in the page
// as text (textContent), never as markup. The admin token lives in this tab's session storage
// and travels as the Authorization header of each call.
"use strict";

const TOKEN = "duro.inspector.token";
const main = document.getElementById("main");
let tail = null; // the live tail's reader, while one runs
let view = 0; // counts navigations: a view whose data arrives late draws nothing

class Unauthorized extends Error {}

// Text as it is shown: the invisible marks that reorder text (bidirectional overrides,
// isolates, direction marks) and control characters other than newlines and tabs — anything a
// client or a guest chose may hold them — appear as \u{..} escapes, never applied.
const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const shown = (text) => String(text).replace(HIDDEN, (c) => "\\u{" + c.codePointAt(0).toString(16) + "}");

// An element: h("td", { class: "num" }, "text", child, ...). Strings become text nodes, shown.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(shown(c)));
  }
  return el;
}

function show(...nodes) {
  main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
}

// Puts a view on screen, unless another navigation began since this one (`mine`) did.
function draw(mine, ...nodes) {
  if (mine === view) show(...nodes);
}

// A call to the admin API: the parsed JSON answer (null when empty); throws with the server's
// error message, or Unauthorized (after showing the login form). A body goes as `type` (the
// admin API refuses a write as text/plain: a page of another site could send that).
async function api(method, path, body, type) {
  const token = sessionStorage.getItem(TOKEN);
  const headers = authorization();
  if (body !== undefined) headers["Content-Type"] = type;
  const response = await fetch(path, { method, headers, body });
  if (response.status === 401) {
    login(token ? "That token was refused." : null);
    throw new Unauthorized();
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) throw new Error((data && data.error) || response.status + " " + response.statusText);
  return data;
}

const enc = encodeURIComponent;
const objectPath = (cls, id) => "/classes/" + enc(cls) + "/objects/" + enc(id);

function when(ms) {
  if (ms === null || ms === undefined) return "—";
  return new Date(ms).toLocaleString();
}

function ago(ms) {
  if (!ms) return "—";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

function bytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1048576).toFixed(1) + " MiB";
}

const ms = (n) => (n === undefined || n === null ? "—" : n.toFixed(n < 10 ? 2 : 0) + " ms");
const short = (hex) => (hex ? hex.slice(0, 12) + "…" : "—");
const pill = (on, yes, no) => h("span", { class: on ? "pill" : "pill off" }, on ? yes : no);

function table(heads, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, heads.map(([text, cls]) => h("th", { class: cls }, text)))),
    h("tbody", {}, rows));
}

function failed(error, mine) {
  if (error instanceof Unauthorized) return;
  draw(mine, h("p", { class: "error" }, "Error: " + error.message), h("p", {}, h("a", { href: "#/" }, "Back to the classes")));
}

// ---- login ----

function login(message) {
  stopTail();
  document.getElementById("nav").hidden = true;
  const form = document.getElementById("login-form").content.cloneNode(true);
  show(form);
  const error = document.getElementById("login-error");
  if (message) { error.textContent = message; error.hidden = false; }
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN, document.getElementById("token").value);
    route();
  });
  document.getElementById("token").focus();
}

document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN);
  login("Logged out.");
});

// ---- views ----

async function overview() {
  const mine = view;
  const [classes, top] = await Promise.all([api("GET", "/classes"), api("GET", "/top?limit=1")]);
  let worker = null;
  try { worker = await api("GET", "/worker"); } catch (e) { if (e instanceof Unauthorized) throw e; }
  const totals = Object.fromEntries((top.classes || []).map((c) => [c.class, c]));
  const rows = classes.map((c) => {
    const t = totals[c.class] || {};
    return h("tr", {},
      h("td", {}, h("a", { href: "#/class/" + enc(c.class) }, c.class)),
      h("td", { class: "mono", title: c.sha256 }, short(c.sha256)),
      h("td", { class: "num" }, bytes(c.size)),
      h("td", {}, when(c.updated_ms)),
      h("td", { class: "num" }, t.events ?? 0),
      h("td", { class: "num" }, ms(t.cpu_ms ?? 0)));
  });
  draw(mine,
    h("h1", {}, "Classes"),
    h("div", { class: "card" }, table(
      [["Class"], ["Code (sha256)"], ["Size", "num"], ["Deployed"], ["Events", "num"], ["CPU", "num"]],
      rows, "No class is deployed.")),
    h("div", { class: "card" }, h("h2", {}, "Worker"), worker
      ? h("dl", {},
        h("dt", {}, "Code (sha256)"), h("dd", { class: "mono" }, worker.sha256),
        h("dt", {}, "Size"), h("dd", {}, bytes(worker.size)),
        h("dt", {}, "Deployed"), h("dd", {}, when(worker.updated_ms)),
        h("dt", {}, "Object routes"), h("dd", {}, worker.object_routes ? "on beside the worker" : "off"))
      : h("p", { class: "muted" }, "No worker is deployed: requests reach objects by /objects/{class}/{name}.")));
}

async function classView(cls, params) {
  const mine = view;
  const prefix = params.get("name") || "";
  const after = params.get("after");
  let query = "?limit=50";
  if (prefix) query += "&name_prefix=" + enc(prefix);
  if (after) query += "&after=" + enc(after);
  const page = await api("GET", "/classes/" + enc(cls) + "/objects" + query);
  const search = h("form", { class: "inline", id: "search" },
    h("input", { id: "name-prefix", name: "name", placeholder: "name starts with…", value: prefix }),
    h("button", { type: "submit" }, "Search"));
  search.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = document.getElementById("name-prefix").value;
    location.hash = "#/class/" + enc(cls) + (value ? "?name=" + enc(value) : "");
  });
  const rows = page.objects.map((o) => h("tr", {},
    h("td", {}, h("a", { href: "#/object/" + enc(cls) + "/" + o.id, class: "object" }, o.name ?? "(no name)")),
    h("td", { class: "mono", title: o.id }, short(o.id)),
    h("td", { class: "num" }, o.keys),
    h("td", { class: "num" }, bytes(o.bytes + (o.sql_bytes || 0))),
    h("td", {}, o.alarm_ms ? when(o.alarm_ms) : "—"),
    h("td", { class: "num" }, o.websockets),
    h("td", {}, pill(o.active, "active", "stored")),
    h("td", {}, ago(o.last_event_ms))));
  const more = page.next
    ? h("p", {}, h("a", { href: "#/class/" + enc(cls) + "?" + new URLSearchParams({ ...(prefix ? { name: prefix } : {}), after: page.next }) }, "Next page →"))
    : null;
  draw(mine,
    h("h1", {}, cls),
    h("div", { class: "card" }, search, table(
      [["Name"], ["Id"], ["Keys", "num"], ["Stored", "num"], ["Alarm"], ["Sockets", "num"], ["State"], ["Last event"]],
      rows, prefix ? "No object's name starts with “" + prefix + "”." : "No object of this class has stored anything."), more));
}

async function objectView(cls, id) {
  const mine = view;
  const path = objectPath(cls, id);
  const [o, sql] = await Promise.all([api("GET", path + "?limit=200"), api("GET", path + "/sql")]);
  const refresh = () => objectView(cls, id).catch((e) => failed(e, mine));
  const act = (promise) => promise.then(refresh).catch((e) => { if (!(e instanceof Unauthorized)) alert(e.message); });

  const summary = h("div", { class: "card" }, h("dl", {},
    h("dt", {}, "Class"), h("dd", {}, h("a", { href: "#/class/" + enc(cls) }, cls)),
    h("dt", {}, "Name"), h("dd", { id: "object-name" }, o.name ?? "(no name stored)"),
    h("dt", {}, "Id"), h("dd", { class: "mono" }, o.id),
    h("dt", {}, "State"), h("dd", {}, pill(o.active, o.in_memory ? "active, in memory" : "active, no instance in memory", "stored only")),
    h("dt", {}, "Last event"), h("dd", {}, ago(o.last_event_ms))),
  h("form", { class: "inline" },
    h("a", { href: "#/tail?" + new URLSearchParams({ class: cls, object: o.id }) }, "Tail this object"),
    h("button", { type: "button", onclick: () => download(path, o) }, "Export"),
    h("button", { type: "button", class: "danger", onclick: () => confirm("Delete everything this object stores?") && act(api("DELETE", path)) }, "Wipe")));

  const alarmInput = h("input", { type: "datetime-local", step: "1", id: "alarm-at" });
  const alarm = h("div", { class: "card" }, h("h2", {}, "Alarm"),
    h("p", { id: "alarm" }, o.alarm_ms ? when(o.alarm_ms) : "No alarm is set."),
    h("form", { class: "inline", onsubmit: (event) => {
      event.preventDefault();
      const at = new Date(alarmInput.value).getTime();
      if (Number.isNaN(at)) return alert("Pick a date and time.");
      act(api("PUT", path + "/alarm", JSON.stringify({ at_ms: at }), "application/json"));
    } }, alarmInput, h("button", { type: "submit" }, "Set"),
    o.alarm_ms ? h("button", { type: "button", onclick: () => act(api("DELETE", path + "/alarm")) }, "Delete") : null));

  const sockets = h("div", { class: "card" }, h("h2", {}, "WebSockets"), table([["Id"], ["Tags"], [""]],
    o.sockets.map((s) => h("tr", {}, h("td", { class: "mono" }, s.id), h("td", {}, s.tags.join(", ") || "—"),
      h("td", {}, h("button", { type: "button", onclick: () => act(api("DELETE", path + "/websockets/" + s.id)) }, "Close")))),
    "No open WebSocket."));

  const u = o.usage;
  const usage = h("div", { class: "card" }, h("h2", {}, "Metering (since this node started)"), u
    ? h("dl", {},
      h("dt", {}, "Events"), h("dd", {}, u.events),
      h("dt", {}, "Wall time"), h("dd", {}, ms(u.wall_ms)),
      h("dt", {}, "CPU time"), h("dd", {}, ms(u.cpu_ms)),
      h("dt", {}, "Gate wait"), h("dd", {}, ms(u.gate_ms)),
      h("dt", {}, "Read / written"), h("dd", {}, bytes(u.read_bytes) + " / " + bytes(u.written_bytes)),
      h("dt", {}, "Peak memory"), h("dd", {}, bytes(u.peak_memory_bytes)))
    : h("p", { class: "muted" }, "No event since this node started."));

  const entries = h("div", { class: "card" }, h("h2", {}, "Storage"),
    table([["Key"], ["Value"], [""]], o.entries.map((e) => entryRow(path, e, act)), "Nothing is stored."),
    o.next ? h("p", { class: "muted" }, "Showing the first " + o.entries.length + " keys.") : null,
    addForm(path, act));

  const tables = sql.tables.length
    ? h("div", { class: "card" }, h("h2", {}, "SQL (read-only, " + bytes(sql.size) + ")"),
      ...sql.tables.map((t) => h("details", {}, h("summary", {}, t.name + " — " + t.rows + " rows"),
        h("pre", { class: "mono" }, t.sql), h("div", { class: "sql-rows", "data-table": t.name }))))
    : null;
  if (tables) {
    for (const d of tables.querySelectorAll("details")) {
      d.addEventListener("toggle", () => d.open && sqlRows(path, d.querySelector(".sql-rows")), { once: true });
    }
  }
  draw(mine, h("h1", {}, (o.name ?? short(o.id))),
    h("div", { class: "row" }, summary, alarm), entries, tables, h("div", { class: "row" }, usage, sockets));
}

// The admin route of one entry: the key as one path segment (its "/" encoded). A key that is
// only "." or ".." cannot travel in a URL path (the browser resolves it): null.
function entryPath(path, key) {
  return key === "." || key === ".." ? null : path + "/entries/" + enc(key);
}

function shownValue(e) {
  return "value" in e ? JSON.stringify(e.value, null, 1) : "hex: " + e.hex;
}

function entryRow(path, e, act) {
  const key = entryPath(path, e.key);
  const cell = h("td", { class: "value" }, shownValue(e));
  const edit = h("button", { type: "button", class: "edit", disabled: !key }, "Edit");
  const remove = h("button", { type: "button", class: "danger", disabled: !key, onclick: () => confirm("Delete " + e.key + "?") && act(api("DELETE", key)) }, "Delete");
  const row = h("tr", { "data-key": e.key }, h("td", { class: "mono" }, e.key), cell, h("td", {}, edit, " ", remove));
  edit.addEventListener("click", () => {
    const text = h("textarea", { class: "edit-value" }, "value" in e ? JSON.stringify(e.value) : "");
    const form = h("form", { class: "save" }, text,
      h("p", { class: "muted" }, "Stored as typed: JSON stays JSON, anything else is stored as its bytes."),
      h("button", { type: "submit", class: "primary" }, "Save"), " ",
      h("button", { type: "button", onclick: () => cell.replaceChildren(shownValue(e)) }, "Cancel"));
    form.addEventListener("submit", (event) => { event.preventDefault(); act(api("PUT", key, text.value, "application/octet-stream")); });
    cell.replaceChildren(form);
    text.focus();
  });
  return row;
}

function addForm(path, act) {
  const key = h("input", { placeholder: "key", required: true, id: "new-key" });
  const value = h("input", { placeholder: "value (JSON)", required: true, id: "new-value" });
  const form = h("form", { class: "inline" }, key, value, h("button", { type: "submit" }, "Put"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const entry = entryPath(path, key.value);
    if (!entry) return alert("A key of only . or .. cannot be put from a web page.");
    act(api("PUT", entry, value.value, "application/octet-stream"));
  });
  return form;
}

async function sqlRows(path, into) {
  try {
    const page = await api("GET", path + "/sql?limit=100&table=" + enc(into.dataset.table));
    const cell = (v) => h("td", { class: "value" }, v !== null && typeof v === "object" ? "hex: " + v.hex : String(v));
    into.replaceChildren(table(page.columns.map((c) => [c]), page.rows.map((r) => h("tr", {}, r.map(cell))), "No rows."));
  } catch (e) {
    if (!(e instanceof Unauthorized)) into.replaceChildren(h("p", { class: "error" }, e.message));
  }
}

// The headers of a call that reads a body as it comes (the export, the tail), outside api().
function authorization() {
  const token = sessionStorage.getItem(TOKEN);
  return token ? { Authorization: "Bearer " + token } : {};
}

async function download(path, o) {
  try {
    const response = await fetch(path + "/export", { headers: authorization() });
    if (response.status === 401) return login("That token was refused.");
    if (!response.ok) throw new Error("the export answered " + response.status);
    const link = h("a", { href: URL.createObjectURL(await response.blob()), download: (o.name || o.id) + ".jsonl" });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  } catch (e) {
    alert("Export failed: " + e.message);
  }
}

async function topView(params) {
  const mine = view;
  const by = params.get("by") || "cpu";
  const top = await api("GET", "/top?limit=50&by=" + enc(by));
  const select = h("select", { id: "top-by" }, ["cpu", "wall", "requests", "storage"].map((b) => h("option", { value: b, selected: b === by }, b)));
  select.addEventListener("change", () => { location.hash = "#/top?by=" + select.value; });
  const rows = top.objects.map((o) => h("tr", {},
    h("td", {}, o.class),
    h("td", {}, h("a", { href: "#/object/" + enc(o.class) + "/" + o.id }, o.name ?? short(o.id))),
    h("td", { class: "num" }, o.events), h("td", { class: "num" }, ms(o.cpu_ms)), h("td", { class: "num" }, ms(o.wall_ms)),
    h("td", { class: "num" }, ms(o.gate_ms)), h("td", { class: "num" }, bytes(o.read_bytes)), h("td", { class: "num" }, bytes(o.written_bytes)),
    h("td", { class: "num" }, bytes(o.peak_memory_bytes))));
  draw(mine, h("h1", {}, "Costliest objects"), h("div", { class: "card" },
    h("form", { class: "inline" }, h("label", {}, "by ", select)),
    table([["Class"], ["Object"], ["Events", "num"], ["CPU", "num"], ["Wall", "num"], ["Gate wait", "num"], ["Read", "num"], ["Written", "num"], ["Peak memory", "num"]],
      rows, "No object has run an event since this node started.")));
}

function tailView(params) {
  const mine = view;
  const cls = h("input", { id: "tail-class", placeholder: "class", value: params.get("class") || "" });
  const object = h("input", { id: "tail-object", placeholder: "object name or id", value: params.get("object") || "" });
  const state = h("span", { id: "tail-state", class: "muted" });
  const lines = h("div", { id: "tail-lines" });
  const form = h("form", { class: "inline" }, cls, object, h("button", { type: "submit" }, "Follow"), state);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    if (cls.value) q.set("class", cls.value);
    if (object.value) q.set("object", object.value);
    location.hash = "#/tail" + (q.size ? "?" + q : "");
  });
  draw(mine, h("h1", {}, "Live tail"), h("div", { class: "card" }, form, lines));
  const query = new URLSearchParams();
  for (const k of ["class", "object"]) if (params.get(k)) query.set(k, params.get(k));
  followTail("/tail" + (query.size ? "?" + query : ""), lines, state);
}

function tailLine(event) {
  const time = new Date(event.time_ms).toLocaleTimeString();
  const who = [event.class, event.object].filter(Boolean).join("/");
  if (event.kind === "log") return h("div", { class: "log" }, time + " " + who + " " + (event.what || "") + ": " + event.message);
  const parts = [event.what, event.status, event.ms !== undefined ? ms(event.ms) : null].filter((x) => x !== undefined && x !== null);
  return h("div", {}, time + " ", h("span", { class: "k" }, event.kind), " " + who + " " + parts.join(" "));
}

// Reads the server-sent events of /tail with fetch (EventSource cannot send the token header).
async function followTail(url, lines, state) {
  stopTail();
  const controller = new AbortController();
  tail = controller;
  try {
    const response = await fetch(url, { headers: authorization(), signal: controller.signal });
    if (response.status === 401) return login("That token was refused.");
    if (!response.ok) throw new Error("the tail answered " + response.status);
    state.textContent = "following";
    state.className = "ok";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = message.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (!data) continue;
        const line = message.startsWith("event: missed") ? h("div", { class: "muted" }, "(" + data + " events missed)") : tailLine(JSON.parse(data));
        const atBottom = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 4;
        lines.append(line);
        while (lines.childElementCount > 500) lines.firstElementChild.remove();
        if (atBottom) lines.scrollTop = lines.scrollHeight;
      }
    }
    state.textContent = "ended";
  } catch (e) {
    if (e.name !== "AbortError") { state.textContent = e.message; state.className = "error"; }
  }
}

function stopTail() {
  if (tail) { tail.abort(); tail = null; }
}

// ---- routing ----

async function route() {
  stopTail();
  const mine = ++view;
  const [path, query] = location.hash.slice(1).split("?");
  try {
    const params = new URLSearchParams(query || "");
    const parts = (path || "/").split("/").filter(Boolean).map(decodeURIComponent);
    // Any call proves the token (or that the server needs none) before the nav shows.
    if (document.getElementById("nav").hidden) await api("GET", "/classes");
    document.getElementById("nav").hidden = false;
    // A server without a token has nothing to log out of.
    document.getElementById("logout").hidden = !sessionStorage.getItem(TOKEN);
    if (parts[0] === "class" && parts[1]) await classView(parts[1], params);
    else if (parts[0] === "object" && parts[2]) await objectView(parts[1], parts[2]);
    else if (parts[0] === "top") await topView(params);
    else if (parts[0] === "tail") tailView(params);
    else await overview();
    // When the first view with data is on screen (read by scripts/bench-inspector).
    if (!performance.getEntriesByName("duro:first-view").length) performance.mark("duro:first-view");
  } catch (error) {
    failed(error, mine);
  }
}

window.addEventListener("hashchange", route);
route();
