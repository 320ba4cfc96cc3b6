// Talks to the altruist_portal example: Altruist's packets ({event, messageCode, …})
// as JSON text frames or MessagePack binary frames. The MessagePack codec below
// covers what JSON can say (nil, booleans, numbers, strings, arrays, maps with
// string keys); the server answers in the codec of the request. Packets from
// peers are untrusted, so they reach the page only through textContent.
"use strict";

const MAX_ROWS = 200;

const msgpack = (() => {
  const utf8 = new TextEncoder();
  const text = new TextDecoder("utf-8", { fatal: true });

  function encode(value) {
    const out = [];
    const bytes = (...b) => out.push(...b);
    const be = (n, len) => { for (let i = len - 1; i >= 0; i--) out.push(Math.floor(n / 2 ** (8 * i)) & 0xff); };
    const head = (small, max, codes, n) => {
      if (n <= max) bytes(small | n);
      else if (n < 0x100 && codes[0]) bytes(codes[0], n);
      else if (n < 0x10000) { bytes(codes[1]); be(n, 2); }
      else { bytes(codes[2]); be(n, 4); }
    };
    (function put(v) {
      if (v === null || v === undefined) bytes(0xc0);
      else if (v === false) bytes(0xc2);
      else if (v === true) bytes(0xc3);
      else if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 2 ** 32) {
        if (v < 0x80) bytes(v);
        else if (v < 0x100) bytes(0xcc, v);
        else if (v < 0x10000) { bytes(0xcd); be(v, 2); }
        else { bytes(0xce); be(v, 4); }
      } else if (typeof v === "number" && Number.isInteger(v) && v < 0 && v >= -(2 ** 31)) {
        if (v >= -32) bytes(v & 0xff);
        else { bytes(0xd2); be(v >>> 0, 4); }
      } else if (typeof v === "number") {
        const f = new DataView(new ArrayBuffer(8));
        f.setFloat64(0, v);
        bytes(0xcb, ...new Uint8Array(f.buffer));
      } else if (typeof v === "string") {
        const s = utf8.encode(v);
        head(0xa0, 31, [0xd9, 0xda, 0xdb], s.length);
        for (const b of s) out.push(b);
      } else if (Array.isArray(v)) {
        head(0x90, 15, [0, 0xdc, 0xdd], v.length);
        v.forEach(put);
      } else {
        const keys = Object.keys(v).filter((k) => v[k] !== undefined); // as JSON.stringify does
        head(0x80, 15, [0, 0xde, 0xdf], keys.length);
        for (const k of keys) { put(k); put(v[k]); }
      }
    })(value);
    return new Uint8Array(out);
  }

  function decode(buffer) {
    const b = new Uint8Array(buffer);
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    let at = 0;
    const need = (n) => { if (at + n > b.length) throw new Error("truncated"); const p = at; at += n; return p; };
    const uint = (len) => { const p = need(len); let n = 0; for (let i = 0; i < len; i++) n = n * 256 + b[p + i]; return n; };
    const str = (len) => { const p = need(len); return text.decode(b.subarray(p, p + len)); };
    const arr = (len) => { const a = []; for (let i = 0; i < len; i++) a.push(get()); return a; };
    const map = (len) => {
      const m = {};
      for (let i = 0; i < len; i++) {
        const k = get();
        if (typeof k !== "string") throw new Error("a map key that is not a string");
        m[k] = get();
      }
      return m;
    };
    function get() {
      const c = b[need(1)];
      if (c < 0x80) return c;
      if (c >= 0xe0) return c - 0x100;
      if (c >= 0xa0 && c <= 0xbf) return str(c & 0x1f);
      if (c >= 0x90 && c <= 0x9f) return arr(c & 0x0f);
      if (c >= 0x80 && c <= 0x8f) return map(c & 0x0f);
      switch (c) {
        case 0xc0: return null;
        case 0xc2: return false;
        case 0xc3: return true;
        case 0xc4: case 0xc5: case 0xc6: { const n = uint(1 << (c - 0xc4)); const p = need(n); return b.slice(p, p + n); }
        case 0xca: return view.getFloat32(need(4));
        case 0xcb: return view.getFloat64(need(8));
        case 0xcc: case 0xcd: case 0xce: case 0xcf: return uint(1 << (c - 0xcc));
        case 0xd0: return view.getInt8(need(1));
        case 0xd1: return view.getInt16(need(2));
        case 0xd2: return view.getInt32(need(4));
        case 0xd3: return Number(view.getBigInt64(need(8)));
        case 0xd9: case 0xda: case 0xdb: return str(uint(1 << (c - 0xd9)));
        case 0xdc: case 0xdd: return arr(uint(c === 0xdc ? 2 : 4));
        case 0xde: case 0xdf: return map(uint(c === 0xde ? 2 : 4));
      }
      throw new Error("unsupported MessagePack byte 0x" + c.toString(16));
    }
    const value = get();
    if (at !== b.length) throw new Error("bytes after the value");
    return value;
  }

  return { encode, decode };
})();

const stateEl = document.getElementById("state");
const portalEl = document.getElementById("portal");
const codecEl = document.getElementById("codec");
const codeEl = document.getElementById("code");
const textEl = document.getElementById("text");
const roomEl = document.getElementById("room");
const logEl = document.getElementById("log");
const actions = ["handshake", "chat", "join"].map((id) => document.getElementById(id));

let socket = null;
let rows = 0;

function setState(text, ok) {
  stateEl.textContent = text;
  stateEl.className = "pill " + (ok ? "ok" : "bad");
  actions.forEach((button) => { button.disabled = !ok; });
}

function addRow(way, codec, packet) {
  const tr = document.createElement("tr");
  for (const cell of [String(++rows), way, codec, packet]) {
    const td = document.createElement("td");
    td.textContent = cell;
    tr.appendChild(td);
  }
  logEl.prepend(tr);
  while (logEl.children.length > MAX_ROWS) logEl.lastChild.remove();
}

function send(packet) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const codec = codecEl.value;
  socket.send(codec === "msgpack" ? msgpack.encode(packet) : JSON.stringify(packet));
  addRow("sent", codec, JSON.stringify(packet));
}

function received(e) {
  const codec = typeof e.data === "string" ? "json" : "msgpack";
  try {
    const packet = codec === "json" ? JSON.parse(e.data) : msgpack.decode(e.data);
    addRow("received", codec, JSON.stringify(packet));
  } catch (err) {
    addRow("received", codec, "unreadable: " + err.message);
  }
}

function connect() {
  if (socket) socket.close(1000);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(scheme + "//" + location.host + portalEl.value);
  ws.binaryType = "arraybuffer";
  socket = ws;
  setState("connecting…", false);
  ws.onopen = () => setState("open on " + portalEl.value, true);
  ws.onclose = (e) => { if (socket === ws) setState("closed (" + e.code + ")", false); };
  ws.onmessage = received;
}

function code() {
  const n = Number.parseInt(codeEl.value, 10);
  return Number.isFinite(n) ? n : undefined;
}

document.getElementById("connect-form").addEventListener("submit", (e) => { e.preventDefault(); connect(); });
document.getElementById("handshake-form").addEventListener("submit", (e) => {
  e.preventDefault();
  send({ messageCode: code(), event: "handshake" });
});
document.getElementById("chat-form").addEventListener("submit", (e) => {
  e.preventDefault();
  send({ messageCode: code(), event: "chat", text: textEl.value });
});
document.getElementById("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  send({ messageCode: code(), event: "join", room: roomEl.value });
});

window.msgpack = msgpack; // for the browser test and the console
