#!/usr/bin/env python3
"""Turn a trace of a binary's run into an lld symbol-ordering file:
the symbols of every code input section that holds an executed
instruction, in the order the trace first ran them (start-up, then the
connection, then shutdown if traced). Input sections and their symbols come
from the lld -Map file of the traced link, so a stripped binary works.
The trace is a valgrind lackey --trace-mem=yes log ("I  ADDR,SIZE" lines)
or a callgrind dump made with --dump-instr=yes --compress-pos=no
("0xADDR ..." lines).

footprint-order.py MAP TRACE [BASE] > order.txt   (summary on stderr)

BASE (hex) is where the traced run loaded the binary, less its link
address: 0 for a non-PIE binary.
"""
import bisect, os, re, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from footprint import lld_map  # noqa: E402

mapf, trace = sys.argv[1], sys.argv[2]
base = int(sys.argv[3], 16) if len(sys.argv) > 3 else 0
ins = []  # [vma, size, [symbols]] of code input sections
for out, vma, size, rest in lld_map(mapf):
    if out not in (".text", ".init", ".fini"):
        continue
    if rest.startswith("                "):
        if ins and ins[-1][0] <= vma <= ins[-1][0] + ins[-1][1]:
            ins[-1][2].append(rest.strip())
    elif rest.startswith("        ") and size:
        ins.append([vma, size, []])
ins.sort()
starts = [i[0] for i in ins]

executed = {}  # address -> first position in the trace
with open(trace) as f:
    for line in f:
        m = re.match(r"(?:0x|I  )([0-9a-f]+)", line)
        if m:
            executed.setdefault(int(m.group(1), 16) - base, len(executed))
hit, missed = {}, 0  # input section -> first execution
for a, when in executed.items():
    i = bisect.bisect_right(starts, a) - 1
    if i < 0 or a >= ins[i][0] + ins[i][1]:
        missed += 1
        continue
    if when < hit.get(i, when + 1):
        hit[i] = when

# Natively musl finds clock_gettime in the vDSO (__vdsosym, which compares
# names with strcmp); under valgrind there is no vDSO, so the trace never
# runs strcmp.
natively = {"__vdsosym": ["strcmp"]}
by_name = {n: i for i, s in enumerate(ins) for n in s[2]}
for i in list(hit):
    for name in ins[i][2]:
        for extra in natively.get(name, []):
            if extra in by_name and by_name[extra] not in hit:
                hit[by_name[extra]] = hit[i] + 0.5

total = 0
for i in sorted(hit, key=hit.get):
    total += ins[i][1]
    for name in ins[i][2]:
        print(name)
print("executed: %d instructions in %d input sections (%d KiB), %d 4 KiB pages, %d 64 KiB windows of the traced layout; %d addresses outside them"
      % (len(executed), len(hit), total // 1024, len({a // 4096 for a in executed}),
         len({a // 65536 for a in executed}), missed), file=sys.stderr)
