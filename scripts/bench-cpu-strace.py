#!/usr/bin/env python3
"""Syscalls per FUSE request from `strace -f -y -ttt -qq -s 8 -xx` of a FUSE daemon (scripts/bench-cpu.sh).

A request is a successful read(2)/readv(2) of /dev/fuse; its opcode is the second 32-bit word of the bytes read. The
syscalls a thread makes after reading a request, up to and including its next read of /dev/fuse, are charged to that
request's opcode (the reply write, the backend calls and the next read itself). Syscalls of threads that never read
/dev/fuse (event consumers, journal writers, GC) are "background", per phase. Phases come from the sampler's epoch
stamps. Prints TSV rows: target, phase, requests, syscalls, syscalls/request, background syscalls, and per opcode:
target, "op:NAME", requests, syscalls, syscalls/request, top syscalls.
"""
import collections
import re
import sys

OPCODES = {1: "LOOKUP", 2: "FORGET", 3: "GETATTR", 4: "SETATTR", 5: "READLINK", 6: "SYMLINK", 8: "MKNOD", 9: "MKDIR",
           10: "UNLINK", 11: "RMDIR", 12: "RENAME", 13: "LINK", 14: "OPEN", 15: "READ", 16: "WRITE", 17: "STATFS",
           18: "RELEASE", 20: "FSYNC", 21: "SETXATTR", 22: "GETXATTR", 23: "LISTXATTR", 24: "REMOVEXATTR", 25: "FLUSH",
           26: "INIT", 27: "OPENDIR", 28: "READDIR", 29: "RELEASEDIR", 30: "FSYNCDIR", 31: "GETLK", 32: "SETLK",
           33: "SETLKW", 34: "ACCESS", 35: "CREATE", 36: "INTERRUPT", 37: "BMAP", 38: "DESTROY", 39: "IOCTL",
           40: "POLL", 41: "NOTIFY_REPLY", 42: "BATCH_FORGET", 43: "FALLOCATE", 44: "READDIRPLUS", 45: "RENAME2",
           46: "LSEEK", 47: "COPY_FILE_RANGE", 48: "SETUPMAPPING", 49: "REMOVEMAPPING", 50: "SYNCFS", 51: "TMPFILE",
           52: "STATX"}

target, samples_path, trace_path = sys.argv[1:4]
phases = []  # (name, begin, end)
begins = {}
for line in open(samples_path):
    when, phase, _ticks, at = line.split()[:4]
    if when == "begin":
        begins[phase] = float(at)
    else:
        phases.append((phase, begins[phase], float(at)))


def phase_of(t):
    for name, b, e in phases:
        if b <= t <= e:
            return name
    return None


line_re = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
call_re = re.compile(r"^(\w+)\((.*)")
resumed_re = re.compile(r"^<\.\.\. (\w+) resumed>(.*)")
pending = {}  # tid -> (name, args-so-far, time)
current_op = {}  # tid -> opcode being served (None before the first request)
fuse_threads = set()
req = collections.Counter()  # phase -> requests
calls = collections.Counter()  # phase -> syscalls by request-serving threads
background = collections.Counter()  # phase -> syscalls by other threads
op_req = collections.Counter()
op_calls = collections.Counter()
op_kinds = collections.defaultdict(collections.Counter)
events = []  # (tid, time, name, text) for completed calls


def complete(tid, t, name, text):
    events.append((tid, t, name, text))


# -xx also prints the descriptor's path in hex.
FUSE_HEX = "<" + "".join(f"\\x{b:02x}" for b in b"/dev/fuse") + ">"
for raw in open(trace_path, errors="replace"):
    m = line_re.match(raw.rstrip("\n").replace(FUSE_HEX, "</dev/fuse>"))
    if not m:
        continue
    tid, t, rest = int(m.group(1)), float(m.group(2)), m.group(3)
    if rest.startswith("+++") or rest.startswith("---"):
        continue
    r = resumed_re.match(rest)
    if r:
        name, args, t0 = pending.pop(tid, (r.group(1), "", t))
        complete(tid, t0, name, args + r.group(2))
        continue
    c = call_re.match(rest)
    if not c:
        continue
    if rest.endswith("<unfinished ...>"):
        pending[tid] = (c.group(1), c.group(2).replace("<unfinished ...>", ""), t)
        continue
    complete(tid, t, c.group(1), c.group(2))

fuse_read = re.compile(r'^\d+</dev/fuse>,\s*(?:\[\{iov_base=)?"((?:\\x[0-9a-f]{2})+)"')
for tid, t, name, text in events:
    if name in ("read", "readv") and "</dev/fuse>" in text.split(",", 1)[0]:
        fuse_threads.add(tid)
for tid, t, name, text in events:
    phase = phase_of(t)
    is_fuse_read = name in ("read", "readv") and "</dev/fuse>" in text.split(",", 1)[0]
    if tid not in fuse_threads:
        if phase:
            background[phase] += 1
        continue
    op = current_op.get(tid)
    if phase:
        calls[phase] += 1
        if op:
            op_calls[op] += 1
            op_kinds[op][name] += 1
    if is_fuse_read:
        ok = re.search(r"\)\s*=\s*(\d+)", text)
        fm = fuse_read.match(text)
        if ok and int(ok.group(1)) >= 40 and fm:
            b = bytes(int(x, 16) for x in fm.group(1)[2:].split("\\x"))
            opcode = int.from_bytes(b[4:8], "little") if len(b) >= 8 else 0
            current_op[tid] = OPCODES.get(opcode, f"op{opcode}")
            if phase:
                req[phase] += 1
                op_req[current_op[tid]] += 1
        else:
            current_op[tid] = None

for name, _b, _e in phases:
    n, s = req[name], calls[name]
    print(f"{target}\t{name}\trequests={n}\tsyscalls={s}\tper-request={s / n if n else 0:.2f}\tbackground={background[name]}"
          f"\tbackground-per-request={background[name] / n if n else 0:.2f}")
for op, n in sorted(op_req.items(), key=lambda kv: -kv[1]):
    top = ",".join(f"{k}:{v / n:.2f}" for k, v in op_kinds[op].most_common(6))
    print(f"{target}\top:{op}\trequests={n}\tsyscalls={op_calls[op]}\tper-request={op_calls[op] / n:.2f}\t{top}")
