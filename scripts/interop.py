"""Interoperability checks: third-party Python clients (`websockets`, `aiohttp`) against wisp.

Run by scripts/interop, which starts four servers and passes their addresses:

    interop.py --shipped URL --defaults URL --deflate URL --takeover URL --site DIR [--pid PID]...

--shipped is the binary on the shipped web.json5: site/, /ws/echo, /ws/chat,
/api/status. --defaults is the same binary on a config that sets only
webSockets.protocol ['chat.v1', 'json.v2'] and the routes, so its limits are
the built-in defaults (limits.maxMessage 1MB, and limits.maxFrame the same): the size
limits, UTF-8, subprotocol and closing checks run there. Checks run one after
another, each under its own timeout; the last line printed is
`interop: N passed, M failed`, and the exit status is 1 if any check failed.
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import sys
import time
import traceback
import zlib

import aiohttp
import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate

from checks import CHECKS, STEP, Failed, check, expect, expect_eq, payload, short, within

KIB = 1024
MAX_MESSAGE = 1 << 20  # the default limits.maxMessage, '1MB'
MAX_FRAME = MAX_MESSAGE  # limits.maxFrame defaults to limits.maxMessage
CHROMIUM_FRAME = 131_000  # Chromium's frame size


def chunks(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


class Ctx:
    def __init__(self, args):
        self.shipped = args.shipped.rstrip("/")
        self.defaults = args.defaults.rstrip("/")
        self.deflate = args.deflate.rstrip("/")
        self.takeover = args.takeover.rstrip("/")
        self.site = args.site
        self.pids = args.pid
        self.session = None  # aiohttp session for WebSockets, made in main()

    def ws(self, base, path):
        return "ws://" + base.split("://", 1)[1] + path


# --- client helpers ---------------------------------------------------------


def wsc(url, **kw):
    """A `websockets` client connection (async context manager)."""
    kw.setdefault("max_size", 4 * MAX_MESSAGE)
    return connect(url, open_timeout=STEP, close_timeout=STEP, ping_interval=None, **kw)


def aio_ws(ctx, url, **kw):
    """An `aiohttp` client WebSocket (async context manager)."""
    kw.setdefault("max_msg_size", 4 * MAX_MESSAGE)
    return ctx.session.ws_connect(
        url, timeout=aiohttp.ClientWSTimeout(ws_receive=STEP, ws_close=STEP), **kw
    )


async def ws_echo(ws, message):
    """Sends with `websockets` and expects the same message (and type) back."""
    await ws.send(message)
    got = await within(ws.recv(), "echo")
    whole = message
    if not isinstance(message, (str, bytes)):
        parts = list(message)
        whole = "".join(parts) if isinstance(parts[0], str) else b"".join(parts)
    expect_eq(type(got), type(whole), "echo type")
    expect_eq(got, whole, "echo")


async def ws_expect_close(ws, code):
    """Expects the server's close frame with `code` (websockets) and no message before it."""
    try:
        got = await within(ws.recv(), f"close {code}")
        raise Failed(f"got a message {short(got)} instead of close {code}")
    except ConnectionClosed as e:
        rcvd = e.rcvd.code if e.rcvd else None
        expect_eq(rcvd, code, f"server's close code ({e})")


async def ws_send_quietly(ws, message, **kw):
    """Sends, ignoring a close that comes while sending (the server may refuse mid-message)."""
    try:
        await ws.send(message, **kw)
    except ConnectionClosed:
        pass


async def aio_expect(ws, kind, data):
    msg = await within(ws.receive(), "message")
    expect_eq(msg.type, kind, f"message type (data {short(msg.data)})")
    expect_eq(msg.data, data, "message data")


async def aio_expect_close(ws, code):
    msg = await within(ws.receive(), f"close {code}")
    expect_eq(msg.type, aiohttp.WSMsgType.CLOSE, f"message type (data {short(msg.data)})")
    expect_eq(msg.data, code, "server's close code")


# --- echo and fragmentation (shipped config); sizes and UTF-8 (default limits) --


@check("websockets: echo text, binary and empty messages")
async def _(ctx):
    async with wsc(ctx.ws(ctx.shipped, "/ws/echo")) as ws:
        await ws_echo(ws, "héllo wörld ✓ 🦀")
        await ws_echo(ws, bytes(range(256)))
        await ws_echo(ws, "")
        await ws_echo(ws, b"")
        await ws.close()
        expect_eq(ws.close_code, 1000, "close code")


@check("aiohttp: echo text, binary and empty messages")
async def _(ctx):
    async with aio_ws(ctx, ctx.ws(ctx.shipped, "/ws/echo")) as ws:
        for kind, data, send in [
            (aiohttp.WSMsgType.TEXT, "héllo wörld ✓ 🦀", ws.send_str),
            (aiohttp.WSMsgType.BINARY, bytes(range(256)), ws.send_bytes),
            (aiohttp.WSMsgType.TEXT, "", ws.send_str),
            (aiohttp.WSMsgType.BINARY, b"", ws.send_bytes),
        ]:
            await send(data)
            await aio_expect(ws, kind, data)
        expect(await ws.close(), "close() did not close")
        expect_eq(ws.close_code, 1000, "close code")


@check("websockets: 100 pipelined messages come back in order")
async def _(ctx):
    async with wsc(ctx.ws(ctx.shipped, "/ws/echo")) as ws:
        sent = [f"message {i}" if i % 2 else payload(i * 7, i) for i in range(100)]
        for m in sent:
            await ws.send(m)
        for i, m in enumerate(sent):
            expect_eq(await within(ws.recv(), f"echo {i}"), m, f"message {i}")


