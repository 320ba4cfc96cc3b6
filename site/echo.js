// Talks to the /ws/echo handler: sends text or binary, times each round trip,
// and checks the echo is byte-for-byte what was sent.
"use strict";

const stateEl = document.getElementById("state");
const logEl = document.getElementById("log");
const pending = [];   // messages in flight, answered in order
let socket, count = 0;

function setState(text, ok) {
  stateEl.textContent = text;
  stateEl.className = "pill " + (ok ? "ok" : "bad");
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(scheme + "//" + location.host + "/ws/echo");
  socket.binaryType = "arraybuffer";
  socket.onopen = () => setState("open", true);
  socket.onclose = (e) => {
    setState("closed (" + e.code + "), reconnecting…", false);
    pending.length = 0;
    setTimeout(connect, 1000);
  };
  socket.onmessage = (e) => {
    const sent = pending.shift();
    if (!sent) return;
    const ms = performance.now() - sent.at;
    const same = typeof e.data === "string"
      ? e.data === sent.data
      : equalBytes(new Uint8Array(e.data), sent.data);
    addRow(sent, ms, same);
  };
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function addRow(sent, ms, same) {
  const tr = document.createElement("tr");
  const cells = [++count, sent.kind, sent.bytes, ms.toFixed(2) + " ms", same ? "identical" : "DIFFERENT"];
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c;
    tr.appendChild(td);
  }
  tr.lastChild.className = same ? "ok" : "bad";
  logEl.prepend(tr);
  while (logEl.children.length > 50) logEl.lastChild.remove();
}

function send(kind, data, bytes) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  pending.push({ kind, data, bytes, at: performance.now() });
  socket.send(data);
}

document.getElementById("text-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = document.getElementById("text").value;
  send("text", text, new TextEncoder().encode(text).length);
});

document.getElementById("binary-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const size = Number(document.getElementById("size").value);
  const data = new Uint8Array(size);
  crypto.getRandomValues(data.subarray(0, Math.min(size, 65536)));
  send("binary", data, size);
});

connect();
