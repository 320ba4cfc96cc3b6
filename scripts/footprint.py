#!/usr/bin/env python3
"""Idle RSS of a wisp binary, measured as BENCHMARKS.md does, with the breakdown.

footprint.py BIN [--starts N] [--port P] [--wait S] [--used] [--sections] [--pages-out FILE]
footprint.py exercise PORT


Each start: copy web.json5 (its port changed to P) and site/ to a temporary
folder, start BIN there, wait for its listening socket (read from
/proc/net/tcp, so no probe connection is made), connect once, wait a moment,
then read VmRSS from /proc/PID/status, the resident KiB of each mapping from
/proc/PID/smaps, and (run as root) which pages of the binary are present from
/proc/PID/pagemap, attributed to the ELF sections they hold (readelf -S).
With --used, the server first answers what a device's first visitor asks
(`exercise`: GET / and one WebSocket echo on /ws/echo), then the figures are
read with the one connection held as before: the idle RSS of a server that
has been used, where the plain figure is that of one never used.

`exercise PORT` does that visit alone (scripts/footprint traces it).
"""
import argparse, bisect, os, re, shutil, signal, socket, struct, subprocess, sys, tempfile, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = 4096


def lld_map(path):
    """The input sections of an lld -Map file: (output section, address,
    size, text) for each line that names one, and for the lines that name a
    symbol inside the input section before them (indented further)."""
    out = None
    for line in open(path):
        m = re.match(r"\s*([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+(\d+)\s(.*)$", line)
        if not m:
            continue
        vma, size, rest = int(m.group(1), 16), int(m.group(3), 16), m.group(5)
        if not rest.startswith(" "):
            out = rest.strip()
            continue
        yield out, vma, size, rest


def listening(port):
    hexport = ":%04X" % port
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(hexport) and parts[3] == "0A":
                        return True
        except FileNotFoundError:
            pass
    return False


def sections(binary):
    """[(file_offset, size, name)] of the sections that occupy file bytes."""
    out = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout
    result = []
    for line in out.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if not m:
            continue
        name, kind, addr, off, size = m.group(1), m.group(2), int(m.group(3), 16), int(m.group(4), 16), int(m.group(5), 16)
        if kind == "NOBITS" or size == 0 or addr == 0:
            continue
        result.append((off, size, name))
    result.sort()
    return result


def smaps(pid):
    maps = []
    cur = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ \d+\s*(.*)", line)
            if m:
                cur = {"start": int(m.group(1), 16), "end": int(m.group(2), 16), "perm": m.group(3),
                       "offset": int(m.group(4), 16), "path": m.group(5).strip()}
                maps.append(cur)
                continue
            m = re.match(r"(\w+):\s+(\d+) kB", line)
            if m and cur is not None:
                cur[m.group(1)] = int(m.group(2))
    return maps


