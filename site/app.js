// Polls the /api/status action handler and shows what it says.
"use strict";

function formatUptime(secs) {
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
}

async function refresh() {
  const error = document.getElementById("status-error");
  try {
    const res = await fetch("/api/status", { cache: "no-store" });
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
setInterval(refresh, 2000);