@check("websockets: 1 MiB binary message in 64 KiB fragments")
async def _(ctx):
    data = payload(MAX_MESSAGE, 1)
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo")) as ws:
        await ws_echo(ws, chunks(data, 64 * KIB))


@check("websockets: 1 MiB binary message from an async iterator of 100K fragments")
async def _(ctx):
    data = payload(MAX_MESSAGE, 2)

    async def fragments():
        for part in chunks(data, MAX_FRAME):
            await asyncio.sleep(0)
            yield part

    async with wsc(ctx.ws(ctx.defaults, "/ws/echo")) as ws:
        await ws.send(fragments())
        got = await within(ws.recv(), "echo")
        expect_eq(len(got), len(data), "length")
        expect(got == data, "echoed bytes differ")


@check("aiohttp: a 1 MiB binary message in one frame (limits.maxFrame, = maxMessage, exactly)")
async def _(ctx):
    data = payload(MAX_FRAME, 3)
    async with aio_ws(ctx, ctx.ws(ctx.defaults, "/ws/echo")) as ws:
        await ws.send_bytes(data)
        await aio_expect(ws, aiohttp.WSMsgType.BINARY, data)


@check("websockets: fragmented text (str fragments) comes back whole")
async def _(ctx):
    async with wsc(ctx.ws(ctx.shipped, "/ws/echo")) as ws:
        await ws_echo(ws, ["frag", "men", "ted ✓", "", " text"])
        await ws_echo(ws, [b"frag", b"mented ", b"binary"])


@check("websockets: a UTF-8 character split across fragments comes back whole")
async def _(ctx):
    async with wsc(ctx.ws(ctx.shipped, "/ws/echo")) as ws:
        # 'é' (c3 a9) and '€' (e2 82 ac) cut inside their byte sequences.
        await ws.send([b"caf\xc3", b"\xa9 ", b"\xe2", b"\x82", b"\xac"], text=True)
        expect_eq(await within(ws.recv(), "echo"), "café €", "echo")


@check("websockets: a 131,000-byte frame (Chromium's size) echoes on the shipped config")
async def _(ctx):
    async with wsc(ctx.ws(ctx.shipped, "/ws/echo")) as ws:
        await ws_echo(ws, payload(CHROMIUM_FRAME, 7))


@check("websockets: a 200 KB message in one frame echoes on the built-in defaults")
async def _(ctx):
    # What a Python client does with a large message: one frame. With a
    # maxFrame below maxMessage this was a 1009.
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo")) as ws:
        await ws_echo(ws, payload(200_000, 8))


@check("websockets: a frame over limits.maxFrame is closed with 1009")
async def _(ctx):
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo")) as ws:
        await ws_send_quietly(ws, payload(MAX_FRAME + 1, 4))
        await ws_expect_close(ws, 1009)


@check("aiohttp: a frame over limits.maxFrame is closed with 1009")
async def _(ctx):
    async with aio_ws(ctx, ctx.ws(ctx.defaults, "/ws/echo")) as ws:
        await ws.send_bytes(payload(3 * MAX_FRAME, 5))
        await aio_expect_close(ws, 1009)


@check("websockets: a message over limits.maxMessage is closed with 1009")
async def _(ctx):
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo")) as ws:
        await ws_send_quietly(ws, chunks(payload(MAX_MESSAGE + 1, 6), 64 * KIB))
        await ws_expect_close(ws, 1009)


@check("websockets: a text message over limits.maxMessage is closed with 1009")
async def _(ctx):
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo")) as ws:
        await ws_send_quietly(ws, ["x" * (64 * KIB)] * 17)
        await ws_expect_close(ws, 1009)


@check("websockets: invalid UTF-8 in a text frame is closed with 1007")
async def _(ctx):
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo")) as ws:
        # text=True sends the bytes in a text frame as they are, unchecked.
        await ws_send_quietly(ws, b"ok so far \xff\xfe", text=True)
        await ws_expect_close(ws, 1007)


@check("websockets: invalid UTF-8 inside a fragmented text message is closed with 1007")
async def _(ctx):
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo")) as ws:
        await ws_send_quietly(ws, [b"fine ", b"\xc3(", b" never ends"], text=True)
        await ws_expect_close(ws, 1007)


@check("aiohttp: a plain GET to a WebSocket path is 426")
async def _(ctx):
    async with ctx.session.get(ctx.shipped + "/ws/echo") as r:
        expect_eq(r.status, 426, "status")


# --- subprotocols and closing (the defaults server, with webSockets.protocol) --


@check("websockets: offering ['nope', 'json.v2'] negotiates json.v2")
async def _(ctx):
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo"), subprotocols=["nope", "json.v2"]) as ws:
        expect_eq(ws.subprotocol, "json.v2", "subprotocol")
        await ws_echo(ws, "over json.v2")


@check("websockets: the client's first listed offer wins: ['json.v2', 'chat.v1'] → json.v2")
async def _(ctx):
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo"), subprotocols=["json.v2", "chat.v1"]) as ws:
        expect_eq(ws.subprotocol, "json.v2", "subprotocol")


@check("aiohttp: offering ['nope', 'json.v2'] negotiates json.v2")
async def _(ctx):
    async with aio_ws(ctx, ctx.ws(ctx.defaults, "/ws/echo"), protocols=["nope", "json.v2"]) as ws:
        expect_eq(ws.protocol, "json.v2", "subprotocol")
        await ws.send_str("over json.v2")
        await aio_expect(ws, aiohttp.WSMsgType.TEXT, "over json.v2")


@check("websockets: offering only ['nope'] is refused with 400")
async def _(ctx):
    try:
        async with wsc(ctx.ws(ctx.defaults, "/ws/echo"), subprotocols=["nope"]) as ws:
            raise Failed(f"connected with subprotocol {ws.subprotocol!r}")
    except InvalidStatus as e:
        expect_eq(e.response.status_code, 400, "status")


