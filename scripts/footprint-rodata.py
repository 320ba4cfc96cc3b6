#!/usr/bin/env python3
"""Turn a valgrind lackey --trace-mem=yes log and an lld -Map file of the same
binary into an lld linker script that moves every read-only data input
section the run read into one output section, .rodata.hot, placed first,
before .gcc_except_table (lld puts that first in the read-only segment).

footprint-rodata.py MAP LACKEY_LOG BASE [STRACE_LOG BASE]... > rodata-hot.ld   (summary on stderr)

Each BASE (hex) is where that run loaded the binary, less its link
address: 0 for a non-PIE binary. The script also moves .init (the
three-byte _init that start-up calls) in front of .text, beside the code
the ordering file puts first, rather than after all of .text.

The kernel's own reads of the binary (a signal mask or a path passed to a
system call by address) do not show in lackey's trace: give `strace -e
raw=all` logs of the same run and every syscall argument that points into
read-only data counts as read.
"""
import bisect, os, re, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from footprint import lld_map  # noqa: E402

mapf, log, base = sys.argv[1], sys.argv[2], int(sys.argv[3], 16)
straces = [(sys.argv[i], int(sys.argv[i + 1], 16)) for i in range(4, len(sys.argv) - 1, 2)]
ins = []
for out, vma, size, rest in lld_map(mapf):
    if rest.startswith("        ") and not rest.startswith("                ") and out.startswith(".rodata") and size:
        ins.append((vma, size, rest.strip()))
ins.sort()
starts = [i[0] for i in ins]
hit = {}  # input section -> first read
for line in open(log):
    if line[:2] in (" L", " S", " M"):
        a = int(line[3:].split(",", 1)[0], 16) - base
        i = bisect.bisect_right(starts, a) - 1
        if i >= 0 and a < ins[i][0] + ins[i][1]:
            hit.setdefault(i, len(hit))
for name, sbase in straces:
    for line in open(name):
        for word in re.findall(r"0x[0-9a-f]+", line):
            a = int(word, 16) - sbase
            i = bisect.bisect_right(starts, a) - 1
            if i >= 0 and a < ins[i][0] + ins[i][1]:
                hit.setdefault(i, len(hit))
names, total = [], 0
for i in sorted(hit, key=hit.get):
    vma, size, name = ins[i]
    total += size
    sec = re.search(r":\((.*)\)$", name).group(1)
    if name.startswith("<internal>"):
        # lld merges every mergeable input section of one kind (strings of one
        # width, constants of one size) into one synthetic section named after
        # its first input: move the whole kind.
        m = re.search(r"\.(str\d+\.\d+|cst\d+)$", sec)
        pats = ['.rodata.%s' % m.group(1), '.rodata.*.%s' % m.group(1)] if m else [sec]
    else:
        pats = ['"%s"' % sec]
    for pat in pats:
        if pat not in names:
            names.append(pat)
print("SECTIONS {\n  .rodata.hot : {")
for sec in names:
    print('    *(%s)' % sec)
print("  }\n} INSERT BEFORE .gcc_except_table;")
print("SECTIONS {\n  .init : { KEEP (*(SORT_NONE(.init))) }\n} INSERT BEFORE .text;")
print("read-only data read: %d input sections, %d KiB" % (len(hit), total // 1024), file=sys.stderr)
