// The real-browser end-to-end test of the demo site, run by scripts/browser-test:
// headless Chromium (Debian's, driven by playwright-core) against a running
// target/release/wisp. Four named checks: the landing page, the echo page (its socket
// with permessage-deflate, and a 200 KiB JSON text besides every size), a chat
// between two people, and the echo page reconnecting after a server restart; and,
// when a TLS server is given, two more: the landing page over https:// and the
// echo page over wss://, with Chromium trusting only that server's certificate
// (--ignore-certificate-errors-spki-list, not a blanket ignore).
//
// The script starts the server and passes in where it is:
//   WISP_ROOT     the repository root (the server's working directory)
//   WISP_BIN      the binary; WISP_PORT its port; WISP_PIDFILE holds its pid
//   WISP_LOG      where a restarted server writes its output
//   WISP_SHOTS    the folder for screenshots (one PNG per page visited)
//   CHROMIUM      the browser executable (default /usr/bin/chromium)
//   WISP_TLS_URL  optional: https://127.0.0.1:PORT of a second server (its certificate
//                 for 127.0.0.1); WISP_SPKI the base64 SHA-256 of that certificate's
//                 public key. Node's own fetch trusts its CA by NODE_EXTRA_CA_CERTS.
//   WISP_GATEWAY_URL, WISP_GATEWAY_DOWNSTREAM
//                 optional: a gateway and the second wisp behind it (scripts/gateway-env);
//                 one more check, the echo page through the gateway.
// Prints one line per check and closes with `browser-test: N passed, M failed`;
// exits non-zero if any check failed.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run scripts/browser-test`);
  return value;
}

const root = need("WISP_ROOT");
const bin = need("WISP_BIN");
const port = Number(need("WISP_PORT"));
const pidFile = need("WISP_PIDFILE");
const serverLog = need("WISP_LOG");
const shots = need("WISP_SHOTS");
const base = `http://127.0.0.1:${port}`;
const tlsBase = process.env.WISP_TLS_URL || null;
const spki = tlsBase ? need("WISP_SPKI") : null;
const gatewayBase = process.env.WISP_GATEWAY_URL || null;
const gatewayDownstream = gatewayBase ? need("WISP_GATEWAY_DOWNSTREAM") : null;

const WAIT = 10_000;        // any one condition in the page
const CHECK_LIMIT = 45_000; // one whole check, however it gets stuck

const log = (line) => console.log("browser-test: " + line);

class Failure extends Error {}
function assert(ok, message) {
  if (!ok) throw new Failure(message);
}

// Polls fn until it returns something truthy, or fails with message after ms.
async function until(fn, ms, message) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Failure(message);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Waits for a condition in the page; a timeout is reported as message.
async function waitIn(page, fn, arg, message, timeout = WAIT) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (e) {
    if (/Timeout/i.test(e.message)) throw new Failure(`${message} (not within ${timeout / 1000} s)`);
    throw e;
  }
}

function mediaType(response) {
  return (response.headers()["content-type"] ?? "").split(";")[0].trim().toLowerCase();
}

// ---------------------------------------------------------------------------
// The browser, pages, screenshots and the checks' bookkeeping.

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  chromiumSandbox: false,
  // Playwright gives every launch a fresh, empty user data dir of its own.
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // Trust the test server's certificate, and only it, by its public key.
    ...(spki ? [`--ignore-certificate-errors-spki-list=${spki}`] : []),
  ],
  timeout: 30_000,
});

const shotsTaken = [];
async function shot(page, name) {
  const file = path.join(shots, name + ".png");
  await page.screenshot({ path: file, fullPage: true, timeout: WAIT });
  shotsTaken.push(file);
}

// A page in a context of its own (its own cookies and cache: a separate person),
// with its console errors and uncaught exceptions collected.
async function openPage(opened, label) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const consoleErrors = [];
  const pageErrors = [];
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(`${m.text()} [${m.location().url || "?"}]`);
  });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  const entry = { label, context, page, consoleErrors, pageErrors };
  opened.push(entry);
  return entry;
}