@check("aiohttp: offering only ['nope'] is refused with 400")
async def _(ctx):
    try:
        async with aio_ws(ctx, ctx.ws(ctx.defaults, "/ws/echo"), protocols=["nope"]) as ws:
            raise Failed(f"connected with subprotocol {ws.protocol!r}")
    except aiohttp.WSServerHandshakeError as e:
        expect_eq(e.status, 400, "status")


@check("aiohttp: offering more than 10 subprotocols is refused with 400")
async def _(ctx):
    offers = [f"p{i}" for i in range(10)] + ["json.v2"]
    try:
        async with aio_ws(ctx, ctx.ws(ctx.defaults, "/ws/echo"), protocols=offers) as ws:
            raise Failed(f"connected with subprotocol {ws.protocol!r}")
    except aiohttp.WSServerHandshakeError as e:
        expect_eq(e.status, 400, "status")


@check("websockets: offering no subprotocol is accepted without one")
async def _(ctx):
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo")) as ws:
        expect_eq(ws.subprotocol, None, "subprotocol")
        await ws_echo(ws, "no subprotocol")


@check("websockets: close 1000 'bye' gets the server's close 1000")
async def _(ctx):
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo"), subprotocols=["chat.v1"]) as ws:
        await ws_echo(ws, "before closing")
        await ws.close(1000, "bye")
        expect_eq(ws.close_code, 1000, "server's close code")
        expect_eq(ws.protocol.close_sent.reason, "bye", "our reason")


@check("websockets: close 4001 'custom' gets the server's close 4001")
async def _(ctx):
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo"), subprotocols=["chat.v1"]) as ws:
        await ws.close(4001, "custom")
        expect_eq(ws.close_code, 4001, "server's close code")


@check("aiohttp: close 1000 'bye' and 4001 'custom' get the same code back")
async def _(ctx):
    for code, reason in [(1000, b"bye"), (4001, b"custom")]:
        async with aio_ws(ctx, ctx.ws(ctx.defaults, "/ws/echo"), protocols=["chat.v1"]) as ws:
            expect(await ws.close(code=code, message=reason), "close() did not close")
            expect_eq(ws.close_code, code, f"server's close code after {code}")


@check("websockets: ping gets a pong")
async def _(ctx):
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo"), subprotocols=["json.v2"]) as ws:
        pong = await ws.ping(b"are you there")
        latency = await within(pong, "pong")
        expect(latency >= 0, f"latency {latency}")
        await ws_echo(ws, "still open after ping")


@check("aiohttp: ping gets a pong with the same payload")
async def _(ctx):
    url = ctx.ws(ctx.defaults, "/ws/echo")
    async with aio_ws(ctx, url, protocols=["json.v2"], autoping=False) as ws:
        await ws.ping(b"payload 123")
        await aio_expect(ws, aiohttp.WSMsgType.PONG, b"payload 123")


# --- /ws/chat -----------------------------------------------------------------


class Peer:
    """One chat client, `websockets` or `aiohttp`, speaking JSON."""

    def __init__(self, name, ws, lib):
        self.name, self.ws, self.lib = name, ws, lib

    async def send(self, message):
        text = message if isinstance(message, str) else json.dumps(message)
        if self.lib == "websockets":
            await self.ws.send(text)
        else:
            await self.ws.send_str(text)

    async def recv(self):
        if self.lib == "websockets":
            text = await within(self.ws.recv(), f"message for {self.name}")
            expect(isinstance(text, str), f"{self.name}: got binary {short(text)}")
        else:
            msg = await within(self.ws.receive(), f"message for {self.name}")
            expect_eq(msg.type, aiohttp.WSMsgType.TEXT, f"{self.name}: message type")
            text = msg.data
        try:
            return json.loads(text)
        except ValueError:
            raise Failed(f"{self.name}: not JSON: {short(text)}")

    async def expect(self, want):
        got = await self.recv()
        expect_eq(got, want, f"{self.name} received")

    async def expect_error(self, about=""):
        got = await self.recv()
        expect(
            isinstance(got, dict)
            and set(got) == {"event", "error"}
            and got["event"] == "error"
            and isinstance(got["error"], str)
            and got["error"],
            f"{self.name}: want an error event, got {short(got)}",
        )
        expect(about in got["error"], f"{self.name}: error {got['error']!r} does not mention {about!r}")

    async def sync(self):
        """Proves nothing else is queued for this client: the next message is our own error."""
        await self.send({"event": "say", "room": "sync-barrier", "text": "?"})
        await self.expect_error("sync-barrier")


class Chat:
    """ann and bob on `websockets`, cat on `aiohttp`, each in `room` after `join()`."""

    def __init__(self, ctx, room):
        self.ctx, self.room = ctx, room
        self.stack = None

    async def __aenter__(self):
        self.stack = contextlib.AsyncExitStack()
        url = self.ctx.ws(self.ctx.shipped, "/ws/chat")
        self.ann = Peer("ann", await self.stack.enter_async_context(wsc(url)), "websockets")
        self.bob = Peer("bob", await self.stack.enter_async_context(wsc(url)), "websockets")
        self.cat = Peer("cat", await self.stack.enter_async_context(aio_ws(self.ctx, url)), "aiohttp")
        return self

    async def __aexit__(self, *exc):
        await self.stack.aclose()

    def all(self):
        return [self.ann, self.bob, self.cat]

    def presence(self, name, joined):
        return {"event": "presence", "room": self.room, "name": name, "joined": joined}

    async def join(self):
        """cat, then ann, then bob, so sorted members differ from the join order."""
        r = self.room
        await self.cat.send({"event": "join", "room": r, "name": "cat"})
        await self.cat.expect({"event": "joined", "room": r, "members": ["cat"]})
        await self.ann.send({"name": "ann", "room": r, "event": "join"})  # key order is free
        await self.ann.expect({"event": "joined", "room": r, "members": ["ann", "cat"]})
        await self.cat.expect(self.presence("ann", True))
        await self.bob.send({"event": "join", "room": r, "name": "bob"})
        await self.bob.expect({"event": "joined", "room": r, "members": ["ann", "bob", "cat"]})
        await self.ann.expect(self.presence("bob", True))
        await self.cat.expect(self.presence("bob", True))
        for p in self.all():
            await p.sync()


