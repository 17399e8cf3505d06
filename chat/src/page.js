// The pawl chat page: one WebSocket to /chat?room=NAME speaking the JSON
// protocol of issue 3. Reconnects with exponential backoff and asks with
// `since` for only what it missed.
"use strict";

const $ = (id) => document.getElementById(id);
const room = new URLSearchParams(location.search).get("room") || "lobby";
const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
  "/chat?room=" + encodeURIComponent(room);
const storeKey = "pawl.chat." + room;
const SWATCHES = ["#e91e63", "#9c27b0", "#3f51b5", "#0288d1", "#00897b", "#43a047", "#f57c00", "#6d4c41"];
const HISTORY_PAGE = 50;

let ws = null;
let attempt = 0;
let retryTimer = null;
let me = null;               // {name, profile} once welcomed
let saved = load();          // {name, token, profile} from an earlier visit
let lastId = 0;              // highest message or DM id seen
let pendingJoin = null;      // a join to send once the socket is open
let editing = false;         // the dialog edits the profile, not a join
let current = "public";      // the open conversation
const online = new Map();    // name -> user
const profiles = new Map();  // name -> profile, of anyone seen
const convs = new Map();     // key -> {items: [], unread: 0}
let systemSeq = 0;
let historyDone = false;

function load() {
  try { return JSON.parse(localStorage.getItem(storeKey)) || null; } catch (e) { return null; }
}
function save() {
  try { localStorage.setItem(storeKey, JSON.stringify(saved)); } catch (e) { /* private mode */ }
}
function validColor(c) {
  return typeof c === "string" && /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(c) ? c : "#3f51b5";
}
function colorOf(name) {
  const p = profiles.get(name);
  return validColor(p && p.color);
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function avatar(name) {
  const a = el("div", "avatar", (name || "?").slice(0, 1).toUpperCase());
  a.style.background = colorOf(name);
  return a;
}
function toast(text, kind) {
  const t = el("div", "toast" + (kind ? " " + kind : ""), text);
  $("toasts").appendChild(t);
  setTimeout(() => t.remove(), 4000);
}

// ---- connection -----------------------------------------------------------

function setState(state, text) {
  $("state").dataset.state = state;
  document.body.dataset.conn = state;
  $("state-text").textContent = text;
  const open = state === "online" && me !== null;
  $("input").disabled = !open;
  $("send").disabled = !open;
}

function connect() {
  clearTimeout(retryTimer);
  setState("connecting", attempt ? "reconnecting…" : "connecting…");
  ws = new WebSocket(wsUrl);
  ws.onopen = () => {
    attempt = 0;
    setState("online", "connected");
    // What the browser and the server agreed on, e.g. permessage-deflate:
    // shown on hover over the connection state.
    document.body.dataset.extensions = ws.extensions;
    $("state").title = ws.extensions ? "extensions: " + ws.extensions : "no extensions";
    if (me && saved) {
      // A reconnect: the same name with its token, only what was missed.
      pendingJoin = joinMessage(me.name, me.profile);
    } else if (!pendingJoin && saved && saved.token) {
      pendingJoin = joinMessage(saved.name, saved.profile);
    }
    if (pendingJoin) send(pendingJoin);
  };
  ws.onmessage = (event) => {
    let msg;
    try { msg = JSON.parse(event.data); } catch (e) { return; }
    receive(msg);
  };
  ws.onerror = () => { /* onclose follows and schedules the retry */ };
  ws.onclose = () => {
    ws = null;
    const delay = Math.min(15000, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
    attempt += 1;
    setState("offline", "offline, retrying in " + Math.ceil(delay / 1000) + "s");
    retryTimer = setTimeout(connect, delay);
  };
}

function send(obj) {
  if (ws && ws.readyState === 1) {
    ws.send(JSON.stringify(obj));
    return true;
  }
  toast("Not connected; it will reconnect by itself.", "error");
  return false;
}

function joinMessage(name, profile) {
  const msg = { type: "join", name: name, profile: profile };
  if (saved && saved.name === name && saved.token) msg.token = saved.token;
  if (lastId > 0) msg.since = lastId;
  return msg;
}

// ---- server messages --------------------------------------------------------

function receive(msg) {
  switch (msg.type) {
    case "welcome": {
      pendingJoin = null;
      const restarted = typeof msg.last_id === "number" && lastId > msg.last_id;
      if (restarted) {
        // The server's history restarted (no store): start over from its.
        convs.clear();
        lastId = 0;
        historyDone = false;
        me = null;
      }
      const fresh = me === null;
      me = msg.you;
      saved = { name: me.name, token: msg.token, profile: me.profile };
      save();
      online.clear();
      for (const u of msg.users) { online.set(u.name, u); profiles.set(u.name, u.profile); }
      profiles.set(me.name, me.profile);
      for (const m of msg.backlog) addMessage("public", m);
      for (const d of msg.dms) addDm(d, false);
      if (fresh) historyDone = msg.backlog.length === 0 || msg.backlog[0].id <= 1;
      if (restarted) addSystem("The server restarted without its backlog; earlier messages are gone.");
      $("join-overlay").hidden = true;
      setState("online", "connected as " + me.name);
      renderAll();
      $("input").focus();
      break;
    }
    case "joined":
      online.set(msg.user.name, msg.user);
      profiles.set(msg.user.name, msg.user.profile);
      addSystem(msg.user.name + " joined");
      renderAll();
      break;
    case "left":
      online.delete(msg.name);
      addSystem(msg.name + " left");
      renderAll();
      break;
    case "profile":
      profiles.set(msg.user.name, msg.user.profile);
      if (online.has(msg.user.name)) online.set(msg.user.name, msg.user);
      if (me && msg.user.name === me.name) {
        me = msg.user;
        saved.profile = me.profile;
        save();
      }
      renderAll();
      break;
    case "message":
      addMessage("public", msg);
      bump("public");
      renderAll();
      break;
    case "dm":
      addDm(msg, true);
      renderAll();
      break;
    case "history":
      for (const m of msg.messages) addMessage("public", m);
      if (msg.messages.length < HISTORY_PAGE) historyDone = true;
      renderMessages(false);
      break;
    case "error":
      // name_taken after a welcome: the name was taken while the server
      // could not check it (Redis unreachable), and it was someone else's.
      if (msg.code === "name_taken" || (!me && msg.code === "bad_request")) {
        if (me) { me = null; setState("online", "connected; the name was someone else's"); }
        pendingJoin = null;
        if (msg.code === "name_taken" && saved) { saved.token = null; save(); }
        showDialog(msg.message);
      } else {
        toast(msg.message, "error");
      }
      break;
  }
}

function conv(key) {
  if (!convs.has(key)) convs.set(key, { items: [], unread: 0 });
  return convs.get(key);
}

// Items stay sorted by id; a system line sorts right after the newest seen.
function insert(items, item) {
  if (items.some((i) => i.id === item.id && !i.system)) return false;
  let at = items.length;
  while (at > 0 && items[at - 1].id > item.id) at -= 1;
  items.splice(at, 0, item);
  return true;
}

function addMessage(key, m) {
  lastId = Math.max(lastId, m.id);
  insert(conv(key).items, m);
}

function addDm(d, live) {
  lastId = Math.max(lastId, d.id);
  const other = me && d.from === me.name ? d.to : d.from;
  const key = "dm:" + other;
  if (insert(conv(key).items, Object.assign({ dm: true }, d)) && live && d.from !== me.name) bump(key);
}

function addSystem(text) {
  systemSeq += 1;
  insert(conv("public").items, { id: lastId + 0.5, system: true, text: text, seq: systemSeq });
}

function bump(key) {
  if (key !== current || document.hidden) conv(key).unread += 1;
}

// ---- rendering ---------------------------------------------------------------

function renderAll() {
  renderMe();
  renderSidebar();
  renderMessages(true);
}

function renderMe() {
  if (!me) return;
  $("me").hidden = false;
  $("me-avatar").replaceWith(Object.assign(avatar(me.name), { id: "me-avatar" }));
  $("me-name").textContent = me.name;
  $("me-status").textContent = me.profile.status || "no status";
}

function renderSidebar() {
  const list = $("convs");
  list.replaceChildren();
  const keys = ["public"].concat([...convs.keys()].filter((k) => k.startsWith("dm:")).sort());
  for (const key of keys) {
    const li = el("li", key === current ? "active" : "");
    li.dataset.conv = key;
    if (key === "public") {
      li.append(el("span", "conv-icon", "#"), el("span", "who name", room));
    } else {
      const name = key.slice(3);
      li.append(avatar(name), el("span", "who name", name));
    }
    const unread = conv(key).unread;
    if (unread) li.append(el("span", "badge", String(unread)));
    clickable(li, () => open(key));
    list.append(li);
  }
  const users = $("users");
  users.replaceChildren();
  const names = [...online.keys()].sort();
  $("online-count").textContent = String(names.length);
  for (const name of names) {
    const user = online.get(name);
    const li = el("li", "user" + (current === "dm:" + name ? " active" : ""));
    li.dataset.name = name;
    li.title = me && name === me.name ? "You" : "Message " + name;
    const who = el("div", "who");
    who.append(el("div", "name", name + (me && name === me.name ? " (you)" : "")),
      el("div", "status", user.profile.status || ""));
    li.append(avatar(name), who);
    clickable(li, () => open("dm:" + name));
    users.append(li);
  }
  let unread = 0;
  for (const c of convs.values()) unread += c.unread;
  document.title = (unread ? "(" + unread + ") " : "") + "pawl chat · #" + room;
}

// Mouse and keyboard alike: Tab to an entry, Enter or Space opens it.
function clickable(li, action) {
  li.tabIndex = 0;
  li.onclick = action;
  li.onkeydown = (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      action();
    }
  };
}

function open(key) {
  current = key;
  conv(key).unread = 0;
  const dm = key.startsWith("dm:");
  const name = key.slice(3);
  $("conv-title").textContent = dm ? "@ " + name : "# " + room;
  const p = profiles.get(name);
  $("conv-sub").textContent = dm
    ? (online.has(name) ? "online" : "offline — they get it when they are back") + (p && p.status ? " · " + p.status : "")
    : "Everyone in the room";
  $("input").placeholder = (dm ? "Message @" + name : "Message # " + room) +
    " — Enter sends, Shift+Enter for a new line";
  renderSidebar();
  renderMessages(true);
  $("input").focus();
}

function renderMessages(stick) {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const list = $("list");
  list.replaceChildren();
  const items = conv(current).items;
  $("older").hidden = current !== "public" || historyDone || items.length === 0;
  if (items.length === 0) {
    list.append(el("li", "empty", current === "public" ? "No messages yet. Say hi!" : "No messages yet."));
  }
  for (const m of items) {
    if (m.system) { list.append(el("li", "system", m.text)); continue; }
    const li = el("li", "msg" + (m.dm ? " dm" : "") + (me && m.from === me.name ? " mine" : ""));
    li.dataset.id = String(m.id);
    const body = el("div", "body");
    const meta = el("div", "meta");
    const from = el("span", "from", m.from);
    from.style.color = colorOf(m.from);
    meta.append(from, el("span", "time", new Date(m.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
    if (m.dm && me && m.from === me.name) meta.append(el("span", "time", "to " + m.to));
    body.append(meta, el("div", "text", m.text));
    li.append(avatar(m.from), body);
    list.append(li);
  }
  if (stick && atBottom) box.scrollTop = box.scrollHeight;
}

// ---- the join / profile dialog -----------------------------------------------

function showDialog(errorText) {
  const profile = (me && me.profile) || (saved && saved.profile) || {};
  $("name").value = (me && me.name) || (saved && saved.name) || "";
  $("name").disabled = editing;
  $("status").value = profile.status || "";
  pickColor(validColor(profile.color || SWATCHES[Math.floor(Math.random() * SWATCHES.length)]));
  $("join").textContent = editing ? "Save" : "Join";
  $("join-form").querySelector("h1").textContent = editing ? "Your profile" : "Join #" + room;
  $("join-cancel").hidden = !editing;
  $("join-error").hidden = !errorText;
  $("join-error").textContent = errorText || "";
  $("join-overlay").hidden = false;
  (editing ? $("status") : $("name")).focus();
}

function pickColor(c) {
  $("color").value = c.length === 4 ? "#" + c[1] + c[1] + c[2] + c[2] + c[3] + c[3] : c;
  for (const s of $("swatches").children) s.classList.toggle("picked", s.dataset.color === c);
}

for (const c of SWATCHES) {
  const s = el("span", "swatch");
  s.style.background = c;
  s.dataset.color = c;
  s.onclick = () => pickColor(c);
  $("swatches").append(s);
}
$("color").oninput = () => pickColor($("color").value);

$("join-form").onsubmit = (event) => {
  event.preventDefault();
  const profile = { color: $("color").value, status: $("status").value.trim() };
  if (editing) {
    if (send({ type: "profile", profile: profile })) {
      editing = false;
      $("join-overlay").hidden = true;
    }
    return;
  }
  const name = $("name").value.trim();
  if (!name) return;
  pendingJoin = joinMessage(name, profile);
  $("join-error").hidden = true;
  if (ws && ws.readyState === 1) send(pendingJoin);
};
$("join-cancel").onclick = () => { editing = false; $("join-overlay").hidden = true; };
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && editing) $("join-cancel").click();
});
$("edit-profile").onclick = () => { editing = true; showDialog(); };

// ---- composing -------------------------------------------------------------------

$("composer").onsubmit = (event) => {
  event.preventDefault();
  const text = $("input").value.trim();
  if (!text || !me) return;
  const msg = current === "public"
    ? { type: "say", text: text }
    : { type: "dm", to: current.slice(3), text: text };
  if (send(msg)) {
    $("input").value = "";
    grow();
  }
};
$("input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
function grow() {
  const input = $("input");
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight + 2, 160) + "px";
  input.style.overflowY = input.scrollHeight > 160 ? "auto" : "hidden";
}
$("input").addEventListener("input", grow);
$("older").onclick = () => {
  const first = conv("public").items.find((i) => !i.system);
  if (first) send({ type: "history", before: first.id, limit: HISTORY_PAGE });
};
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) { conv(current).unread = 0; renderSidebar(); }
});

$("room-label").textContent = "# " + room;
open("public");
if (!(saved && saved.token)) showDialog();
else $("join-overlay").hidden = true;
connect();
