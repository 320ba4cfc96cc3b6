"""The application protocols' own client snippets, translated line for line
into Python, against wisp's examples; and the router's MessagePack codec
from Python's `msgpack` package.

Run by scripts/interop, which starts examples/xsockets_controllers and
examples/router and passes their addresses:

    xsockets_interop.py --xsockets URL --router URL

The XSockets documentation's JavaScript (seeds/002) is quoted above each
translation; `websockets` stands in for the browser's WebSocket. The last
line printed is `xsockets-interop: N passed, M failed`; the exit status is
1 if any check failed.
"""

import argparse
import asyncio
import json
import sys

import msgpack
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from checks import STEP, Failed, check, expect, expect_eq, run_checks, within


class Ctx:
    def __init__(self, args):
        self.xsockets = "ws://" + args.xsockets.split("://", 1)[1].rstrip("/") + "/xsockets"
        self.router = "ws://" + args.router.split("://", 1)[1].rstrip("/") + "/ws/api"


def websocket(url, protocol=None):
    """`new WebSocket(url, protocol)`."""
    subprotocols = [protocol] if protocol else None
    return connect(url, subprotocols=subprotocols, open_timeout=STEP, close_timeout=STEP, ping_interval=None)


async def onmessage(conn):
    """The next `conn.onmessage` event's data."""
    return await within(conn.recv(), "a message")


# --- XSockets (seeds/002) ---------------------------------------------------


@check("XSockets: {t: 'foo', c:'bar', d:'some message'} reaches Bar.Foo(string)")
async def _(ctx):
    # var conn = new WebSocket('ws://…/xsockets', 'XSocketsNET');
    async with websocket(ctx.xsockets, "XSocketsNET") as conn:
        expect_eq(conn.subprotocol, "XSocketsNET", "negotiated subprotocol")
        # conn.send(JSON.stringify({t: 'foo', c:'bar', d:'some message'}));
        await conn.send(json.dumps({"t": "foo", "c": "bar", "d": "some message"}))
        # conn.onmessage = function(d){console.log(d.data)}
        got = json.loads(await onmessage(conn))
        expect_eq(got, {"t": "foo", "c": "bar", "d": {"bound": "Foo(string)", "m": "some message"}}, "answer")


@check("XSockets: {t: 'foo', c:'bar', d:{name:'Steve', Age:42}} reaches Bar.Foo(Person)")
async def _(ctx):
    async with websocket(ctx.xsockets, "XSocketsNET") as conn:
        # {t: 'foo', c:'bar', d:{name:'Steve', Age:42}};
        await conn.send(json.dumps({"t": "foo", "c": "bar", "d": {"name": "Steve", "Age": 42}}))
        got = json.loads(await onmessage(conn))
        want = {"t": "foo", "c": "bar", "d": {"bound": "Foo(Person)", "name": "Steve", "Age": 42}}
        expect_eq(got, want, "answer")


@check("XSockets: DemoProtocol, {t:'foo',c:'generic',d:'hi'} gets the open message and its echo")
async def _(ctx):
    # var conn = new WebSocket('ws://','DemoProtocol');
    async with websocket(ctx.xsockets, "DemoProtocol") as conn:
        expect_eq(conn.subprotocol, "DemoProtocol", "negotiated subprotocol")
        # var json = {t:'foo',c:'generic',d:'hi'}
        message = {"t": "foo", "c": "generic", "d": "hi"}
        # var m = JSON.stringify(json)
        m = json.dumps(message)
        # conn.send(m)
        await conn.send(m)
        # "This would return a open message from the generic controller as well as the message that we sent in."
        opened = json.loads(await onmessage(conn))
        expect_eq((opened.get("t"), opened.get("c")), ("open", "generic"), f"open message {opened}")
        expect_eq(json.loads(await onmessage(conn)), message, "echo")


