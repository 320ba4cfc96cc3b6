"""What the Python check scripts share (scripts/interop.py and
scripts/tls-interop.py): a registry of named async checks, the failure they
raise, and deterministic payloads. Imported from the scripts' own folder."""

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


def payload(n, seed=0):
    """n deterministic, non-repeating-looking bytes."""
    return bytes((i * 31 + seed + (i >> 8)) & 0xFF for i in range(n))
