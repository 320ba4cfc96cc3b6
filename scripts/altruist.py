"""Altruist's own client snippets, translated line for line into Python,
against the altruist_portal example (examples/altruist_portal.rs).

Run by scripts/interop, which starts the example and passes its address and
the demo token its banner prints:

    altruist.py --url http://127.0.0.1:PORT --token JWT

The JavaScript in Altruist's WebSocket transport document is the contract:

    const ws = new WebSocket('ws://localhost:8080/ws');
    ws.onopen = () => {
      ws.send(JSON.stringify({ messageCode: 4, event: "handshake" }));
    };
    ws.onmessage = (event) => {
      const data = JSON.parse(event.data);
      console.log('Received:', data);
    };
    ws.send(JSON.stringify({ messageCode: 4, event: "chat", text: "Hello server!" }));

and, for the shield, `new WebSocket('ws://localhost:8080/ws', { headers:
{ 'Authorization': 'Bearer <token>' } })`. The same packets go as
MessagePack (Altruist's `codec.provider: msgpack`) with the `msgpack`
package. The last line printed is `altruist: N passed, M failed`.
"""

import argparse
import asyncio
import json
import sys

import aiohttp
import msgpack
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from checks import STEP, Failed, check, expect, expect_eq, run_checks, within


class Ctx:
    def __init__(self, args):
        self.url = args.url.rstrip("/")
        self.token = args.token

    def ws(self, path):
        return "ws://" + self.url.split("://", 1)[1] + path


def wsc(url, **kw):
    return connect(url, open_timeout=STEP, close_timeout=STEP, ping_interval=None, **kw)


async def received(ws):
    """ws.onmessage: a JSON text frame or a MessagePack binary frame, decoded."""
    data = await within(ws.recv(), "a packet")
    if isinstance(data, str):
        return "json", json.loads(data)
    return "msgpack", msgpack.unpackb(data)


@check("the snippet: handshake then chat on ws://host/ws, messageCode 4 on both")
async def _(ctx):
    # const ws = new WebSocket('ws://localhost:8080/ws');
    async with wsc(ctx.ws("/ws")) as ws:
        # ws.onopen = () => { ws.send(JSON.stringify({ messageCode: 4, event: "handshake" })); };
        await ws.send(json.dumps({"messageCode": 4, "event": "handshake"}))
        # ws.onmessage = (event) => { const data = JSON.parse(event.data); ... };
        codec, data = await received(ws)
        print("Received:", data)
        expect_eq(codec, "json", "the reply's codec")
        expect_eq(data["event"], "handshake", "event")
        expect_eq(data["messageCode"], 4, "messageCode")
        client_id = data["clientId"]
        expect(isinstance(client_id, str) and client_id, f"clientId {client_id!r}")
        # ws.send(JSON.stringify({ messageCode: 4, event: "chat", text: "Hello server!" }));
        await ws.send(json.dumps({"messageCode": 4, "event": "chat", "text": "Hello server!"}))
        codec, data = await received(ws)
        print("Received:", data)
        want = {"event": "chat", "text": "Hello server!", "clientId": client_id, "messageCode": 4}
        expect_eq(data, want, "the chat, back to the sender in the waiting room")


@check("the snippet on the portals /ws/chat and /ws/game: both shake hands")
async def _(ctx):
    for portal, code in [("/ws/chat", 4), ("/ws/game", 7)]:
        async with wsc(ctx.ws(portal)) as ws:
            await ws.send(json.dumps({"messageCode": code, "event": "handshake"}))
            _, data = await received(ws)
            expect_eq((data["event"], data["messageCode"]), ("handshake", code), portal)