@check("chat: join → joined with sorted members; presence to the others only")
async def _(ctx):
    async with Chat(ctx, "lobby") as c:
        await c.join()


@check("chat: say → said to everyone in the room, sender included")
async def _(ctx):
    async with Chat(ctx, "say-room") as c:
        await c.join()
        await c.ann.send({"event": "say", "room": c.room, "text": "hi ✓ \"quoted\" \n new line"})
        for p in c.all():
            await p.expect({"event": "said", "room": c.room, "from": "ann", "text": "hi ✓ \"quoted\" \n new line"})
        await c.cat.send({"text": "from aiohttp", "room": c.room, "event": "say"})
        for p in c.all():
            await p.expect({"event": "said", "room": c.room, "from": "cat", "text": "from aiohttp"})
        for p in c.all():
            await p.sync()


@check("chat: say into a room not joined → error event, connection kept")
async def _(ctx):
    async with Chat(ctx, "kept") as c:
        await c.join()
        await c.bob.send({"event": "say", "room": "elsewhere", "text": "hello?"})
        await c.bob.expect_error("elsewhere")
        await c.bob.send({"event": "say", "room": c.room, "text": "still here"})
        for p in c.all():
            await p.expect({"event": "said", "room": c.room, "from": "bob", "text": "still here"})
        for p in c.all():
            await p.sync()


@check("chat: leave → presence joined:false to the others; saying there is then an error")
async def _(ctx):
    async with Chat(ctx, "leaving") as c:
        await c.join()
        await c.bob.send({"event": "leave", "room": c.room})
        await c.ann.expect(c.presence("bob", False))
        await c.cat.expect(c.presence("bob", False))
        await c.bob.send({"event": "say", "room": c.room, "text": "am I in?"})
        await c.bob.expect_error(c.room)
        await c.bob.send({"event": "leave", "room": c.room})
        await c.bob.expect_error(c.room)
        await c.ann.send({"event": "say", "room": c.room, "text": "bob left"})
        await c.ann.expect({"event": "said", "room": c.room, "from": "ann", "text": "bob left"})
        await c.cat.expect({"event": "said", "room": c.room, "from": "ann", "text": "bob left"})
        for p in c.all():
            await p.sync()


@check("chat: disconnecting (clean close, and a dropped TCP connection) → presence joined:false")
async def _(ctx):
    async with Chat(ctx, "gone") as c:
        await c.join()
        expect(await c.cat.ws.close(), "cat: close() did not close")
        expect_eq(c.cat.ws.close_code, 1000, "cat: server's close code")
        await c.ann.expect(c.presence("cat", False))
        await c.bob.expect(c.presence("cat", False))
        # bob's TCP connection drops without a close frame.
        c.bob.ws.transport.abort()
        await c.ann.expect(c.presence("bob", False))
        await c.ann.send({"event": "join", "room": c.room, "name": "ann"})
        await c.ann.expect({"event": "joined", "room": c.room, "members": ["ann"]})
        await c.ann.sync()


@check("chat: malformed requests → error events, connection kept")
async def _(ctx):
    async with Chat(ctx, "strict") as c:
        await c.join()
        bad = [
            "not json",
            "[1, 2, 3]",
            "{}",
            {"event": "dance", "room": c.room},
            {"event": "say", "room": c.room},
            {"event": "say", "room": c.room, "text": 42},
            {"event": "join", "room": "", "name": "ann"},
            {"event": "join", "room": c.room, "name": ""},
            {"event": "join", "room": c.room, "name": "x" * 65},
            {"event": "say", "room": c.room, "text": "hi", "extra": True},
        ]
        for message in bad:
            await c.ann.send(message)
            try:
                await c.ann.expect_error()
            except Failed as e:
                raise Failed(f"after {short(message)}: {e}")
        await c.ann.ws.send(b'{"event":"say","room":"strict","text":"binary"}')
        await c.ann.expect_error()
        await c.cat.ws.send_bytes(b"\x00\x01")
        await c.cat.expect_error()
        await c.ann.send({"event": "say", "room": c.room, "text": "still fine"})
        for p in c.all():
            await p.expect({"event": "said", "room": c.room, "from": "ann", "text": "still fine"})
        for p in c.all():
            await p.sync()


# --- static files and HTTP over aiohttp -----------------------------------------


def site_file(ctx, name):
    with open(os.path.join(ctx.site, name), "rb") as f:
        return f.read()


@check("aiohttp: GET / is 200 text/html with an ETag, the site's index.html")
async def _(ctx):
    index = site_file(ctx, "index.html")
    async with aiohttp.ClientSession() as s:
        async with s.get(ctx.shipped + "/") as r:
            expect_eq(r.status, 200, "status")
            expect(r.content_type == "text/html", f"Content-Type {r.headers.get('Content-Type')!r}")
            etag = r.headers.get("ETag")
            expect(etag and etag.startswith('"') and etag.endswith('"'), f"ETag {etag!r}")
            expect(r.headers.get("Last-Modified"), "no Last-Modified")
            expect_eq(r.headers.get("X-Content-Type-Options"), "nosniff", "web.json5's header")
            expect_eq(await r.read(), index, "body")


