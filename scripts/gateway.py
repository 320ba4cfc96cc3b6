"""Gateway checks: real clients (`websockets`, `aiohttp`, curl) talk to wisp's
gateway, which proxies to real downstreams (scripts/gateway-downstream.py).

Run by scripts/gateway, which starts the downstreams and the gateway and passes:

    gateway.py --gateway URL --ws-host HOST:PORT --http-host HOST:PORT --dead-host HOST:PORT [--pid PID]...

The gateway's routes (target/gateway/web.json5):

    /echo/  proxy, scheme ws, to the websockets echo (--ws-host); adds
            X-Gateway: wisp and removes Cookie
    /http/  proxy, scheme http, to the aiohttp server (--http-host)
    /dead/  proxy, scheme ws, to a port nothing listens on (--dead-host)
    /api/   the binary's actions (/api/status)

Each route maps /ROUTE/{catchAll} to /{catchAll}. Checks run one after
another, each under its own timeout; the last line printed is
`gateway: N passed, M failed`, and the exit status is 1 if any check failed.
"""

import argparse
import asyncio
import hashlib
import json
import os
import sys
import uuid

import aiohttp
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from checks import STEP, Failed, check, expect, expect_eq, payload, run_checks, short, within

MIB = 1 << 20
CHUNK = 64 * 1024


class Ctx:
    def __init__(self, args):
        self.http = args.gateway.rstrip("/")
        self.ws_base = "ws://" + self.http.split("://", 1)[1]
        self.host = self.http.split("://", 1)[1]
        self.ws_host = args.ws_host
        self.http_host = args.http_host
        self.dead_host = args.dead_host
        self.pids = args.pid
        self.session = None  # made in main()

    def ws(self, path):
        return self.ws_base + path


def wsc(url, **kw):
    """A `websockets` client connection (async context manager)."""
    kw.setdefault("max_size", 4 * MIB)
    return connect(url, open_timeout=STEP, close_timeout=STEP, ping_interval=None, **kw)


async def ws_echo(ws, message):
    await ws.send(message)
    got = await within(ws.recv(), "echo")
    expect_eq(type(got), type(message), "echo type")
    expect(got == message, f"echo differs: got {short(got)}, want {short(message)}")


async def ws_call(ws, text):
    """Sends a text command to the downstream echo and returns its answer."""
    await ws.send(text)
    return await within(ws.recv(), f"answer to {text!r}")


def header(seen, name):
    """The one value of a header the downstream saw (`seen`: name -> list of values)."""
    values = seen.get(name.lower(), [])
    expect(len(values) == 1, f"the downstream saw {name}: {values} (want exactly one)")
    return values[0]


def check_forwarded(seen, host):
    """The headers the gateway adds, as the downstream saw them."""
    expect_eq(header(seen, "X-Forwarded-For"), "127.0.0.1", "X-Forwarded-For")
    # For a WebSocket over http:// the scheme may be given as http or ws.
    expect(
        header(seen, "X-Forwarded-Proto") in ("http", "ws"),
        f"X-Forwarded-Proto {seen.get('x-forwarded-proto')}",
    )
    expect_eq(header(seen, "X-Forwarded-Host"), host, "X-Forwarded-Host")
    expect(header(seen, "X-Request-Id").strip(), "an empty X-Request-Id")
    expect(header(seen, "Via").strip(), "an empty Via")


# --- WebSockets through /echo/ -----------------------------------------------


@check("websockets: text and binary messages come back through the gateway")
async def _(ctx):
    async with wsc(ctx.ws("/echo/")) as ws:
        await ws_echo(ws, "héllo through the gateway ✓")
        await ws_echo(ws, bytes(range(256)))
        await ws_echo(ws, "")
        await ws_echo(ws, b"")
        await ws.close()
        expect_eq(ws.close_code, 1000, "close code")