@check("MessagePack: the handshake and chat packets as binary frames get MessagePack back")
async def _(ctx):
    async with wsc(ctx.ws("/ws/game")) as game, wsc(ctx.ws("/ws/chat")) as chat:
        await game.send(msgpack.packb({"messageCode": 4, "event": "handshake"}))
        codec, data = await received(game)
        expect_eq(codec, "msgpack", "the reply's codec")
        expect_eq((data["event"], data["messageCode"]), ("handshake", 4), "handshake")
        # The chat portal's client speaks MessagePack; the game's spoke it too.
        await chat.send(msgpack.packb({"messageCode": 4, "event": "chat", "text": "Hello server!"}))
        for who, ws in [("sender", chat), ("lobby peer", game)]:
            codec, data = await received(ws)
            expect_eq(codec, "msgpack", f"{who}'s codec")
            expect_eq(data["text"], "Hello server!", f"{who}'s chat")
            expect_eq(data["messageCode"], 4, f"{who}'s messageCode")


@check("aiohttp: a JSON client and a MessagePack client in one lobby each hear the chat in their own codec")
async def _(ctx):
    async with aiohttp.ClientSession() as s:
        timeout = aiohttp.ClientWSTimeout(ws_receive=STEP, ws_close=STEP)
        async with s.ws_connect(ctx.ws("/ws/chat"), timeout=timeout) as texter, s.ws_connect(
            ctx.ws("/ws/chat"), timeout=timeout
        ) as packer:
            await packer.send_bytes(msgpack.packb({"event": "handshake"}))
            msg = await within(packer.receive(), "handshake")
            expect_eq(msg.type, aiohttp.WSMsgType.BINARY, "handshake reply type")
            await texter.send_str(json.dumps({"messageCode": 4, "event": "chat", "text": "hi"}))
            msg = await within(texter.receive(), "own chat")
            expect_eq(msg.type, aiohttp.WSMsgType.TEXT, "JSON sender's copy")
            expect_eq(json.loads(msg.data)["text"], "hi", "text")
            msg = await within(packer.receive(), "peer's chat")
            expect_eq(msg.type, aiohttp.WSMsgType.BINARY, "MessagePack peer's copy")
            expect_eq(msgpack.unpackb(msg.data)["messageCode"], 4, "messageCode")


@check("the waiting room: a connection that joins a room leaves the lobby")
async def _(ctx):
    async with wsc(ctx.ws("/ws/chat")) as mover, wsc(ctx.ws("/ws")) as stayer:
        await mover.send(json.dumps({"event": "join", "room": "red"}))
        _, data = await received(mover)
        expect_eq(data, {"event": "joined", "room": "red"}, "join")
        await stayer.send(json.dumps({"event": "chat", "text": "lobby only"}))
        _, data = await received(stayer)
        expect_eq(data["text"], "lobby only", "the stayer's own copy")
        await mover.send(json.dumps({"event": "chat", "text": "red only"}))
        _, data = await received(mover)
        expect_eq(data["text"], "red only", "the mover heard nothing from the lobby")


@check("the shield: a Bearer token in the handshake lets in; none gets 401")
async def _(ctx):
    try:
        async with wsc(ctx.ws("/ws/secure")):
            raise Failed("opened without a token")
    except InvalidStatus as e:
        expect_eq(e.response.status_code, 401, "status without a token")
    # new WebSocket('ws://localhost:8080/ws', { headers: { 'Authorization': 'Bearer <token>' } });
    headers = {"Authorization": f"Bearer {ctx.token}"}
    async with wsc(ctx.ws("/ws/secure"), additional_headers=headers) as ws:
        await ws.send(json.dumps({"messageCode": 1, "event": "whoami"}))
        _, data = await received(ws)
        expect_eq(data, {"event": "whoami", "sub": "demo", "messageCode": 1}, "whoami")


@check("the site: altruist.html and its script are served beside the sockets")
async def _(ctx):
    async with aiohttp.ClientSession() as s:
        async with s.get(ctx.url + "/altruist.html") as r:
            expect_eq(r.status, 200, "altruist.html")
            expect("altruist.js" in await r.text(), "the page loads altruist.js")
        async with s.get(ctx.url + "/altruist.js") as r:
            expect_eq(r.status, 200, "altruist.js")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="base URL of the altruist_portal example")
    parser.add_argument("--token", required=True, help="the demo token from its banner")
    sys.exit(asyncio.run(run_checks(Ctx(parser.parse_args()), "altruist")))
