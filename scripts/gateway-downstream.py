"""The downstreams scripts/gateway puts behind wisp's gateway: real servers
written with the Python `websockets` and `aiohttp` libraries, each bound to
127.0.0.1 on a port the OS picks. It prints one line when it is ready, its URL
(`ws://127.0.0.1:PORT` or `http://127.0.0.1:PORT`), and serves until killed.

    gateway-downstream.py ws     # a WebSocket echo with a few text commands
    gateway-downstream.py http   # an HTTP server: /hello, /echo, /upload, /download, /slow

The WebSocket echo sends every text and binary message back, selects the
first subprotocol the client offers that it knows (`chat`, `superchat`), and
answers these text messages instead of echoing them:

    close:CODE:REASON   closes with that code and reason
    headers             a JSON object of the upgrade's headers (lower-case name -> list of values)
    path                the request's path and query
    closed:ID           a JSON object {code, reason} of the close frame received on
                        the connection opened with ?id=ID ({} while it is open)

The HTTP server answers GET /hello with `hello`; any method on /echo with a
JSON object {method, path, headers, body_bytes} (and the method in `X-Method`); POST /upload with a JSON object
{bytes, sha256} of the body, read as a stream; GET /download?n=BYTES with n
bytes streamed in 64 KiB chunks, their SHA-256 in `X-Content-SHA256`; /slow
never answers. Anything else is aiohttp's 404.
"""

import asyncio
import hashlib
import json
import sys

from aiohttp import web
from websockets.asyncio.server import serve

SUBPROTOCOLS = ("chat", "superchat")
CHUNK = 64 * 1024
MAX_MESSAGE = 32 * 1024 * 1024

# The close frame each ?id= connection received, once it has closed.
closes = {}


def headers_of(items):
    seen = {}
    for name, value in items:
        seen.setdefault(name.lower(), []).append(value)
    return seen


# --- the WebSocket echo -------------------------------------------------------


def select_subprotocol(_connection, offered):
    return next((p for p in offered if p in SUBPROTOCOLS), None)


async def echo(ws):
    request = ws.request
    conn_id = None
    if "?" in request.path:
        query = dict(
            kv.split("=", 1) for kv in request.path.split("?", 1)[1].split("&") if "=" in kv
        )
        conn_id = query.get("id")
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("close:"):
                _, code, reason = message.split(":", 2)
                await ws.close(int(code), reason)
            elif message == "headers":
                await ws.send(json.dumps(headers_of(request.headers.raw_items())))
            elif message == "path":
                await ws.send(request.path)
            elif isinstance(message, str) and message.startswith("closed:"):
                await ws.send(json.dumps(closes.get(message[len("closed:") :], {})))
            else:
                await ws.send(message)
    finally:
        if conn_id is not None:
            rcvd = ws.protocol.close_rcvd
            closes[conn_id] = (
                {"code": rcvd.code, "reason": rcvd.reason} if rcvd else {"code": 1006, "reason": ""}
            )


async def serve_ws():
    async with serve(
        echo,
        "127.0.0.1",
        0,
        select_subprotocol=select_subprotocol,
        max_size=MAX_MESSAGE,
        ping_interval=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"ws://127.0.0.1:{port}", flush=True)
        await server.serve_forever()


# --- the HTTP server ------------------------------------------------------------


async def hello(_request):
    return web.Response(text="hello")


async def echo_http(request):
    body = await request.read()
    raw = ((n.decode("latin-1"), v.decode("latin-1")) for n, v in request.raw_headers)
    seen = {
        "method": request.method,
        "path": request.path_qs,
        "headers": headers_of(raw),
        "body_bytes": len(body),
    }
    # The method in a header too: the answer to a HEAD has no body.
    return web.json_response(seen, headers={"X-Method": request.method})


async def upload(request):
    digest, count = hashlib.sha256(), 0
    async for chunk in request.content.iter_chunked(CHUNK):
        digest.update(chunk)
        count += len(chunk)
    return web.json_response({"bytes": count, "sha256": digest.hexdigest()})


def block(k):
    """The k-th 64 KiB chunk of a download: differs from chunk to chunk."""
    return hashlib.sha256(k.to_bytes(8, "big")).digest() * (CHUNK // 32)


def pieces(n):
    for k in range((n + CHUNK - 1) // CHUNK):
        yield block(k)[: min(CHUNK, n - k * CHUNK)]


async def download(request):
    n = int(request.query.get("n", "0"))
    digest = hashlib.sha256()
    for piece in pieces(n):
        digest.update(piece)
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(n),
            "X-Content-SHA256": digest.hexdigest(),
        }
    )
    await response.prepare(request)
    for piece in pieces(n):
        await response.write(piece)
    await response.write_eof()
    return response


async def slow(_request):
    await asyncio.Event().wait()


async def serve_http():
    app = web.Application(client_max_size=MAX_MESSAGE)
    app.router.add_get("/hello", hello)
    app.router.add_route("*", "/echo", echo_http)
    app.router.add_post("/upload", upload)
    app.router.add_get("/download", download)
    app.router.add_route("*", "/slow", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    modes = {"ws": serve_ws, "http": serve_http}
    if len(sys.argv) != 2 or sys.argv[1] not in modes:
        sys.exit("usage: gateway-downstream.py ws|http")
    try:
        asyncio.run(modes[sys.argv[1]]())
    except KeyboardInterrupt:
        pass