def present_pages(pid, start, end):
    n = (end - start) // PAGE
    with open("/proc/%d/pagemap" % pid, "rb") as f:
        f.seek(start // PAGE * 8)
        data = f.read(n * 8)
    return [i for i, (e,) in enumerate(struct.iter_unpack("<Q", data)) if e >> 63 & 1]


def exercise(port, timeout=60):
    """A first visit: GET / (read to the end), then a WebSocket on /ws/echo
    that echoes one masked text message and closes. Fails loudly if the
    server answers anything else."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n")
        page = b""
        while chunk := s.recv(65536):
            page += chunk
        if not page.startswith(b"HTTP/1.1 200"):
            sys.exit("GET / answered %r" % page[:80])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: device\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("the upgrade was closed: %r" % head[:80])
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            sys.exit("the upgrade answered %r" % head[:80])
        rest = head.split(b"\r\n\r\n", 1)[1]
        key, text = b"\x01\x02\x03\x04", b"hello from footprint"
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(text))
        s.sendall(bytes([0x81, 0x80 | len(text)]) + key + masked)
        while len(rest) < 2 + len(text):
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        if rest[:2 + len(text)] != bytes([0x81, len(text)]) + text:
            sys.exit("the echo came back as %r" % rest[:40])
        s.sendall(bytes([0x88, 0x82]) + key + bytes(b ^ key[i] for i, b in enumerate(b"\x03\xe8")))
        while s.recv(4096):
            pass


def measure(binary, port, wait, used=False):
    tmp = tempfile.mkdtemp(prefix="wisp-footprint-")
    try:
        with open(os.path.join(REPO, "web.json5")) as f:
            cfg = f.read().replace("127.0.0.1:8080", "127.0.0.1:%d" % port)
        with open(os.path.join(tmp, "web.json5"), "w") as f:
            f.write(cfg)
        shutil.copytree(os.path.join(REPO, "site"), os.path.join(tmp, "site"))
        if listening(port):
            sys.exit("port %d is taken" % port)
        proc = subprocess.Popen([binary], cwd=tmp, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            while not listening(port):
                if time.time() > deadline or proc.poll() is not None:
                    sys.exit("%s did not listen on %d" % (binary, port))
                time.sleep(0.02)
            if used:
                exercise(port)
            conn = socket.create_connection(("127.0.0.1", port))
            time.sleep(wait)
            with open("/proc/%d/status" % proc.pid) as f:
                rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            maps = smaps(proc.pid)
            real = os.path.realpath(binary)
            for m in maps:
                if m["path"] == real or os.path.basename(m["path"]) == os.path.basename(real):
                    m["pages"] = [m["offset"] + i * PAGE for i in present_pages(proc.pid, m["start"], m["end"])]
            conn.close()
            return rss, maps
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if sys.argv[1:2] == ["exercise"]:
        exercise(int(sys.argv[2]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--port", type=int, default=18431)
    ap.add_argument("--wait", type=float, default=0.5)
    ap.add_argument("--used", action="store_true", help="measure after a first visit (see exercise)")
    ap.add_argument("--sections", action="store_true", help="resident KiB per ELF section (last start)")
    ap.add_argument("--pages-out", help="write the resident file offsets of the binary (last start)")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    rss_all = []
    for _ in range(args.starts):
        rss, maps = measure(binary, args.port, args.wait, args.used)
        rss_all.append(rss)
    what = " after GET / and one WebSocket echo" if args.used else ""
    print("VmRSS KiB%s:" % what, " ".join(str(r) for r in rss_all))
    print("%-8s %-9s %8s %8s  %s" % ("perm", "offset", "size", "rss", "mapping (last start)"))
    anon = 0
    for m in maps:
        name = os.path.basename(m["path"]) if m["path"] else "[anon]"
        if m.get("Rss", 0) == 0 and name in ("[vvar]", "[vvar_vclock]"):
            continue
        print("%-8s %-9x %8d %8d  %s" % (m["perm"], m["offset"], m.get("Size", 0), m.get("Rss", 0), name))
        if not m["path"] or m["path"].startswith("["):
            anon += m.get("Rss", 0)
    print("anonymous + stack + vdso: %d KiB" % anon)
    pages = sorted(set(p for m in maps for p in m.get("pages", [])))
    if args.pages_out:
        with open(args.pages_out, "w") as f:
            f.write("".join("%x\n" % p for p in pages))
    if args.sections:
        secs = sections(binary)
        starts = [s[0] for s in secs]
        per = {}
        for p in pages:
            # a page may straddle sections: attribute each 4 KiB page to every section it overlaps
            i = bisect.bisect_right(starts, p + PAGE - 1) - 1
            hit = False
            while i >= 0 and secs[i][0] < p + PAGE:
                off, size, name = secs[i]
                if off + size > p:
                    per[name] = per.get(name, 0) + 1
                    hit = True
                i -= 1
            if not hit:
                per["(headers/padding)"] = per.get("(headers/padding)", 0) + 1
        print("resident pages per section (a page shared by two sections counts for both):")
        for off, size, name in secs:
            if name in per:
                print("  %-22s %6d of %6d KiB" % (name, per[name] * 4, (size + PAGE - 1) // PAGE * 4))
        if "(headers/padding)" in per:
            print("  %-22s %6d KiB" % ("(headers/padding)", per["(headers/padding)"] * 4))
        w = sorted(set(p // 65536 for p in pages))
        print("binary: %d resident pages (%d KiB) in %d 64 KiB windows" % (len(pages), len(pages) * 4, len(w)))


if __name__ == "__main__":
    main()
