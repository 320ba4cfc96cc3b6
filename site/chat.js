// Talks to the /ws/chat handler: joins one room at a time, keeps its member
// list current from "joined"/"presence" events and shows what is said there.
// Peer names and texts are untrusted, so they only ever reach the page through
// textContent.
"use strict";

const MAX_LINES = 200;   // older lines are dropped so a long session stays light

const stateEl = document.getElementById("state");
const roomLabelEl = document.getElementById("room-label");
const nameEl = document.getElementById("name");
const roomEl = document.getElementById("room");
const leaveEl = document.getElementById("leave");
const textEl = document.getElementById("text");
const sendEl = document.getElementById("send");
const membersEl = document.getElementById("members");
const messagesEl = document.getElementById("messages");

let socket;
let wanted = null;    // {name, room} the user asked for; re-joined after a reconnect
let current = null;   // {name, room} the server has confirmed with "joined"
let members = [];     // names in the current room; a list, as names need not be unique

function setState(text, ok) {
  stateEl.textContent = text;
  stateEl.className = "pill " + (ok ? "ok" : "bad");
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(scheme + "//" + location.host + "/ws/chat");
  socket.onopen = () => {
    setState("open", true);
    if (wanted) send({ event: "join", room: wanted.room, name: wanted.name });
  };
  socket.onclose = (e) => {
    setState("closed (" + e.code + "), reconnecting…", false);
    // Only announce the loss once: while the server stays down, retries close again every second.
    if (current) addLine("presence", "Connection lost; will re-join " + current.room + " when it is back.");
    setCurrent(null);
    setTimeout(connect, 1000);
  };
  socket.onmessage = (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      addLine("error", "Unreadable message from the server.");
      return;
    }
    if (msg && typeof msg === "object") handle(msg);
  };
}

function send(msg) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(msg));
  return true;
}

function handle(msg) {
  switch (msg.event) {
    case "joined": onJoined(msg); break;
    case "presence": onPresence(msg); break;
    case "said": onSaid(msg); break;
    case "error": addLine("error", "Error: " + String(msg.error ?? "unknown")); break;
    default: break;   // unknown events are for newer pages; ignore rather than alarm
  }
}

function onJoined(msg) {
  if (!wanted || msg.room !== wanted.room) {
    // A join the user has since abandoned: step back out so the server agrees with the page.
    send({ event: "leave", room: msg.room });
    return;
  }
  setCurrent({ name: wanted.name, room: wanted.room });
  members = Array.isArray(msg.members) ? msg.members.map(String) : [];
  renderMembers();
  addLine("presence", "You joined " + current.room + " as " + current.name + ".");
  // Ready to talk; but don't pull focus from someone editing the name or room.
  if (document.activeElement !== nameEl && document.activeElement !== roomEl) textEl.focus();
}

function onPresence(msg) {
  if (!inCurrentRoom(msg)) return;
  const name = String(msg.name);
  if (msg.joined) {
    members.push(name);
  } else {
    const at = members.indexOf(name);
    if (at >= 0) members.splice(at, 1);
  }
  renderMembers();
  addLine("presence", name + (msg.joined ? " joined." : " left."));
}

function onSaid(msg) {
  if (!inCurrentRoom(msg)) return;
  const from = String(msg.from);
  // The protocol has no sender ids, so a namesake's lines look like ours too.
  const mine = from === current.name;
  const line = addLine("said", "");
  if (mine) line.classList.add("mine");
  line.append(span("from", from), span("text", String(msg.text)));
}

function inCurrentRoom(msg) {
  return current !== null && msg.room === current.room;
}

// Confirmed room changes go through here so the controls never disagree with it.
function setCurrent(value) {
  current = value;
  if (!current) {
    members = [];
    renderMembers();
  }
  roomLabelEl.textContent = current ? current.room : wanted ? "joining " + wanted.room + "…" : "not joined";
  roomLabelEl.className = "pill" + (current ? " ok" : "");
  leaveEl.disabled = !wanted;
  textEl.disabled = sendEl.disabled = !current;
}

function renderMembers() {
  const me = current ? members.indexOf(current.name) : -1;
  membersEl.replaceChildren(...members.map((name, i) => {
    const li = document.createElement("li");
    li.textContent = name;
    if (i === me) li.className = "me";
    return li;
  }));
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

function addLine(kind, text) {
  // Follow new lines only if the reader is already at the bottom, not scrolled back.
  const atBottom = messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 24;
  const li = document.createElement("li");
  li.dataset.kind = kind;
  li.textContent = text;
  messagesEl.appendChild(li);
  while (messagesEl.children.length > MAX_LINES) messagesEl.firstChild.remove();
  if (atBottom) messagesEl.scrollTop = messagesEl.scrollHeight;
  return li;
}

function defaultName() {
  return "guest-" + String(Math.floor(Math.random() * 1000)).padStart(3, "0");
}

function join() {
  const name = nameEl.value.trim() || defaultName();
  const room = roomEl.value.trim() || "lobby";
  nameEl.value = name;
  roomEl.value = room;
  if (current && current.name === name && current.room === room) return;
  if (current) leave();
  wanted = { name, room };
  setCurrent(null);
  // When the socket is not open yet, onopen sends the join for us.
  send({ event: "join", room, name });
}

function leave() {
  if (current) {
    send({ event: "leave", room: current.room });
    addLine("presence", "You left " + current.room + ".");
  }
  wanted = null;
  setCurrent(null);
}

document.getElementById("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  join();
});

leaveEl.addEventListener("click", leave);

// A form, so Enter in the text box sends just like the button.
document.getElementById("say-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = textEl.value;
  if (!current || text.trim() === "") return;
  // No local echo: the server's "said" comes back to us too, and shows it was delivered.
  if (send({ event: "say", room: current.room, text })) textEl.value = "";
});

nameEl.value = defaultName();
setCurrent(null);
connect();
