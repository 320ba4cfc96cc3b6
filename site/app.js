// Shows the server's status: read once from the /api/status action handler,
// then kept live by the /api/events event stream (Server-Sent Events), or by
// polling where a browser has no EventSource. The demo's handlers
// (/api/status, /api/events, /ws/echo, /ws/chat) are the `wisp` binary's: a
// program of your own that serves this folder has none of them, so a 404
// from /api/status turns the demo's cards into quiet notes instead of errors.
"use strict";

function formatUptime(secs) {
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
}

let poller = null;

// Says, in the card of `id`, that its handler is not served here.
function absent(id, path) {
  const card = document.getElementById(id);
  if (!card) return;
  card.classList.add("absent");
  const note = document.createElement("p");
  note.className = "note";
  note.textContent = "This program does not serve " + path +
    " (the wisp binary's demo handler), so this part of the demo is off.";
  card.append(note);
}

function show(status) {
  for (const dd of document.querySelectorAll("#status [data-key]")) {
    const value = status[dd.dataset.key];
    dd.textContent = dd.dataset.key === "uptime" ? formatUptime(value) : String(value);
  }
  document.getElementById("status-error").hidden = true;
}

function failed(message) {
  const error = document.getElementById("status-error");
  error.hidden = false;
  error.textContent = "The status handler did not answer: " + message;
}

// One read of /api/status; false when the demo's handlers are not there.
async function refresh() {
  try {
    const res = await fetch("/api/status", { cache: "no-store" });
    if (res.status === 404) {
      clearInterval(poller);
      document.getElementById("status").style.display = "none";
      document.getElementById("status-error").hidden = true;
      absent("status-card", "/api/status");
      absent("echo-card", "/ws/echo");
      absent("chat-card", "/ws/chat");
      return false;
    }
    if (!res.ok) throw new Error(res.status + " " + res.statusText);
    show(await res.json());
  } catch (e) {
    failed(e.message);
  }
  return true;
}

function poll() {
  if (poller === null) poller = setInterval(refresh, 2000);
}

async function start() {
  if (!(await refresh())) return;
  if (!("EventSource" in window)) return poll();
  const live = new EventSource("/api/events");
  live.onmessage = (e) => show(JSON.parse(e.data));
  // The browser reconnects by itself after a drop; only a refusal ends it.
  live.onerror = () => {
    if (live.readyState === EventSource.CLOSED) poll();
  };
}

start();
