// The admin page: asks the login path who the session belongs to (a GET
// there answers { user, role }, or 401 without a session). A program
// without `auth` in its config has no login path (404).
"use strict";

(async () => {
  const how = document.getElementById("how");
  try {
    const res = await fetch("/auth/login", { cache: "no-store" });
    if (res.ok) {
      const who = await res.json();
      document.getElementById("user").textContent = who.user;
      document.getElementById("role").textContent = who.role;
      return;
    }
    how.textContent = res.status === 404
      ? "This server has no auth block in its config, so nobody logs in."
      : "Not logged in by the form (HTTP Basic credentials are not a session).";
  } catch (e) {
    how.textContent = "The login path did not answer: " + e.message;
  }
  how.hidden = false;
  for (const id of ["user", "role"]) document.getElementById(id).textContent = "—";
})();