@check("aiohttp: If-None-Match with the ETag is 304; another ETag is 200")
async def _(ctx):
    async with aiohttp.ClientSession() as s:
        async with s.get(ctx.shipped + "/") as r:
            etag = r.headers["ETag"]
        async with s.get(ctx.shipped + "/", headers={"If-None-Match": etag}) as r:
            expect_eq(r.status, 304, "status")
            expect_eq(r.headers.get("ETag"), etag, "ETag on the 304")
            expect_eq(await r.read(), b"", "304 body")
        async with s.get(ctx.shipped + "/", headers={"If-None-Match": '"not-it", ' + etag}) as r:
            expect_eq(r.status, 304, "status for a list holding it")
        async with s.get(ctx.shipped + "/", headers={"If-None-Match": '"not-it"'}) as r:
            expect_eq(r.status, 200, "status for another ETag")


@check("aiohttp: Range bytes=0-9 is 206 with Content-Range")
async def _(ctx):
    index = site_file(ctx, "index.html")
    async with aiohttp.ClientSession() as s:
        async with s.get(ctx.shipped + "/", headers={"Range": "bytes=0-9"}) as r:
            expect_eq(r.status, 206, "status")
            expect_eq(r.headers.get("Content-Range"), f"bytes 0-9/{len(index)}", "Content-Range")
            expect_eq(await r.read(), index[:10], "body")
        async with s.get(ctx.shipped + "/", headers={"Range": "bytes=-5"}) as r:
            expect_eq(r.status, 206, "status of a suffix range")
            expect_eq(await r.read(), index[-5:], "suffix body")
        async with s.get(ctx.shipped + "/", headers={"Range": f"bytes={len(index)}-"}) as r:
            expect_eq(r.status, 416, "status past the end")
            expect_eq(r.headers.get("Content-Range"), f"bytes */{len(index)}", "416 Content-Range")


@check("aiohttp: GET /style.css is text/css; /chat.js is JavaScript")
async def _(ctx):
    async with aiohttp.ClientSession() as s:
        async with s.get(ctx.shipped + "/style.css") as r:
            expect_eq(r.status, 200, "status")
            expect_eq(r.content_type, "text/css", "Content-Type")
            expect_eq(await r.read(), site_file(ctx, "style.css"), "body")
        async with s.get(ctx.shipped + "/chat.js") as r:
            expect_eq(r.status, 200, "status")
            expect(r.content_type in ("text/javascript", "application/javascript"), f"Content-Type {r.content_type!r}")


@check("aiohttp: HEAD has the headers and no body; a missing file is 404")
async def _(ctx):
    index = site_file(ctx, "index.html")
    # One connection: a body sent after the HEAD would corrupt the next response.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s:
        async with s.head(ctx.shipped + "/") as r:
            expect_eq(r.status, 200, "HEAD status")
            expect_eq(r.headers.get("Content-Length"), str(len(index)), "HEAD Content-Length")
            expect_eq(await r.read(), b"", "HEAD body")
        async with s.get(ctx.shipped + "/no-such-file.html") as r:
            expect_eq(r.status, 404, "missing file status")
            await r.read()
        async with s.get(ctx.shipped + "/style.css") as r:
            expect_eq(r.status, 200, "GET after HEAD")
            expect_eq(await r.read(), site_file(ctx, "style.css"), "body after HEAD")


async def status(s, base):
    async with s.get(base + "/api/status") as r:
        expect_eq(r.status, 200, "/api/status status")
        expect_eq(r.content_type, "application/json", "/api/status Content-Type")
        return await r.json()


@check("aiohttp: /api/status is JSON with server 'wisp' and a stats object")
async def _(ctx):
    async with aiohttp.ClientSession() as s:
        v = await status(s, ctx.shipped)
        expect_eq(v.get("server"), "wisp", "server")
        expect(isinstance(v.get("stats"), dict), f"stats {short(v.get('stats'))}")
        for key in ["connections_open", "requests", "websockets_total", "limits"]:
            expect(key in v["stats"], f"no stats.{key} in {short(v['stats'])}")


@check("aiohttp: keep-alive: ten requests on one session use one connection")
async def _(ctx):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s:
        before = (await status(s, ctx.shipped))["stats"]
        for path in ["/", "/style.css", "/app.js", "/missing", "/favicon.svg"] * 2:
            async with s.get(ctx.shipped + path) as r:
                expect(r.status in (200, 404), f"{path}: status {r.status}")
                await r.read()
        after = (await status(s, ctx.shipped))["stats"]
        expect_eq(after["connections_total"] - before["connections_total"], 0, "new connections")
        expect_eq(after["requests"] - before["requests"], 11, "requests counted")



# --- permessage-deflate (the deflate and takeover servers) ----------------------

THRESHOLD = 256  # webSockets.compression's default threshold
TAIL = b"\x00\x00\xff\xff"  # the end of a sync flush, removed from every message (RFC 7692 §7.2.1)


def json_text(size, seed):
    """A JSON document of about `size` bytes: sensor readings, compressible as JSON is."""
    rnd = random.Random(seed)
    items, n = [], 2
    while n < size:
        item = {
            "id": len(items),
            "sensor": f"sensor-{rnd.randrange(64)}",
            "value": round(rnd.uniform(-50, 50), 3),
            "ok": rnd.random() < 0.9,
            "unit": rnd.choice(["°C", "kPa", "%", "lx"]),
        }
        n += len(json.dumps(item)) + 2
        items.append(item)
    return json.dumps(items, ensure_ascii=False)