@check("websockets: a 1 MiB binary and a 1 MiB text message come back whole")
async def _(ctx):
    async with wsc(ctx.ws("/echo/")) as ws:
        await ws_echo(ws, payload(MIB, 1))
        await ws_echo(ws, "ü" * (MIB // 2))


@check("websockets: 100 pipelined messages come back in order")
async def _(ctx):
    async with wsc(ctx.ws("/echo/")) as ws:
        sent = [f"message {i}" if i % 2 else payload(i * 7, i) for i in range(100)]
        for m in sent:
            await ws.send(m)
        for i, m in enumerate(sent):
            expect_eq(await within(ws.recv(), f"echo {i}"), m, f"message {i}")


@check("aiohttp: a WebSocket through the gateway echoes, answers a ping and closes 1000")
async def _(ctx):
    async with ctx.session.ws_connect(
        ctx.ws("/echo/"), autoping=False, timeout=aiohttp.ClientWSTimeout(ws_receive=STEP, ws_close=STEP)
    ) as ws:
        await ws.send_str("from aiohttp")
        msg = await within(ws.receive(), "echo")
        expect_eq((msg.type, msg.data), (aiohttp.WSMsgType.TEXT, "from aiohttp"), "echo")
        await ws.ping(b"gateway ping")
        msg = await within(ws.receive(), "pong")
        expect_eq((msg.type, msg.data), (aiohttp.WSMsgType.PONG, b"gateway ping"), "pong")
        expect(await ws.close(), "close() did not close")
        expect_eq(ws.close_code, 1000, "close code")


@check("websockets: the subprotocol the downstream picks reaches the client")
async def _(ctx):
    for offered, want in [
        (["superchat", "chat"], "superchat"),
        (["nope", "chat"], "chat"),
        (["chat", "superchat"], "chat"),
        (None, None),
    ]:
        async with wsc(ctx.ws("/echo/"), subprotocols=offered) as ws:
            expect_eq(ws.subprotocol, want, f"subprotocol for the offer {offered}")
            await ws_echo(ws, f"over {want}")


@check("websockets: path and query are mapped: /echo/a/b?x=1&y=2 reaches the downstream as /a/b?x=1&y=2")
async def _(ctx):
    async with wsc(ctx.ws("/echo/a/b?x=1&y=2")) as ws:
        expect_eq(await ws_call(ws, "path"), "/a/b?x=1&y=2", "downstream path")


@check("websockets: the downstream's close code and reason reach the client")
async def _(ctx):
    async with wsc(ctx.ws("/echo/")) as ws:
        await ws.send("close:4001:bye from downstream")
        try:
            got = await within(ws.recv(), "close 4001")
            raise Failed(f"got a message {short(got)} instead of close 4001")
        except ConnectionClosed as e:
            expect(e.rcvd is not None, f"no close frame received ({e})")
            expect_eq((e.rcvd.code, e.rcvd.reason), (4001, "bye from downstream"), "close frame")


@check("websockets: the client's close code and reason reach the downstream")
async def _(ctx):
    conn = uuid.uuid4().hex
    async with wsc(ctx.ws(f"/echo/?id={conn}")) as ws:
        await ws_echo(ws, "before closing")
        await ws.close(4002, "later from client")
        expect_eq(ws.close_code, 4002, "the close code the client got back")
    # The downstream records the close when its connection ends: ask until it has.
    async with wsc(ctx.ws("/echo/")) as ws:
        deadline = asyncio.get_running_loop().time() + STEP
        while True:
            seen = json.loads(await ws_call(ws, f"closed:{conn}"))
            if seen or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        expect_eq(seen, {"code": 4002, "reason": "later from client"}, "the downstream's close")


@check("websockets: the downstream sees X-Forwarded-*, X-Request-Id, Via, X-Gateway and no Cookie")
async def _(ctx):
    async with wsc(ctx.ws("/echo/"), additional_headers={"Cookie": "secret=1"}) as ws:
        seen = json.loads(await ws_call(ws, "headers"))
    check_forwarded(seen, ctx.host)
    expect_eq(header(seen, "X-Gateway"), "wisp", "X-Gateway (headers.add)")
    expect("cookie" not in seen, f"Cookie reached the downstream (headers.remove): {seen.get('cookie')}")


@check("websockets: a client's X-Request-Id is passed on as it is")
async def _(ctx):
    rid = str(uuid.uuid4())
    async with wsc(ctx.ws("/echo/"), additional_headers={"X-Request-Id": rid}) as ws:
        seen = json.loads(await ws_call(ws, "headers"))
    expect_eq(header(seen, "X-Request-Id"), rid, "X-Request-Id")


@check("websockets: an upgrade to a downstream that is down gets 502")
async def _(ctx):
    try:
        async with wsc(ctx.ws("/dead/")) as ws:
            raise Failed(f"connected (subprotocol {ws.subprotocol!r})")
    except InvalidStatus as e:
        expect_eq(e.response.status_code, 502, "status")


# --- HTTP through /http/ ------------------------------------------------------


@check("aiohttp: GET /http/hello is the downstream's answer, with Via")
async def _(ctx):
    async with ctx.session.get(ctx.http + "/http/hello") as r:
        expect_eq(r.status, 200, "status")
        expect_eq(await r.text(), "hello", "body")
        expect(r.headers.get("Via", "").strip(), f"no Via in {dict(r.headers)}")


@check("aiohttp: HEAD stays HEAD (the downstream sees HEAD; no body comes back)")
async def _(ctx):
    async with ctx.session.head(ctx.http + "/http/echo") as r:
        expect_eq(r.status, 200, "status")
        expect_eq(r.headers.get("X-Method"), "HEAD", "the method the downstream saw")
        expect_eq(await r.read(), b"", "body")


@check("aiohttp: a 404 from the downstream passes through")
async def _(ctx):
    async with ctx.session.get(ctx.http + "/http/no-such-thing") as r:
        expect_eq(r.status, 404, "status")


@check("aiohttp: the downstream sees the method, mapped path, X-Forwarded-*, Via; no hop-by-hop headers")
async def _(ctx):
    headers = {
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "1",
        "Keep-Alive": "timeout=5",
        "X-Kept": "yes",
    }
    async with ctx.session.post(ctx.http + "/http/echo?q=1", data=b"12345", headers=headers) as r:
        expect_eq(r.status, 200, "status")
        seen = await r.json()
    expect_eq(seen["method"], "POST", "method")
    expect_eq(seen["path"], "/echo?q=1", "path")
    expect_eq(seen["body_bytes"], 5, "body bytes")
    check_forwarded(seen["headers"], ctx.host)
    expect_eq(header(seen["headers"], "X-Kept"), "yes", "an end-to-end header")
    for hop in ("x-hop", "keep-alive"):
        expect(hop not in seen["headers"], f"the hop-by-hop {hop} reached the downstream")
    for value in seen["headers"].get("connection", []):
        expect("x-hop" not in value.lower(), f"Connection: {value} reached the downstream")


@check("aiohttp: a client's X-Request-Id reaches the downstream as it is")
async def _(ctx):
    rid = str(uuid.uuid4())
    async with ctx.session.get(ctx.http + "/http/echo", headers={"X-Request-Id": rid}) as r:
        seen = await r.json()
    expect_eq(header(seen["headers"], "X-Request-Id"), rid, "X-Request-Id")


@check("aiohttp: a 10 MiB upload is streamed through (count and SHA-256 as sent)", timeout=60)
async def _(ctx):
    n = 10 * MIB
    digest = hashlib.sha256()

    async def body():
        for k in range(n // CHUNK):
            piece = hashlib.sha256(b"upload %d" % k).digest() * (CHUNK // 32)
            digest.update(piece)
            yield piece

    async with ctx.session.post(ctx.http + "/http/upload", data=body()) as r:
        expect_eq(r.status, 200, "status")
        got = await r.json()
    expect_eq(got, {"bytes": n, "sha256": digest.hexdigest()}, "what the downstream received")


@check("aiohttp: a 10 MiB download is streamed through (length and SHA-256 as sent)", timeout=60)
async def _(ctx):
    n = 10 * MIB
    async with ctx.session.get(ctx.http + f"/http/download?n={n}") as r:
        expect_eq(r.status, 200, "status")
        digest, count = hashlib.sha256(), 0
        async for piece in r.content.iter_chunked(CHUNK):
            digest.update(piece)
            count += len(piece)
        want = r.headers.get("X-Content-SHA256")
    expect_eq(count, n, "bytes received")
    expect_eq(digest.hexdigest(), want, "SHA-256")


@check("aiohttp: a GET to a downstream that is down gets 502")
async def _(ctx):
    async with ctx.session.get(ctx.http + "/dead/x") as r:
        expect_eq(r.status, 502, "status")


@check("aiohttp: a downstream that never answers gets 504 (timeouts.connect)", timeout=30)
async def _(ctx):
    async with ctx.session.get(ctx.http + "/http/slow", timeout=aiohttp.ClientTimeout(total=25)) as r:
        expect_eq(r.status, 504, "status")


@check("curl: GET /http/hello through the gateway")
async def _(ctx):
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", str(STEP), "-o", "-", "-w", "\n%{http_code}",
        ctx.http + "/http/hello",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    expect_eq(proc.returncode, 0, f"curl's exit status ({err.decode().strip()})")
    expect_eq(out.decode(), "hello\n200", "body and status")


# --- the status page and the servers -----------------------------------------


def find_host(tree, host):
    """The object in `tree` that describes `host` (keyed by it, or naming it)."""
    if isinstance(tree, dict):
        if host in tree and isinstance(tree[host], dict):
            return tree[host]
        if host in tree.values():
            return tree
        children = tree.values()
    elif isinstance(tree, list):
        children = tree
    else:
        return None
    for child in children:
        found = find_host(child, host)
        if found is not None:
            return found
    return None


@check("aiohttp: /api/status shows each downstream host: open, requests, failures, breaker")
async def _(ctx):
    async with ctx.session.get(ctx.http + "/api/status") as r:
        expect_eq(r.status, 200, "status")
        status = await r.json()
    for host in (ctx.ws_host, ctx.http_host, ctx.dead_host):
        entry = find_host(status, host)
        expect(entry is not None, f"{host} is not in /api/status: {short(status, 600)}")
        missing = [k for k in ("open", "requests", "failures", "breaker") if k not in entry]
        expect(not missing, f"{host}: no {missing} in {entry}")
    expect(find_host(status, ctx.http_host)["requests"] > 0, "no request counted for the HTTP downstream")
    expect(find_host(status, ctx.dead_host)["failures"] > 0, "no failure counted for the dead downstream")


@check("the gateway and its downstreams are still running")
async def _(ctx):
    for pid in ctx.pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise Failed(f"process {pid} has exited") from None


async def main(ctx):
    async with aiohttp.ClientSession() as session:
        ctx.session = session
        return await run_checks(ctx, "gateway")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True, help="base URL of the gateway (http://HOST:PORT)")
    parser.add_argument("--ws-host", required=True, help="the websockets echo, HOST:PORT")
    parser.add_argument("--http-host", required=True, help="the aiohttp server, HOST:PORT")
    parser.add_argument("--dead-host", required=True, help="a HOST:PORT nothing listens on")
    parser.add_argument("--pid", type=int, action="append", default=[], help="a server's pid")
    sys.exit(asyncio.run(main(Ctx(parser.parse_args()))))
