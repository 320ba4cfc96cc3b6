// The login page: the page that sent the browser here comes back as
// ?next=…, and goes on in the form so the server returns there after.
"use strict";

const next = new URLSearchParams(location.search).get("next");
if (next && next.startsWith("/")) document.getElementById("next").value = next;