async function visit(page, pathname, origin = base) {
  const response = await page.goto(origin + pathname, { waitUntil: "load" });
  assert(response, `GET ${pathname}: no response`);
  assert(response.status() === 200, `GET ${pathname}: status ${response.status()}, want 200`);
  assert(mediaType(response) === "text/html", `GET ${pathname}: Content-Type ${mediaType(response)}, want text/html`);
  return response;
}

function noErrors({ label, consoleErrors, pageErrors }, { console = true } = {}) {
  assert(pageErrors.length === 0, `${label}: page errors: ${pageErrors.join(" | ")}`);
  if (console) assert(consoleErrors.length === 0, `${label}: console errors: ${consoleErrors.join(" | ")}`);
}

const results = [];
async function check(name, slug, body) {
  const started = Date.now();
  const opened = [];
  let limitTimer;
  try {
    const limit = new Promise((_, reject) => {
      limitTimer = setTimeout(() => reject(new Failure(`did not finish within ${CHECK_LIMIT / 1000} s`)), CHECK_LIMIT);
    });
    const note = await Promise.race([body(opened), limit]);
    results.push({ name, ok: true });
    log(`ok    ${name}${note ? ": " + note : ""} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name, ok: false });
    log(`FAIL  ${name}: ${e instanceof Failure ? e.message : e.stack || e}`);
    for (const { label, page } of opened) {
      await shot(page, `${slug}-${label}-failed`).catch(() => {});
    }
  } finally {
    clearTimeout(limitTimer);
    for (const { context } of opened) await context.close().catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// The server: stopping it and starting it again on the same port.

async function answers() {
  try {
    const res = await fetch(base + "/", { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function stopServer() {
  const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
  process.kill(pid, "SIGTERM");
  // Its listener is gone once a connection is refused (the process may linger as a zombie).
  await until(async () => !(await answers()), WAIT, `the server (pid ${pid}) still answers after SIGTERM`);
}

let restarted = null; // the server this program started, stopped at its end

// Starts the binary on the same port. The old listener can take a moment to be
// released, so a start that fails to bind is retried, all within a bounded time.
async function startServer() {
  const deadline = Date.now() + 15_000;
  for (let attempt = 1; ; attempt++) {
    const out = fs.openSync(serverLog, "a");
    const child = spawn(bin, ["--config", "web.json5", "--listen", base], {
      cwd: root,
      stdio: ["ignore", out, out],
    });
    fs.closeSync(out);
    let exited = null;
    child.on("exit", (code, signal) => (exited = { code, signal }));
    fs.writeFileSync(pidFile, String(child.pid) + "\n"); // the script's trap kills it
    child.unref();
    const up = await until(async () => exited || ((await answers()) && "up"), Math.max(0, deadline - Date.now()),
      "the restarted server did not answer").catch((e) => e);
    if (up === "up") {
      restarted = { child, exit: new Promise((r) => (exited ? r() : child.once("exit", r))) };
      return attempt;
    }
    if (up instanceof Error) {
      child.kill();
      throw up;
    }
    if (Date.now() > deadline) {
      throw new Failure(`the restarted server exited (${JSON.stringify(exited)}) ${attempt} times; see ${serverLog}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------------------
// The echo page.

async function waitPill(page, want, timeout = WAIT) {
  try {
    await page.waitForFunction((w) => document.getElementById("state").textContent === w, want,
      { timeout, polling: 50 });
  } catch {
    throw new Failure(`the state pill never showed ${JSON.stringify(want)} within ${timeout / 1000} s; `
      + `it shows ${JSON.stringify(await pill(page))}`);
  }
}

const pill = (page) => page.locator("#state").textContent();

// The non-zero limit counters of /api/status (such as frame: 1 for a frame over limits.maxFrame)
// of the server at origin.
async function limitHits(origin) {
  try {
    const status = await (await fetch(origin + "/api/status", { signal: AbortSignal.timeout(2000) })).json();
    const hits = Object.entries(status.stats?.limits ?? {}).filter(([, n]) => n);
    return hits.length ? hits.map(([k, n]) => `${k} ${n}`).join(", ") : "none";
  } catch (e) {
    return `unknown (${e.message})`;
  }
}

// Sends one message from the echo page and waits for its row in the log.
// kind "text" sends what is in #text; otherwise size is a value of #size.
async function roundTrip(page, kind, size, timeout = WAIT) {
  const topNumber = () => document.querySelector("#log tr td")?.textContent ?? "0";
  const before = Number(await page.evaluate(topNumber));
  let bytes;
  if (kind === "text") {
    bytes = Buffer.byteLength(await page.inputValue("#text"));
    await page.click("#text-form button[type=submit]");
  } else {
    bytes = size;
    await page.selectOption("#size", String(size));
    await page.click("#binary-form button[type=submit]");
  }
  const what = kind === "text" ? `text (${bytes} B)` : `binary of ${size} B`;
  try {
    await page.waitForFunction(
      (n) => Number(document.querySelector("#log tr td")?.textContent ?? 0) > n
        || document.getElementById("state").textContent !== "open",
      before, { timeout, polling: 50 });
  } catch {
    throw new Failure(`${what}: no echo within ${timeout / 1000} s`);
  }
  const row = await page.$$eval("#log tr:first-child td", (tds) => tds.map((td) => td.textContent));
  if (Number(row[0]) <= before) {
    throw new Failure(`${what}: the socket closed instead of echoing; the pill shows ${JSON.stringify(await pill(page))}`
      + `; the server's limit hits: ${await limitHits(new URL(page.url()).origin)}`);
  }
  const [, gotKind, gotBytes, rtt, verdict] = row;
  assert(gotKind === kind && Number(gotBytes) === bytes, `${what}: the row says ${row.join(" | ")}`);
  assert(verdict === "identical", `${what}: the echo is ${JSON.stringify(verdict)}, want "identical"`);
  return rtt;
}

// ---------------------------------------------------------------------------
// The chat page.

async function joinChat(page, name, room) {
  assert(await page.isDisabled("#leave"), "Leave is enabled before joining");
  await page.fill("#name", name);
  await page.fill("#room", room);
  await page.click("#join");
  await waitIn(page, () => !document.getElementById("text").disabled && !document.getElementById("send").disabled,
    null, `${name}: #text and #send are not enabled after Join (no "joined" from the server?)`);
  assert(await page.isEnabled("#leave"), `${name}: Leave is not enabled after joining`);
  const label = await page.locator("#room-label").textContent();
  assert(label === room, `${name}: the room label says ${JSON.stringify(label)}, want ${JSON.stringify(room)}`);
}

async function waitMembers(page, who, want) {
  const sorted = [...want].sort();
  try {
    await page.waitForFunction(
      (w) => JSON.stringify([...document.querySelectorAll("#members li")].map((li) => li.textContent).sort()) === w,
      JSON.stringify(sorted), { timeout: WAIT, polling: 50 });
  } catch {
    const got = await page.$$eval("#members li", (lis) => lis.map((li) => li.textContent));
    throw new Failure(`${who} sees members ${JSON.stringify(got)}, want ${JSON.stringify(sorted)}`);
  }
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.click("#send");
}

async function waitSaid(page, who, from, text) {
  await waitIn(page, ([from, text]) => [...document.querySelectorAll("#messages [data-kind=said]")].some((li) =>
    li.textContent.includes(text)
      && li.querySelector("span.from")?.textContent === from
      && li.querySelector("span.text")?.textContent === text),
  [from, text], `${who} does not see ${from}'s ${JSON.stringify(text)}`);
}

// ---------------------------------------------------------------------------
// The checks.

// The landing page at origin: its assets with their MIME types, the live status, no errors.
async function landing(opened, origin, slug) {
  const tab = await openPage(opened, "index");
  const { page } = tab;
  const responses = new Map();
  const failures = new Map();
  page.on("response", (r) => responses.set(r.url().split("#")[0], r));
  page.on("requestfailed", (r) => failures.set(r.url().split("#")[0], r.failure()?.errorText ?? "failed"));
  const main = await visit(page, "/", origin);

  // Every asset the page references, by its URL without fragment.
  const assets = await page.evaluate(() => {
    const urls = new Set();
    const add = (href) => href && urls.add(new URL(href, location.href).href.split("#")[0]);
    document.querySelectorAll("link[href]").forEach((el) => add(el.getAttribute("href")));
    document.querySelectorAll("script[src]").forEach((el) => add(el.getAttribute("src")));
    document.querySelectorAll("img[src]").forEach((el) => add(el.getAttribute("src")));
    document.querySelectorAll("use[href]").forEach((el) => add(el.getAttribute("href")));
    return [...urls];
  });
  const want = { ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml" };
  const kinds = new Set(assets.map((u) => path.extname(new URL(u).pathname)));
  for (const ext of Object.keys(want)) assert(kinds.has(ext), `the page references no ${ext} asset (${assets.join(", ")})`);
  for (const url of assets) {
    const ext = path.extname(new URL(url).pathname);
    const response = await until(() => responses.get(url) || failures.has(url), WAIT, `no response seen for ${url}`);
    if (response === true) {
      const again = await page.request.get(url);
      throw new Failure(`${url}: the browser dropped it (${failures.get(url)}); the server sends `
        + `${again.status()} ${JSON.stringify(again.headers()["content-type"])}, want ${want[ext]}`);
    }
    assert(response.status() === 200, `${url}: status ${response.status()}, want 200`);
    assert(mediaType(response) === want[ext], `${url}: Content-Type ${JSON.stringify(response.headers()["content-type"])}, want ${want[ext]}`);
  }

  // The live status view gets filled in from /api/status.
  const status = await until(() => responses.get(origin + "/api/status"), WAIT, "the page never asked /api/status");
  assert(status.status() === 200 && mediaType(status) === "application/json",
    `/api/status: ${status.status()} ${mediaType(status)}, want 200 application/json`);
  await waitIn(page, () => {
    const dds = [...document.querySelectorAll("#status dd[data-key]")];
    return dds.length >= 3 && dds.every((dd) => dd.textContent.trim() !== "" && dd.textContent !== "…");
  }, null, "the status values still show …");
  // Then kept live by the event stream: its uptime moves on without another /api/status.
  const events = await until(() => responses.get(origin + "/api/events"), WAIT, "the page never opened /api/events");
  assert(events.status() === 200 && mediaType(events) === "text/event-stream",
    `/api/events: ${events.status()} ${mediaType(events)}, want 200 text/event-stream`);
  const first = await page.textContent("#status dd[data-key=uptime]");
  await waitIn(page, (was) => document.querySelector("#status dd[data-key=uptime]").textContent !== was,
    first, "the uptime never moved on (no event arrived)");
  const values = await page.$$eval("#status dd[data-key]",
    (dds) => Object.fromEntries(dds.map((dd) => [dd.dataset.key, dd.textContent])));
  assert(values.server === "wisp", `status server is ${JSON.stringify(values.server)}`);
  assert(/^\d+\.\d+\.\d+/.test(values.version), `status version is ${JSON.stringify(values.version)}`);
  assert(/^(\d+h )?(\d+m )?\d+s$/.test(values.uptime), `status uptime is ${JSON.stringify(values.uptime)}`);
  assert(await page.isHidden("#status-error"), "the status error is showing");
  await shot(page, slug);
  noErrors(tab);
  return `${assets.length} assets (${assets.map((u) => new URL(u).pathname).join(" ")}), status ${values.server} ${values.version} up ${values.uptime}`
    + (origin.startsWith("https:") ? `, ${await tlsNote(main)}` : "");
}

// The page's TLS connection, as Chromium saw it: TLS 1.2 or 1.3, the test certificate.
async function tlsNote(response) {
  const tls = await response.securityDetails();
  assert(tls, `${response.url()}: no TLS details (not https?)`);
  assert(/^TLS 1\.[23]$/.test(tls.protocol), `${response.url()}: protocol ${tls.protocol}`);
  assert(tls.subjectName === "localhost", `${response.url()}: certificate for ${tls.subjectName}, want the test one (localhost)`);
  return `${tls.protocol}, certificate ${tls.subjectName} from ${tls.issuer}`;
}

await check("landing page", "1-landing", (opened) => landing(opened, base, "1-landing"));

// A JSON document of about `size` bytes (sensor readings): what a device's page
// would send, and compressible as JSON is.
function jsonText(size) {
  const items = [];
  let n = 2;
  for (let i = 0; n < size; i++) {
    const item = { id: i, sensor: `sensor-${(i * 7919) % 64}`, value: ((i * 2654435761) % 100000) / 1000 - 50,
      ok: i % 10 !== 0, unit: ["°C", "kPa", "%", "lx"][i % 4] };
    n += JSON.stringify(item).length + 1;
    items.push(item);
  }
  return JSON.stringify(items);
}

// The echo page at origin: its socket (ws:// for http, wss:// for https), text and every size,
// and a 200 KiB JSON text. `deflate`: the socket must have negotiated permessage-deflate
// (RFC 7692; the server has webSockets.compression on), or none at all (false: the gateway
// passes no extension offer on).
async function echoPage(opened, origin, slug, { deflate = true } = {}) {
  const tab = await openPage(opened, "echo");
  const { page } = tab;
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  await visit(page, "/echo.html", origin);
  await waitPill(page, "open");
  const scheme = origin.startsWith("https:") ? "wss:" : "ws:";
  assert(sockets.length > 0 && sockets.every((u) => u.startsWith(scheme + "//")),
    `the page's sockets are ${JSON.stringify(sockets)}, want ${scheme}// ones`);
  // The page's socket (a global of echo.js) says what the server agreed to.
  const extensions = await page.evaluate(() => socket.extensions);
  if (deflate) {
    assert(/^permessage-deflate(;|$)/.test(extensions),
      `the socket's extensions are ${JSON.stringify(extensions)}, want permessage-deflate`);
  } else {
    assert(extensions === "", `the socket's extensions are ${JSON.stringify(extensions)}, want none`);
  }
  const times = [`text ${await roundTrip(page, "text")}`];
  const sizes = await page.$$eval("#size option", (os) => os.map((o) => Number(o.value)));
  for (const s of [16, 1024, 65536, 1000000]) assert(sizes.includes(s), `no ${s} B option (${sizes.join(", ")})`);
  for (const size of sizes) {
    times.push(`${size} B ${await roundTrip(page, "binary", size, 20_000)}`);
  }
  const original = await page.inputValue("#text");
  await page.fill("#text", jsonText(200 * 1024));
  times.push(`200 KiB JSON ${await roundTrip(page, "text", 0, 20_000)}`);
  await page.fill("#text", original);
  await shot(page, slug);
  noErrors(tab);
  return `${sockets[0]} (${extensions ? `extensions: ${extensions}` : "no extension"}): ${times.join(", ")}`;
}

await check("echo page", "2-echo", (opened) => echoPage(opened, base, "2-echo"));

await check("chat between two people", "3-chat", async (opened) => {
  const ann = await openPage(opened, "ann");
  const bob = await openPage(opened, "bob");
  for (const { page } of [ann, bob]) {
    await visit(page, "/chat.html");
    await waitPill(page, "open");
  }
  await joinChat(ann.page, "ann", "lobby");
  await waitMembers(ann.page, "ann", ["ann"]);
  await joinChat(bob.page, "bob", "lobby");
  await waitMembers(ann.page, "ann", ["ann", "bob"]);
  await waitMembers(bob.page, "bob", ["ann", "bob"]);

  await say(bob.page, "hello from bob");
  await waitSaid(ann.page, "ann", "bob", "hello from bob");
  await waitSaid(bob.page, "bob (their own line)", "bob", "hello from bob");
  await say(ann.page, "hello from ann");
  await waitSaid(bob.page, "bob", "ann", "hello from ann");
  await waitSaid(ann.page, "ann (their own line)", "ann", "hello from ann");
  await shot(ann.page, "3-chat-ann");
  await shot(bob.page, "3-chat-bob");

  await bob.page.click("#leave");
  await waitIn(ann.page, () => [...document.querySelectorAll("#messages [data-kind=presence]")]
    .some((li) => li.textContent.includes("bob") && /left/.test(li.textContent)),
  null, "ann sees no presence line for bob leaving");
  await waitMembers(ann.page, "ann", ["ann"]);
  await waitMembers(bob.page, "bob", []);
  assert(await bob.page.isDisabled("#text") && await bob.page.isDisabled("#send"), "bob can still type after leaving");
  assert(await bob.page.isDisabled("#leave"), "bob's Leave is still enabled after leaving");
  await shot(ann.page, "3-chat-ann-after-leave");
  await shot(bob.page, "3-chat-bob-after-leave");
  noErrors(ann);
  noErrors(bob);
});

await check("echo reconnects after a server restart", "4-reconnect", async (opened) => {
  const tab = await openPage(opened, "echo");
  const { page } = tab;
  await visit(page, "/echo.html");
  await waitPill(page, "open");
  await roundTrip(page, "text");
  await stopServer();
  await waitIn(page, () => document.getElementById("state").textContent.startsWith("closed"), null,
    "the pill does not say closed after the server stopped");
  const closed = await pill(page);
  await shot(page, "4-reconnect-closed");
  const attempts = await startServer();
  await waitPill(page, "open", 15_000);
  const rtt = await roundTrip(page, "text");
  await roundTrip(page, "binary", 1024);
  await shot(page, "4-reconnect-open");
  // Refused connections while the server is down are logged as console errors; those are expected.
  noErrors(tab, { console: false });
  return `pill ${JSON.stringify(closed)} then "open"; server up after ${attempts} start(s); text echo ${rtt}`;
});

if (tlsBase) {
  await check("landing page over https", "5-https-landing", (opened) => landing(opened, tlsBase, "5-https-landing"));
  await check("echo page over wss", "6-wss-echo", (opened) => echoPage(opened, tlsBase, "6-wss-echo"));
}

// The echo page through the gateway: the page over its /gateway/ proxy route, the
// socket over its /ws/ one, both to the second wisp, which must have seen the socket.
async function websocketsTotal(origin) {
  const status = await (await fetch(origin + "/api/status", { signal: AbortSignal.timeout(2000) })).json();
  return status.stats.websockets_total;
}

if (gatewayBase) {
  await check("echo page through the gateway", "7-gateway-echo", async (opened) => {
    const before = await websocketsTotal(gatewayDownstream);
    const note = await echoPage(opened, gatewayBase + "/gateway", "7-gateway-echo", { deflate: false });
    const after = await websocketsTotal(gatewayDownstream);
    assert(after > before, `the downstream saw no WebSocket (websockets_total ${before}, then ${after})`);
    return note;
  });
}

// The same site served by a program of a user's own without the demo's handlers
// (examples/hello.rs): each demo card says so quietly, and no error shows.
const helloBase = process.env.WISP_HELLO_URL;
if (helloBase) {
  await check("landing page without the demo's handlers", "8-no-demo", async (opened) => {
    const { page } = await openPage(opened, "index-no-demo");
    await visit(page, "/", helloBase);
    const cards = ["status-card", "echo-card", "chat-card"];
    await waitIn(page, (ids) => ids.every((id) => document.getElementById(id).classList.contains("absent")),
      cards, "the demo cards are not marked as off");
    assert(await page.isHidden("#status-error"), "the status error is showing");
    assert(await page.isHidden("#status"), "the empty status list is showing");
    const notes = await page.$$eval(".card.absent .note", (ps) => ps.map((p) => p.textContent));
    assert(notes.length === 3, `${notes.length} notes, want 3`);
    await shot(page, "8-no-demo");
    return `3 cards off: ${notes[0]}`;
  });
}

// examples/altruist_portal.rs: Altruist's JavaScript client snippet, run in the
// page as the document writes it (the chat is sent once the handshake is answered:
// a browser refuses a send before the socket is open), then the page's own
// MessagePack codec through its buttons.
const altruistBase = process.env.WISP_ALTRUIST_URL;
if (altruistBase) {
  await check("Altruist portals: the client snippet, then MessagePack from the page", "9-altruist", async (opened) => {
    const tab = await openPage(opened, "altruist");
    const { page } = tab;
    await visit(page, "/altruist.html", altruistBase);
    const got = await page.evaluate(() => new Promise((resolve, reject) => {
      const seen = [];
      setTimeout(() => reject(new Error("no answers: " + JSON.stringify(seen))), 5000);
      const ws = new WebSocket("ws://" + location.host + "/ws");
      ws.onopen = () => {
        // Send a handshake event
        ws.send(JSON.stringify({
          messageCode: 4,
          event: "handshake"
        }));
      };
      ws.onmessage = (event) => {
        const data = JSON.parse(event.data);
        console.log("Received:", data);
        seen.push(data);
        if (data.event === "handshake") {
          // Send a chat message
          ws.send(JSON.stringify({
            messageCode: 4,
            event: "chat",
            text: "Hello server!"
          }));
        } else {
          ws.close();
          resolve(seen);
        }
      };
    }));
    assert(got[0].event === "handshake" && got[0].messageCode === 4 && typeof got[0].clientId === "string",
      `handshake answer ${JSON.stringify(got[0])}`);
    assert(got[1].event === "chat" && got[1].text === "Hello server!" && got[1].messageCode === 4
      && got[1].clientId === got[0].clientId, `chat ${JSON.stringify(got[1])}`);
    // The page: MessagePack on /ws/game, a handshake with messageCode 7.
    await page.selectOption("#portal", "/ws/game");
    await page.selectOption("#codec", "msgpack");
    await page.click("#connect");
    await waitIn(page, () => !document.getElementById("handshake").disabled, null, "the page did not connect");
    await page.fill("#code", "7");
    await page.click("#handshake");
    await waitIn(page, () => [...document.querySelectorAll("#log tr")].some((tr) => {
      const [, way, codec, packet] = [...tr.children].map((td) => td.textContent);
      return way === "received" && codec === "msgpack" && JSON.parse(packet).messageCode === 7;
    }), null, "no MessagePack handshake answer with messageCode 7 in the log");
    await shot(page, "9-altruist");
    noErrors(tab);
    return `snippet answered ${got.map((d) => d.event).join(", ")}; MessagePack handshake answered`;
  });
}

// examples/xsockets_controllers: the XSockets documentation's console snippets
// (seeds/002), run unchanged in the page (after each `new WebSocket`, the
// wait a person typing the next line gives it to open), then the demo page's
// own buttons.
const xsocketsBase = process.env.WISP_XSOCKETS_URL;
if (xsocketsBase) {
  await check("XSockets snippets and page", "9-xsockets", async (opened) => {
    const entry = await openPage(opened, "xsockets");
    const { page } = entry;
    const said = [];
    page.on("console", (m) => {
      if (m.type() === "log") said.push(m.text());
    });
    await visit(page, "/xsockets.html", xsocketsBase);
    const url = xsocketsBase.replace(/^http/, "ws") + "/xsockets";
    await page.evaluate(async (url) => {
      var conn = new WebSocket(url, 'DemoProtocol');
      conn.onmessage = function (d) { console.log('CustomProtocol Message', d.data); };
      await new Promise((r) => conn.addEventListener("open", r));
      var json = {t:'foo',c:'generic',d:'hi'};
      var m = JSON.stringify(json);
      conn.send(m);
      json = {M:'foo',J:'{s:\'bar\',i:42}'};
      m = JSON.stringify(json);
      conn.send(m);
      var bar = new WebSocket(url, 'XSocketsNET');
      bar.onmessage = function (d) { console.log('XSocketsNET Message', d.data); };
      await new Promise((r) => bar.addEventListener("open", r));
      bar.send(JSON.stringify({t: 'foo', c:'bar', d:'some message'}));
      bar.send(JSON.stringify({t: 'foo', c:'bar', d:{name:'Steve', Age:42}}));
    }, url);
    await until(() => said.length >= 5, WAIT, `5 console lines, got ${JSON.stringify(said)}`);
    const custom = said.filter((l) => l.startsWith("CustomProtocol Message ")).map((l) => JSON.parse(l.slice(23)));
    const plain = said.filter((l) => l.startsWith("XSocketsNET Message ")).map((l) => JSON.parse(l.slice(20)));
    assert(custom.length === 3 && plain.length === 2, `console: ${JSON.stringify(said)}`);
    assert(custom[0].t === "open" && custom[0].c === "generic", `the open message: ${JSON.stringify(custom[0])}`);
    assert(custom[1].t === "foo" && custom[1].c === "generic" && custom[1].d === "hi", `the echo: ${JSON.stringify(custom[1])}`);
    const j = custom[2].M === "foo" && typeof custom[2].J === "string" ? JSON.parse(custom[2].J) : {};
    assert(j.stringValue === "bar" && j.intValue === 42, `{M, J}: ${JSON.stringify(custom[2])}`);
    assert(plain[0].d.bound === "Foo(string)" && plain[0].d.m === "some message", `Foo(string): ${JSON.stringify(plain[0])}`);
    assert(plain[1].d.bound === "Foo(Person)" && plain[1].d.name === "Steve" && plain[1].d.Age === 42,
      `Foo(Person): ${JSON.stringify(plain[1])}`);
    // The page's own buttons.
    await waitIn(page, () => ["state-x", "state-demo"].every((id) => document.getElementById(id).textContent === "open"),
      null, "the page's two sockets did not open");
    await page.click("#bar-person");
    await page.click("#demo-mj");
    await waitIn(page, () => {
      const rows = [...document.querySelectorAll("#log tr[data-direction=in]")].map((r) => r.lastChild.textContent);
      return rows.some((t) => t.includes("Foo(Person)")) && rows.some((t) => t.includes("stringValue"));
    }, null, "the page's answers did not show");
    noErrors(entry);
    await shot(page, "9-xsockets");
    return "open + echo, {M, J}, Foo(string), Foo(Person)";
  });
}

await browser.close().catch(() => {});
// Stop the server this program started, and wait for it, so it is not left behind as a zombie;
// the script's trap stays the fallback (it kills whatever pid the pid file holds).
if (restarted) {
  restarted.child.kill("SIGTERM");
  const gone = await Promise.race([restarted.exit.then(() => true), new Promise((r) => setTimeout(r, 5000, false))]);
  if (gone) fs.rmSync(pidFile, { force: true });
}
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
log(`screenshots: ${shotsTaken.map((f) => path.relative(root, f)).join(" ")}`);
console.log(`browser-test: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