def deflate_messages():
    """What every compressed connection echoes: (what, message)."""
    return [
        ("1 KiB JSON", json_text(1024, 1)),
        ("200 KiB JSON", json_text(200 * KIB, 2)),
        (f"text under the threshold ({THRESHOLD - 56} bytes)", "x" * (THRESHOLD - 56)),
        ("empty text", ""),
        ("64 KiB binary", (b"frame:" + payload(122, 3)) * 512),
        ("incompressible binary", os.urandom(20 * KIB)),
        ("the same 20 KiB three times (1/3)", json_text(20 * KIB, 4)),
        ("the same 20 KiB three times (2/3)", json_text(20 * KIB, 4)),
        ("the same 20 KiB three times (3/3)", json_text(20 * KIB, 4)),
    ]


def ext_params(value):
    """A Sec-WebSocket-Extensions answer as (name, {param: value or None})."""
    expect(value is not None, "no Sec-WebSocket-Extensions in the answer")
    expect("," not in value, f"more than one extension in {value!r}")
    name, *params = [p.strip() for p in value.split(";")]
    out = {}
    for p in params:
        k, _, v = p.partition("=")
        expect(k not in out, f"{k} twice in {value!r}")
        out[k.strip()] = v.strip() or None
    return name, out


def ws_deflate(ws):
    """The PerMessageDeflate extension a websockets connection agreed to (fails if none)."""
    exts = [e for e in ws.protocol.extensions if isinstance(e, PerMessageDeflate)]
    expect(len(exts) == 1, f"permessage-deflate not negotiated: extensions {ws.protocol.extensions}")
    return exts[0]


def expect_mode(ctx, base, params, what, offered=()):
    """The answer's context-takeover parameters for `base`'s mode: both forced
    in the default mode; with contextTakeover, each only when the client
    offered it (`offered`: the parameter names in the offer)."""
    for p in ["server_no_context_takeover", "client_no_context_takeover"]:
        if base != ctx.takeover:
            expect(p in params, f"{what}: no {p} in {params}")
        elif p not in offered:
            expect(p not in params, f"{what}: the takeover server answered {p} unasked: {params}")


async def ws_echo_all(ws):
    for what, message in deflate_messages():
        try:
            await ws_echo(ws, message)
        except Failed as e:
            raise Failed(f"{what}: {e}")


async def aio_echo_all(ws):
    for what, message in deflate_messages():
        if isinstance(message, str):
            await ws.send_str(message)
            kind = aiohttp.WSMsgType.TEXT
        else:
            await ws.send_bytes(message)
            kind = aiohttp.WSMsgType.BINARY
        try:
            await aio_expect(ws, kind, message)
        except Failed as e:
            raise Failed(f"{what}: {e}")


for _server in ["deflate", "takeover"]:

    @check(f"websockets: permessage-deflate by default on the {_server} server; JSON, text, binary echo")
    async def _(ctx, server=_server):
        base = getattr(ctx, server)
        async with wsc(ctx.ws(base, "/ws/echo")) as ws:
            ext = ws_deflate(ws)
            name, params = ext_params(ws.response.headers.get("Sec-WebSocket-Extensions"))
            expect_eq(name, "permessage-deflate", "extension")
            expect_mode(ctx, base, params, "default offer")
            if server == "deflate":
                expect(ext.remote_no_context_takeover and ext.local_no_context_takeover, f"agreed {params}")
            await ws_echo_all(ws)
            await ws.close()
            expect_eq(ws.close_code, 1000, "close code")

    @check(f"aiohttp: compress=15 on the {_server} server; JSON, text, binary echo")
    async def _(ctx, server=_server):
        base = getattr(ctx, server)
        async with aio_ws(ctx, ctx.ws(base, "/ws/echo"), compress=15) as ws:
            expect_eq(ws.compress, 15, "ws.compress")
            name, params = ext_params(ws._response.headers.get("Sec-WebSocket-Extensions"))
            expect_eq(name, "permessage-deflate", "extension")
            expect_mode(ctx, base, params, "aiohttp's offer")
            expect_eq(ws.client_notakeover, server == "deflate", "ws.client_notakeover")
            await aio_echo_all(ws)
            expect(await ws.close(), "close() did not close")
            expect_eq(ws.close_code, 1000, "close code")

    @check(f"aiohttp: compress=10 (server_max_window_bits=10) on the {_server} server")
    async def _(ctx, server=_server):
        base = getattr(ctx, server)
        async with aio_ws(ctx, ctx.ws(base, "/ws/echo"), compress=10) as ws:
            expect(ws.compress, "compression not negotiated")
            name, params = ext_params(ws._response.headers.get("Sec-WebSocket-Extensions"))
            bits = params.get("server_max_window_bits")
            expect(bits is not None and 8 <= int(bits) <= 10, f"server_max_window_bits in {params}")
            await aio_echo_all(ws)

    for _variant in [
        dict(client_no_context_takeover=False),
        dict(client_no_context_takeover=True, server_max_window_bits=10),
        dict(client_no_context_takeover=False, server_max_window_bits=12, server_no_context_takeover=True),
        dict(client_no_context_takeover=True, server_max_window_bits=15, client_max_window_bits=None),
        dict(server_max_window_bits=9, client_max_window_bits=9),
    ]:

        @check(f"websockets: ClientPerMessageDeflateFactory({', '.join(f'{k}={v}' for k, v in _variant.items())}) on the {_server} server")
        async def _(ctx, server=_server, variant=_variant):
            base = getattr(ctx, server)
            factory = ClientPerMessageDeflateFactory(**variant)
            async with wsc(ctx.ws(base, "/ws/echo"), extensions=[factory], compression=None) as ws:
                ext = ws_deflate(ws)
                _, params = ext_params(ws.response.headers.get("Sec-WebSocket-Extensions"))
                expect_mode(ctx, base, params, "this offer", [k for k, v in variant.items() if v is True])
                offered = variant.get("server_max_window_bits")
                if offered is not None:
                    bits = params.get("server_max_window_bits")
                    expect(bits is not None and int(bits) <= offered, f"server_max_window_bits in {params}, offered {offered}")
                if variant.get("server_no_context_takeover"):
                    expect("server_no_context_takeover" in params, f"asked for server_no_context_takeover: {params}")
                expect_eq(ext.local_no_context_takeover, server == "deflate" or variant.get("client_no_context_takeover", False), "client keeps no context")
                await ws_echo_all(ws)