@check("XSockets: DemoProtocol's {M, J} through the translator to Demo.Foo(string s, int i)")
async def _(ctx):
    async with websocket(ctx.xsockets, "DemoProtocol") as conn:
        # var json = {M:'foo',J:'{s:\'bar\',i:42}'}
        message = {"M": "foo", "J": "{s:'bar',i:42}"}
        # var m = JSON.stringify(json)
        m = json.dumps(message)
        await conn.send(m)
        got = json.loads(await onmessage(conn))
        expect_eq(got.get("M"), "foo", f"M of {got}")
        expect_eq(json.loads(got["J"]), {"stringValue": "bar", "intValue": 42}, "J")


@check("XSockets: an unparseable message closes the connection with 1007")
async def _(ctx):
    # "If we ignore that there will be an error and the connection will be closed."
    async with websocket(ctx.xsockets, "XSocketsNET") as conn:
        await conn.send("not an IMessage")
        try:
            got = await within(conn.recv(), "the close")
            raise Failed(f"got {got!r} instead of a close")
        except ConnectionClosed as e:
            expect_eq(e.rcvd.code if e.rcvd else None, 1007, "close code")


@check("XSockets: a MessagePack IMessage is answered in MessagePack")
async def _(ctx):
    async with websocket(ctx.xsockets, "XSocketsNET") as conn:
        await conn.send(msgpack.packb({"t": "foo", "c": "bar", "d": {"name": "Steve", "Age": 42}}))
        got = await onmessage(conn)
        expect(isinstance(got, bytes), f"a text answer {got!r}")
        expect_eq(msgpack.unpackb(got)["d"]["bound"], "Foo(Person)", "bound")


# --- the router's MessagePack codec (examples/router) -------------------------


@check("router: msgpack events with id, ack and trace come back in MessagePack")
async def _(ctx):
    async with websocket(ctx.router) as ws:
        await ws.send(msgpack.packb({"event": "add", "a": 2, "b": 40, "id": 1, "ack": True, "trace": "t-9"}))
        reply = await onmessage(ws)
        expect(isinstance(reply, bytes), f"a text reply {reply!r}")
        expect_eq(msgpack.unpackb(reply), {"event": "sum", "value": 42, "id": 1, "trace": "t-9"}, "reply")
        expect_eq(msgpack.unpackb(await onmessage(ws)), {"event": "ack", "id": 1, "trace": "t-9"}, "ack")
        # Every MessagePack type a JSON value has, through the same typed closure.
        await ws.send(msgpack.packb({"event": "greet", "name": "ünï", "extra": [None, True, 1.5, -3, {"k": []}]}))
        expect_eq(msgpack.unpackb(await onmessage(ws)), {"event": "greeting", "text": "hello ünï"}, "greeting")
        # JSON on the same connection is answered in JSON.
        await ws.send(json.dumps({"event": "add", "a": 1, "b": 1}))
        expect_eq(json.loads(await onmessage(ws)), {"event": "sum", "value": 2}, "JSON reply")


@check("router: bad MessagePack gets the error event, in MessagePack, and the socket stays open")
async def _(ctx):
    async with websocket(ctx.router) as ws:
        for bad, want in [
            (msgpack.packb({1: "integer key"}), "invalid MessagePack: invalid type: integer `1`, expected a string key"),
            (msgpack.packb([1, 2]), "message is not a MessagePack map"),
            (b"\xdd\xff\xff\xff\xff", "invalid MessagePack: the message ends too soon"),
        ]:
            await ws.send(bad)
            expect_eq(msgpack.unpackb(await onmessage(ws)), {"event": "error", "error": want}, f"for {bad!r}")
        await ws.send(msgpack.packb({"event": "add", "a": 1, "b": 2}))
        expect_eq(msgpack.unpackb(await onmessage(ws)), {"event": "sum", "value": 3}, "still open")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--xsockets", required=True, help="base URL of examples/xsockets_controllers")
    parser.add_argument("--router", required=True, help="base URL of examples/router")
    sys.exit(asyncio.run(run_checks(Ctx(parser.parse_args()), "xsockets-interop")))
