// Talks to examples/xsockets_controllers on /xsockets: one socket with the
// XSocketsNET subprotocol (plain {t, c, d}), one with DemoProtocol (whose
// {M, J} format a translator turns into {t, c, d} for the controller demo).
// Every message sent and received is listed.
"use strict";

const logEl = document.getElementById("log");
const sockets = {};
let count = 0;

function url() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return scheme + "//" + location.host + "/xsockets";
}

function addRow(socket, direction, text) {
  const tr = document.createElement("tr");
  tr.dataset.socket = socket;
  tr.dataset.direction = direction;
  for (const c of [++count, socket, direction, text]) {
    const td = document.createElement("td");
    td.textContent = c;
    tr.appendChild(td);
  }
  logEl.appendChild(tr);
}

function open(protocol, stateId) {
  const stateEl = document.getElementById(stateId);
  const setState = (text, ok) => {
    stateEl.textContent = text;
    stateEl.className = "pill " + (ok ? "ok" : "bad");
  };
  const conn = new WebSocket(url(), protocol);
  conn.onopen = () => setState("open", true);
  conn.onmessage = (e) => addRow(protocol, "in", e.data);
  conn.onclose = (e) => {
    setState("closed (" + e.code + "), reconnecting…", false);
    setTimeout(() => open(protocol, stateId), 2000);
  };
  sockets[protocol] = conn;
}

function send(protocol, message) {
  const conn = sockets[protocol];
  if (!conn || conn.readyState !== WebSocket.OPEN) return;
  const m = JSON.stringify(message);
  addRow(protocol, "out", m);
  conn.send(m);
}

const buttons = {
  "bar-string": () => send("XSocketsNET", { t: "foo", c: "bar", d: "some message" }),
  "bar-person": () => send("XSocketsNET", { t: "foo", c: "bar", d: { name: "Steve", Age: 42 } }),
  "generic-hi": () => send("DemoProtocol", { t: "foo", c: "generic", d: "hi" }),
  "demo-mj": () => send("DemoProtocol", { M: "foo", J: "{s:'bar',i:42}" }),
};
for (const [id, fn] of Object.entries(buttons)) {
  document.getElementById(id).addEventListener("click", fn);
}

open("XSocketsNET", "state-x");
open("DemoProtocol", "state-demo");