@check("websockets: the shipped web.json5 negotiates permessage-deflate")
async def _(ctx):
    async with wsc(ctx.ws(ctx.shipped, "/ws/echo")) as ws:
        ws_deflate(ws)
        await ws_echo(ws, json_text(200 * KIB, 5))
        await ws_echo(ws, "short")


@check("websockets: a server without webSockets.compression declines the offer")
async def _(ctx):
    async with wsc(ctx.ws(ctx.defaults, "/ws/echo")) as ws:
        expect_eq(ws.protocol.extensions, [], "extensions")
        expect_eq(ws.response.headers.get("Sec-WebSocket-Extensions"), None, "Sec-WebSocket-Extensions")
        await ws_echo(ws, json_text(KIB, 6))


# --- the wire, with no library: a raw socket and zlib -------------------------


class Raw:
    """A WebSocket over a bare asyncio stream: frames masked and compressed by hand."""

    def __init__(self, reader, writer, headers):
        self.reader, self.writer, self.headers = reader, writer, headers

    @classmethod
    async def open(cls, base, path, offer):
        host, port = base.split("://", 1)[1].rsplit(":", 1)
        reader, writer = await within(asyncio.open_connection(host, int(port)), "connect")
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if offer:
            lines.append(f"Sec-WebSocket-Extensions: {offer}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await within(reader.readuntil(b"\r\n\r\n"), "the 101")
        status, *fields = head.decode("latin-1").split("\r\n")[:-2]
        expect(status.startswith("HTTP/1.1 101 "), f"status line {status!r}")
        headers = {}
        for f in fields:
            k, _, v = f.partition(":")
            headers[k.strip().lower()] = v.strip()
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        expect_eq(headers.get("sec-websocket-accept"), accept, "Sec-WebSocket-Accept")
        return cls(reader, writer, headers)

    def send(self, first, data):
        """One masked frame; `first` is the whole first byte (FIN, RSV, opcode)."""
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = bytes([first, 0x80 | n])
        elif n < 1 << 16:
            head = bytes([first, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([first, 0x80 | 127]) + n.to_bytes(8, "big")
        keys = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(data, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big") if n else b""
        self.writer.write(head + mask + masked)

    async def frame(self):
        """One server frame: (fin, rsv bits, opcode, payload)."""
        h = await within(self.reader.readexactly(2), "a frame")
        expect(not h[1] & 0x80, "the server masked a frame")
        n = h[1] & 0x7F
        if n == 126:
            n = int.from_bytes(await within(self.reader.readexactly(2), "a length"), "big")
        elif n == 127:
            n = int.from_bytes(await within(self.reader.readexactly(8), "a length"), "big")
        data = await within(self.reader.readexactly(n), "a payload") if n else b""
        return bool(h[0] & 0x80), h[0] & 0x70, h[0] & 0x0F, data

    async def close(self):
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def zdeflate(c, data):
    """One message from compressor `c`: a sync flush without its tail."""
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    expect(out.endswith(TAIL), "zlib's sync flush ends with 00 00 ff ff")
    return out[:-4]


async def raw_echo(raw, opcode, data, compressor, inflater, what):
    """Sends `data` compressed (RSV1) in one frame; expects the echo, with RSV1
    exactly when it is at least the threshold, inflating to `data`."""
    raw.send(0x80 | 0x40 | opcode, zdeflate(compressor, data))
    fin, rsv, op, wire = await raw.frame()
    expect_eq((fin, op), (True, opcode), f"{what}: echo frame")
    want_rsv = 0x40 if len(data) >= THRESHOLD else 0
    expect_eq(rsv, want_rsv, f"{what}: echo's RSV bits ({len(data)} bytes)")
    if rsv:
        expect(not wire.endswith(TAIL), f"{what}: the server left the 00 00 ff ff tail on")
        got = inflater.decompress(wire + TAIL)
    else:
        got = wire
    expect(got == data, f"{what}: echo differs ({len(got)} bytes for {len(data)})")
    return len(wire)


@check("raw socket: the default mode's answer, a compressed frame (RSV1) echoed with RSV1, a small one without")
async def _(ctx):
    raw = await Raw.open(ctx.deflate, "/ws/echo", "permessage-deflate")
    try:
        name, params = ext_params(raw.headers.get("sec-websocket-extensions"))
        expect_eq(name, "permessage-deflate", "extension")
        expect_eq(params, {"server_no_context_takeover": None, "client_no_context_takeover": None}, "parameters")
        for i, (opcode, data) in enumerate([
            (0x1, json_text(4 * KIB, 7).encode()),
            (0x2, (b"raw " * 1000)),
            (0x1, b"tiny"),
            (0x1, b"t" * THRESHOLD),
            (0x1, b"t" * (THRESHOLD - 1)),
        ]):
            # No context either way: a fresh compressor and inflater per message.
            c = zlib.compressobj(wbits=-15)
            d = zlib.decompressobj(wbits=-15)
            await raw_echo(raw, opcode, data, c, d, f"message {i}")
        # A message whose first frame has RSV1 and the continuations do not.
        data = json_text(30 * KIB, 8).encode()
        z = zdeflate(zlib.compressobj(wbits=-15), data)
        a, b, c = z[:10], z[10 : len(z) // 2], z[len(z) // 2 :]
        raw.send(0x40 | 0x1, a)
        raw.send(0x0, b)
        raw.send(0x80, c)
        fin, rsv, op, wire = await raw.frame()
        expect_eq((fin, rsv, op), (True, 0x40, 0x1), "echo of a fragmented compressed message")
        expect(zlib.decompressobj(wbits=-15).decompress(wire + TAIL) == data, "fragmented echo differs")
        raw.send(0x88, (1000).to_bytes(2, "big"))
        expect_eq((await raw.frame())[2], 0x8, "close answered")
    finally:
        await raw.close()


@check("raw socket: with contextTakeover both sides keep their context across messages")
async def _(ctx):
    raw = await Raw.open(ctx.takeover, "/ws/echo", "permessage-deflate; client_max_window_bits")
    try:
        _, params = ext_params(raw.headers.get("sec-websocket-extensions"))
        expect("client_no_context_takeover" not in params and "server_no_context_takeover" not in params, f"{params}")
        # Our compressor keeps to the window the server asks for, if it asks.
        c = zlib.compressobj(wbits=-int(params.get("client_max_window_bits") or 15))
        d = zlib.decompressobj(wbits=-15)
        data = json_text(8 * KIB, 9).encode()
        sizes = [await raw_echo(raw, 0x1, data, c, d, f"copy {i}") for i in range(3)]
        # The server may keep its context too: the later echoes refer back to the first.
        expect(sizes[2] < sizes[0], f"echo sizes {sizes}: the server did not use its context")
    finally:
        await raw.close()


@check("raw socket: RSV1 on a connection that offered no extension is closed with 1002")
async def _(ctx):
    raw = await Raw.open(ctx.deflate, "/ws/echo", None)
    try:
        expect_eq(raw.headers.get("sec-websocket-extensions"), None, "Sec-WebSocket-Extensions")
        raw.send(0x80 | 0x40 | 0x1, zdeflate(zlib.compressobj(wbits=-15), b"hello"))
        fin, rsv, op, data = await raw.frame()
        expect_eq((op, int.from_bytes(data[:2], "big")), (0x8, 1002), "close frame and code")
    finally:
        await raw.close()


# --- the end ------------------------------------------------------------------


@check("servers: still running, no WebSocket left open, limit hits counted")
async def _(ctx):
    for pid in ctx.pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise Failed(f"server {pid} has exited")
    async with aiohttp.ClientSession() as s:
        for base in [ctx.shipped, ctx.defaults, ctx.deflate, ctx.takeover]:
            # Connections close after their closing handshake: wait for it (bounded).
            deadline = time.monotonic() + STEP
            while True:
                stats = (await status(s, base))["stats"]
                if stats["websockets_open"] == 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            expect_eq(stats["websockets_open"], 0, f"{base}: websockets_open")
        # The defaults server refused two frames, two messages and two texts' UTF-8.
        limits = (await status(s, ctx.defaults))["stats"]["limits"]
        expect(limits["frame"] >= 2, f"limits.frame in {limits}")
        expect(limits["message"] >= 2, f"limits.message in {limits}")
        expect(limits["protocol"] >= 2, f"limits.protocol in {limits}")


async def limit_hits(ctx):
    """Both servers' stats.limits, to tell which limit a failed check ran into."""
    hits = {}
    for server, base in [
        ("shipped", ctx.shipped),
        ("defaults", ctx.defaults),
        ("deflate", ctx.deflate),
        ("takeover", ctx.takeover),
    ]:
        try:
            async with ctx.session.get(base + "/api/status") as r:
                hits[server] = (await r.json())["stats"]["limits"]
        except Exception:
            pass
    return hits


def hits_since(before, after):
    changed = [
        f"{server} limits.{key} +{n - before[server].get(key, 0)}"
        for server, limits in after.items()
        if server in before
        for key, n in limits.items()
        if isinstance(n, int) and n != before[server].get(key, 0)
    ]
    return "; server counted " + ", ".join(changed) if changed else ""


async def main(ctx):
    passed = failed = 0
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        ctx.session = session
        for name, timeout, fn in CHECKS:
            before = await limit_hits(ctx)
            t0 = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    await fn(ctx)
            except Failed as e:
                outcome = f"FAIL ({e})"
            except TimeoutError:
                outcome = f"FAIL (timed out after {timeout} s)"
            except Exception as e:
                detail = "".join(traceback.format_exception_only(type(e), e)).strip()
                outcome = f"FAIL ({detail})"
            else:
                outcome = "ok"
            if outcome == "ok":
                passed += 1
            else:
                failed += 1
                outcome += hits_since(before, await limit_hits(ctx))
            print(f"interop: {name} ... {outcome} [{time.monotonic() - t0:.2f} s]", flush=True)
    print(
        f"interop: websockets {websockets.__version__}, aiohttp {aiohttp.__version__},"
        f" {time.monotonic() - started:.1f} s",
        flush=True,
    )
    print(f"interop: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--shipped", required=True, help="base URL of wisp on web.json5")
    parser.add_argument("--defaults", required=True, help="base URL of wisp on default limits")
    parser.add_argument("--deflate", required=True, help="base URL of wisp with compression on")
    parser.add_argument("--takeover", required=True, help="base URL of wisp with contextTakeover")
    parser.add_argument("--site", required=True, help="the documents folder")
    parser.add_argument("--pid", type=int, action="append", default=[], help="a server's pid")
    sys.exit(asyncio.run(main(Ctx(parser.parse_args()))))
