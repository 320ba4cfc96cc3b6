// Polls the /api/status action handler and shows what it says. The demo's
// handlers (/api/status, /ws/echo, /ws/chat) are the `wisp` binary's: a
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

async function refresh() {
  const error = document.getElementById("status-error");
  try {
    const res = await fetch("/api/status", { cache: "no-store" });
    if (res.status === 404) {
      clearInterval(poller);
      document.getElementById("status").style.display = "none";
      error.hidden = true;
      absent("status-card", "/api/status");
      absent("echo-card", "/ws/echo");
      absent("chat-card", "/ws/chat");
      return;
    }
    if (!res.ok) throw new Error(res.status + " " + res.statusText);
    const status = await res.json();
    for (const dd of document.querySelectorAll("#status [data-key]")) {
      const value = status[dd.dataset.key];
      dd.textContent = dd.dataset.key === "uptime" ? formatUptime(value) : String(value);
    }
    error.hidden = true;
  } catch (e) {
    error.hidden = false;
    error.textContent = "The status handler did not answer: " + e.message;
  }
}

refresh();
poller = setInterval(refresh, 2000);
