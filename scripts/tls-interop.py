"""TLS checks with third-party Python clients (`websockets`, `aiohttp`) against wisp.

Run by scripts/tls-interop, which makes the test CA, starts the server and
passes where it is:

    tls-interop.py --https URL --ca FILE [--docs DIR]

Every client trusts only the test CA (an `ssl.SSLContext` from --ca) and checks
the host name. One line per check, `tls-interop: ok ...` or `tls-interop: FAIL
...`; the exit status is 1 if any check failed. Each check has its own timeout.
"""

import argparse
import asyncio
import os
import ssl
import sys
import traceback

import aiohttp
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from checks import CHECKS, Failed, check, expect, payload

STEP = 5  # seconds for any one handshake, receive or close
MIB = 1 << 20


class Ctx:
    def __init__(self, args):
        self.https = args.https.rstrip("/")
        # The certificate names localhost and 127.0.0.1; use the name.
        port = self.https.rsplit(":", 1)[1]
        self.base = f"https://localhost:{port}"
        self.wss = f"wss://localhost:{port}"
        self.docs = args.docs
        self.ssl = ssl.create_default_context(cafile=args.ca)


def tls_version(ws):
    obj = ws.transport.get_extra_info("ssl_object")
    return obj.version() if obj else "no TLS"


def wss(ctx, path="/ws/echo", **kw):
    return connect(
        ctx.wss + path,
        ssl=ctx.ssl,
        open_timeout=STEP,
        close_timeout=STEP,
        ping_interval=None,
        max_size=4 * MIB,
        **kw,
    )


async def echo(ws, message):
    await ws.send(message)
    got = await asyncio.wait_for(ws.recv(), STEP)
    expect(type(got) is type(message), f"echo type {type(got).__name__}, want {type(message).__name__}")
    expect(got == message, f"echo differs ({len(got)} vs {len(message)})")


@check("websockets wss:// text echo", timeout=20)
async def ws_text(ctx):
    async with wss(ctx) as ws:
        await echo(ws, "héllo over TLS ✓")
        return f"{tls_version(ws)}, {ws.response.status_code} Switching Protocols"


@check("websockets wss:// binary echo", timeout=20)
async def ws_binary(ctx):
    async with wss(ctx) as ws:
        for n in (0, 1, 125, 126, 65535, 65536):
            await echo(ws, payload(n, n))
        return "0, 1, 125, 126, 65535, 65536 B"


@check("websockets wss:// 1 MiB message", timeout=30)
async def ws_large(ctx):
    async with wss(ctx) as ws:
        await echo(ws, payload(MIB, 7))
        await echo(ws, "x" * MIB)
        return "binary and text of 1 MiB"


@check("websockets wss:// close code echoed", timeout=20)
async def ws_close(ctx):
    async with wss(ctx) as ws:
        await echo(ws, "before close")
        await ws.close(4321, "done here")
        rcvd = ws.protocol.close_rcvd  # the server's close frame
        expect(rcvd is not None, "no close frame from the server")
        expect(rcvd.code == 4321, f"the server's close code is {rcvd.code}, want 4321")
        try:
            await asyncio.wait_for(ws.recv(), STEP)
            raise Failed("a message after the close")
        except ConnectionClosed:
            pass
        return f"4321 back ({rcvd.reason!r})"


@check("aiohttp GET over https", timeout=20)
async def aio_get(ctx):
    timeout = aiohttp.ClientTimeout(total=STEP * 2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(ctx.base + "/", ssl=ctx.ssl) as r:
            body = await r.read()
            expect(r.status == 200, f"status {r.status}")
            expect(r.version == aiohttp.HttpVersion11, f"HTTP version {r.version}")
            if ctx.docs:
                with open(os.path.join(ctx.docs, "index.html"), "rb") as f:
                    expect(body == f.read(), "the body is not index.html")
        async with session.get(ctx.base + "/api/status", ssl=ctx.ssl) as r:
            status = await r.json()
            expect(r.status == 200, f"/api/status: status {r.status}")
            expect(status.get("server") == "wisp", f"/api/status: {status!r}")
        return f"/ 200 ({len(body)} B, the file), /api/status 200"


async def main(args):
    ctx = Ctx(args)
    failed = 0
    for name, timeout, fn in CHECKS:
        try:
            note = await asyncio.wait_for(fn(ctx), timeout)
            print(f"tls-interop: ok    {name}{': ' + note if note else ''}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            failed += 1
            if isinstance(e, Failed):
                why = str(e)
            elif isinstance(e, TimeoutError):
                why = f"did not finish within {timeout} s"
            else:
                why = "".join(traceback.format_exception_only(e)).strip()
            print(f"tls-interop: FAIL  {name}: {why}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--https", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--docs")
    sys.exit(asyncio.run(main(p.parse_args())))
