"""What the Python check scripts share (scripts/interop.py,
scripts/tls-interop.py and scripts/gateway.py): a registry of named async
checks, the failure they raise, deterministic payloads, and a runner that
prints one line per check. Imported from the scripts' own folder."""

import asyncio
import time
import traceback

CHECKS = []


def check(name, timeout=15):
    """Registers an async check(ctx); it fails by raising."""

    def register(fn):
        CHECKS.append((name, timeout, fn))
        return fn

    return register


class Failed(Exception):
    pass


def expect(cond, message):
    if not cond:
        raise Failed(message)


def expect_eq(got, want, what):
    if got != want:
        raise Failed(f"{what}: got {short(got)}, want {short(want)}")


def short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


STEP = 5  # seconds for any one receive, handshake or close


async def within(awaitable, what):
    """Awaits one step (a receive, a pong) for at most STEP seconds."""
    try:
        return await asyncio.wait_for(awaitable, STEP)
    except TimeoutError:
        raise Failed(f"no {what} within {STEP} s") from None


def payload(n, seed=0):
    """n deterministic, non-repeating-looking bytes."""
    return bytes((i * 31 + seed + (i >> 8)) & 0xFF for i in range(n))


async def run_checks(ctx, name):
    """Runs every registered check in order, each under its own timeout, and
    prints one line per check (`NAME: ok    what [1.23 s]` or
    `NAME: FAIL  what: why [...]`), then `NAME: N passed, M failed`. Returns
    the exit status: 1 if any check failed."""
    passed = failed = 0
    for what, timeout, fn in CHECKS:
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(fn(ctx), timeout)
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            failed += 1
            if isinstance(e, Failed):
                why = str(e)
            elif isinstance(e, TimeoutError):
                why = f"did not finish within {timeout} s"
            else:
                why = "".join(traceback.format_exception_only(e)).strip()
            print(f"{name}: FAIL  {what}: {why} [{time.monotonic() - t0:.2f} s]", flush=True)
        else:
            passed += 1
            print(f"{name}: ok    {what} [{time.monotonic() - t0:.2f} s]", flush=True)
    print(f"{name}: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0
