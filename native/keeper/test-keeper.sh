#!/usr/bin/env bash
# Tests inspatialfs-keeper with a scripted python child standing in for the FUSE server.
# usage: test-keeper.sh [KEEPER]   (without KEEPER, builds native/keeper/inspatialfs-keeper.c into a temp dir)
# Exits non-zero if any check fails.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/keeper-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
command -v python3 >/dev/null || { echo "test-keeper: python3 is required" >&2; exit 1; }
py=$(python3 -c 'import sys; print(sys.executable)')

if [[ $# -ge 1 ]]; then
  keeper=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
  [[ -x $keeper ]] || { echo "test-keeper: $1 is not executable" >&2; exit 1; }
else
  keeper=$tmp/inspatialfs-keeper
  gcc -O2 -Wall -Wextra -Werror -o "$keeper" "$here/inspatialfs-keeper.c" || exit 1
fi

passed=0 failed=0
ok() { echo "  ok: $*"; passed=$((passed + 1)); }
bad() { echo "  FAIL: $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
starts() { [[ -f $tmp/log ]] && grep -c '^start ' "$tmp/log" || echo 0; }
wait_file() { for _ in $(seq 1 200); do [[ -e $1 ]] && return 0; sleep 0.05; done; return 1; }
reset() { rm -f "$tmp"/log "$tmp"/up "$tmp"/go "$tmp"/probe-* "$tmp"/addr "$tmp"/err "$tmp"/keeper-stdio; }

# The child: KEEPER_TEST_PLAN is "steps of start 0|steps of start 1|..." (the last one repeats); steps are
# comma-separated and run in order. A failed check sends STOPPING=1 and exits 99, so the keeper exits 99 at once.
cat >"$tmp/child.py" <<EOF
#!$py
import os, socket, signal, sys, time
T = "$tmp"
restarts = int(os.environ.get("INSPATIALFS_RESTARTS", "-1"))
def send(text, fds=()):
    addr = os.environ["NOTIFY_SOCKET"]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect("\0" + addr[1:] if addr.startswith("@") else addr)
    socket.send_fds(s, [text.encode()], list(fds)) if fds else s.send(text.encode())
    s.close()
def fail(why):
    print("CHILD CHECK FAILED:", why, file=sys.stderr, flush=True)
    send("STOPPING=1\n"); sys.exit(99)
def expect(cond, why):
    if not cond: fail(why)
def leaked():
    # Everything the child holds besides stdio and LISTEN fds (ignoring the listing's own directory fd).
    n = int(os.environ.get("LISTEN_FDS", "0"))
    extra = []
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd < 3 + n: continue
        try: target = os.readlink("/proc/self/fd/%d" % fd)
        except FileNotFoundError: continue
        if not target.startswith("/proc/"): extra.append((fd, target))
    return extra
with open(T + "/log", "a") as f: f.write("start %d %s %s\n" % (restarts, sys.argv[0], " ".join(sys.argv[1:])))
plan = os.environ["KEEPER_TEST_PLAN"].split("|")
for step in plan[min(restarts, len(plan) - 1)].split(","):
    op, _, arg = step.partition(":")
    if op == "check0":
        expect(restarts == 0, "INSPATIALFS_RESTARTS=%d" % restarts)
        expect(os.environ["NOTIFY_SOCKET"].startswith("@inspatialfs-keeper-%d-" % os.getppid()), "NOTIFY_SOCKET")
        expect(os.environ.get("FDSTORE") == "256", "FDSTORE")
        expect(os.environ.get("INSPATIALFS_KEEPER_PID") == str(os.getppid()), "INSPATIALFS_KEEPER_PID")
        for v in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "INSPATIALFS_HANDOVER_SINCE", "INSPATIALFS_READY_FD"):
            expect(v not in os.environ, v + " set on the first start")
        expect(not leaked(), "leaked descriptors %r" % leaked())
    elif op == "checkfds":  # checkfds:name1:name2... the store as passed back, each fd the file store:<name> opened
        names = arg.split(":")
        expect(os.environ.get("LISTEN_PID") == str(os.getpid()), "LISTEN_PID")
        expect(os.environ.get("LISTEN_FDS") == str(len(names)), "LISTEN_FDS=%s" % os.environ.get("LISTEN_FDS"))
        expect(os.environ.get("LISTEN_FDNAMES") == arg, "LISTEN_FDNAMES=%s" % os.environ.get("LISTEN_FDNAMES"))
        since = int(os.environ.get("INSPATIALFS_HANDOVER_SINCE", "0"))
        expect(0 < since <= time.monotonic_ns(), "INSPATIALFS_HANDOVER_SINCE=%d" % since)
        for i, name in enumerate(names):
            path = "%s/probe-%s" % (T, name)
            expect(os.fstat(3 + i).st_ino == os.stat(path).st_ino, "fd %d is not %s" % (3 + i, path))
            os.write(3 + i, b"through-fd-%d\n" % (3 + i))
            expect(open(path, "rb").read().endswith(b"through-fd-%d\n" % (3 + i)), "write through fd %d" % (3 + i))
        expect(not leaked(), "leaked descriptors %r" % leaked())
    elif op == "restarts": expect(restarts == int(arg), "INSPATIALFS_RESTARTS=%d, want %s" % (restarts, arg))
    elif op == "store":
        fd = os.open("%s/probe-%s" % (T, arg), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        send("FDSTORE=1\nFDNAME=%s\n" % arg, [fd]); os.close(fd)
    elif op == "bulk":  # bulk:N sends N descriptors named bulk, up to 200 a datagram
        left = int(arg)
        while left:
            fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(min(left, 200))]
            send("FDSTORE=1\nFDNAME=bulk\n", fds); [os.close(fd) for fd in fds]; left -= len(fds)
    elif op == "listen":  # listen:N: exactly N descriptors passed back, none leaked
        expect(os.environ.get("LISTEN_FDS") == arg, "LISTEN_FDS=%s, want %s" % (os.environ.get("LISTEN_FDS"), arg))
        expect(all(os.path.exists("/proc/self/fd/%d" % fd) for fd in range(3, 3 + int(arg))), "fds 3.. open")
        expect(not leaked(), "leaked descriptors %r" % leaked())
    elif op == "stdio":  # stdio:N hands N descriptors of the file keeper-stdio as the keeper's stdio
        fds = [os.open(T + "/keeper-stdio", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) for _ in range(int(arg or 1))]
        send("X_INSPATIALFS_STDIO=1\n", fds); [os.close(fd) for fd in fds]
    elif op == "stdiois":  # the keeper's stdio as inherited: stdin /dev/null, stdout and stderr keeper-stdio
        expect(os.readlink("/proc/self/fd/0") == "/dev/null", "stdin %s" % os.readlink("/proc/self/fd/0"))
        for fd in (1, 2): expect(os.readlink("/proc/self/fd/%d" % fd) == T + "/keeper-stdio", "fd %d %s" % (fd, os.readlink("/proc/self/fd/%d" % fd)))
    elif op == "remove": send("FDSTOREREMOVE=1\nFDNAME=%s\n" % arg)
    elif op == "ready": send("READY=1\nSTATUS=serving\nMAINPID=%d\n" % os.getpid())
    elif op == "stopping": send("STOPPING=1\n")
    elif op == "exec": send("X_INSPATIALFS_EXEC=%s\n" % arg)
    elif op == "addr": open(T + "/addr", "w").write(os.environ["NOTIFY_SOCKET"])
    elif op == "up": open(T + "/up", "w").close()
    elif op == "waitgo":
        while not os.path.exists(T + "/go"): time.sleep(0.02)
    elif op == "onterm":  # exit with code arg on SIGTERM
        signal.signal(signal.SIGTERM, lambda *_, code=int(arg): os._exit(code))
    elif op == "sleep": time.sleep(float(arg))
    elif op == "kill9": os.kill(os.getpid(), signal.SIGKILL)
    elif op == "exit": sys.exit(int(arg))
    else: fail("unknown step " + step)
EOF
chmod 0755 "$tmp/child.py"

# run PLAN [keeper options]: runs the keeper on the child (with an extra inherited fd 9 that must not reach it).
run() {
  local plan=$1; shift
  KEEPER_TEST_PLAN=$plan timeout 60 "$keeper" "$@" -- "$tmp/child.py" arg1 9>/dev/null 2>"$tmp/err"
}
show_err() { sed 's/^/    | /' "$tmp/err"; }

echo "== usage"
"$keeper" --help >/dev/null; check "--help exits 0" test $? -eq 0
"$keeper" --bogus -- /bin/true 2>/dev/null; check "unknown option exits 2" test $? -eq 2
"$keeper" 2>/dev/null; check "no PROGRAM exits 2" test $? -eq 2
"$keeper" --max-restarts x -- /bin/true 2>/dev/null; check "bad number exits 2" test $? -eq 2
"$keeper" -- "$tmp/nonexistent" 2>/dev/null; check "unexecutable PROGRAM exits 127" test $? -eq 127

echo "== crash after storing a descriptor: restarted with it, then STOPPING=1 ends the keeper"
reset
run 'check0,store:probe,ready,kill9|restarts:1,checkfds:probe,stopping,exit:0'; rc=$?
check "keeper exits 0 (got $rc)" test $rc -eq 0
check "two starts" test "$(starts)" -eq 2
check "restart logged" grep -q 'killed by signal 9; restart 1 with 1 stored descriptors' "$tmp/err"
check "no child check failed" bash -c "! grep -q 'CHILD CHECK FAILED' '$tmp/err'"
[[ $failed -eq 0 ]] || show_err

echo "== several names, FDSTOREREMOVE, exit non-zero after READY=1 restarts"
reset
run 'store:a,store:b,store:a2,store:c,remove:a2,ready,exit:3|checkfds:a:b:c,stopping,exit:0'; rc=$?
check "keeper exits 0 (got $rc)" test $rc -eq 0
check "two starts" test "$(starts)" -eq 2
check "exit 3 after READY restarts" grep -q 'exited with code 3; restart 1 with 3 stored descriptors' "$tmp/err"

echo "== start-up failure: exit 1 before READY, nothing stored"
reset
run 'exit:1'; rc=$?
check "keeper exits 1 (got $rc)" test $rc -eq 1
check "one start" test "$(starts)" -eq 1

echo "== exit non-zero before READY=1 with a stored descriptor: no restart"
reset
run 'store:probe,exit:4'; rc=$?
check "keeper exits 4 (got $rc)" test $rc -eq 4
check "one start" test "$(starts)" -eq 1

echo "== exit 0 without STOPPING=1: no restart"
reset
run 'store:probe,ready,exit:0'; rc=$?
check "keeper exits 0 (got $rc)" test $rc -eq 0
check "one start" test "$(starts)" -eq 1

echo "== exit 75 (handover) restarts even with nothing stored"
reset
run 'ready,exit:75|restarts:1,stopping,exit:5'; rc=$?
check "keeper exits 5 (got $rc)" test $rc -eq 5
check "two starts" test "$(starts)" -eq 2

echo "== SIGTERM is forwarded; the keeper exits with the server's code and does not restart"
reset
KEEPER_TEST_PLAN='onterm:7,store:probe,ready,up,sleep:30' timeout 60 "$keeper" -- "$tmp/child.py" 2>"$tmp/err" &
kpid=$!
if wait_file "$tmp/up"; then
  kill -TERM $kpid; wait $kpid; rc=$?
  check "keeper exits 7 (got $rc)" test $rc -eq 7
  check "one start" test "$(starts)" -eq 1
else bad "child never came up"; kill $kpid; wait $kpid; fi

echo "== SIGHUP is forwarded but is no stop: the server killed by it is restarted"
reset
KEEPER_TEST_PLAN='store:probe,ready,up,sleep:30|checkfds:probe,stopping,exit:0' timeout 60 "$keeper" -- "$tmp/child.py" 2>"$tmp/err" &
kpid=$!
if wait_file "$tmp/up"; then
  kill -HUP $kpid; wait $kpid; rc=$?
  check "keeper exits 0 (got $rc)" test $rc -eq 0
  check "two starts" test "$(starts)" -eq 2
  check "restart after signal 1" grep -q 'killed by signal 1; restart 1' "$tmp/err"
else bad "child never came up"; kill $kpid; wait $kpid; fi

echo "== restart loop: gives up after the budget"
reset
run 'store:probe,kill9' --max-restarts 3 --restart-window 60; rc=$?
check "keeper exits 1 (got $rc)" test $rc -eq 1
check "four starts (1 + 3 restarts)" test "$(starts)" -eq 4
check "gives up" grep -q 'giving up after 3 restarts within 60 s' "$tmp/err"

echo "== planned handovers (exit 75) do not count towards the crash budget"
reset
run 'ready,exit:75|ready,exit:75|ready,exit:75|ready,exit:75|stopping,exit:0' --max-restarts 2 --restart-window 60; rc=$?
check "keeper exits 0 after 4 handovers with a budget of 2 (got $rc)" test $rc -eq 0
check "five starts" test "$(starts)" -eq 5

echo "== the server dies with its keeper (SIGKILL of the keeper leaves no orphan serving on)"
reset
KEEPER_TEST_PLAN='up,sleep:30' "$keeper" -- "$tmp/child.py" 2>"$tmp/err" &
kpid=$!
wait_file "$tmp/up"; check "the server started" test -e "$tmp/up"
spid=$(pgrep -P "$kpid")
check "the server is the keeper's child" test -n "$spid"
kill -KILL "$kpid"; wait "$kpid" 2>/dev/null
for _ in $(seq 1 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.02; done
check "the server went with it" bash -c "! kill -0 '$spid' 2>/dev/null"

echo "== X_INSPATIALFS_EXEC switches the program for the next start"
reset
cat >"$tmp/next-server" <<EOF
#!/bin/sh
echo "switched \$0 \$*" >>"$tmp/log"
exec "$tmp/child.py" "\$@"
EOF
chmod 0755 "$tmp/next-server"
run "store:probe,exec:$tmp/next-server,ready,exit:75|checkfds:probe,stopping,exit:0"; rc=$?
check "keeper exits 0 (got $rc)" test $rc -eq 0
check "next start ran next-server with the same ARGS" grep -qx "switched $tmp/next-server arg1" "$tmp/log"

echo "== a server that fails to take over the live mount is retried after a pause, on the last program that served"
reset
run 'store:probe,ready,exit:9|exit:4|exit:4|checkfds:probe,ready,stopping,exit:0'; rc=$?
check "keeper exits 0 (got $rc)" test $rc -eq 0
check "four starts: the crash, two failed takeovers, the one that serves" test "$(starts)" -eq 4
check "the pauses grow" bash -c "grep -q 'try 1 of 20); retrying in 1 s' '$tmp/err' && grep -q 'try 2 of 20); retrying in 2 s' '$tmp/err'"
reset
cat >"$tmp/broken-server" <<EOF
#!/bin/sh
echo "broken \$0" >>"$tmp/log"
exit 4
EOF
chmod 0755 "$tmp/broken-server"
run "store:probe,ready,exec:$tmp/broken-server,exit:75|exit:4|checkfds:probe,ready,stopping,exit:0"; rc=$?
check "keeper exits 0 after a broken upgrade (got $rc)" test $rc -eq 0
check "the broken program ran once" test "$(grep -c '^broken' "$tmp/log")" -eq 1
check "then the last program that served took over again" bash -c "test \$(grep -c '^start ' '$tmp/log') -eq 2 && grep -q 'runs $tmp/child.py again' '$tmp/err'"

echo "== a handover (exit 75) before READY=1 starts the next server at once (an upgrade just after a restart)"
reset
start=$(date +%s%N)
run 'store:probe,ready,kill9|exit:75|checkfds:probe,ready,stopping,exit:0'; rc=$?
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "keeper exits 0 (got $rc)" test $rc -eq 0
check "three starts: the crash, the early handover, the one that serves" test "$(starts)" -eq 3
check "not taken for a failed takeover" bash -c "! grep -q 'before taking over' '$tmp/err'"
check "no pause (took ${took_ms} ms)" test "$took_ms" -lt 5000

echo "== a stop during a retry pause ends the keeper then, not after the pause"
reset
KEEPER_TEST_PLAN='store:probe,ready,exit:9|exit:4|stopping,exit:0' timeout 60 "$keeper" -- "$tmp/child.py" 2>"$tmp/err" &
kpid=$!
for _ in $(seq 1 200); do grep -q 'retrying in 1 s' "$tmp/err" 2>/dev/null && break; sleep 0.01; done
kill -TERM $kpid; wait $kpid; rc=$?
check "keeper exits with the failed server's code (got $rc)" test $rc -eq 4
check "no start after the stop" test "$(starts)" -eq 2
check "it says why" grep -q 'stop requested while waiting to retry' "$tmp/err"

echo "== X_INSPATIALFS_EXEC refused: relative, group-writable, not executable"
reset
cp "$tmp/next-server" "$tmp/gw-server"; chmod 0775 "$tmp/gw-server"
cp "$tmp/next-server" "$tmp/nx-server"; chmod 0644 "$tmp/nx-server"
run "exec:next-server,exec:$tmp/gw-server,exec:$tmp/nx-server,exec:$tmp,ready,exit:75|stopping,exit:0"; rc=$?
check "keeper exits 0 (got $rc)" test $rc -eq 0
check "the old program ran again" bash -c "! grep -q switched '$tmp/log' && test \$(grep -c '^start .*/child.py arg1' '$tmp/log') -eq 2"
check "four refusals logged" test "$(grep -c 'refused' "$tmp/err")" -eq 4

echo "== a notification from another process is ignored (NotifyAccess=main)"
reset
KEEPER_TEST_PLAN='store:probe,ready,addr,up,waitgo,kill9|checkfds:probe,stopping,exit:0' timeout 60 "$keeper" -- "$tmp/child.py" 2>"$tmp/err" &
kpid=$!
if wait_file "$tmp/up"; then
  # STOPPING=1 would stop the restart, the fd would join the store, the exec would switch: none must happen.
  "$py" - "$(cat "$tmp/addr")" <<'EOF'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect("\0" + sys.argv[1][1:])
fd = os.open("/dev/null", os.O_RDONLY)
socket.send_fds(s, [b"FDSTORE=1\nFDNAME=intruder\nSTOPPING=1\nX_INSPATIALFS_EXEC=/bin/true\n"], [fd])
for _ in range(2000):  # a flood: logged once, not once per datagram
    try:
        s.send(b"x")
    except BlockingIOError:
        pass
EOF
  touch "$tmp/go"; wait $kpid; rc=$?
  check "keeper exits 0 (got $rc)" test $rc -eq 0
  check "restarted with only the server's descriptor" test "$(starts)" -eq 2
  check "intruder logged" grep -q 'ignored (not from the server)' "$tmp/err"
  check "the flood after it is not a line per datagram ($(grep -c 'ignored' "$tmp/err") lines)" test "$(grep -c 'ignored' "$tmp/err")" -le 2
else bad "child never came up"; kill $kpid; wait $kpid; fi

echo "== readiness pipe: the launcher gets 'R' after READY=1, end of file after a failed start"
reset
KEEPER_TEST_PLAN='check0,ready,up,waitgo,stopping,exit:0' "$py" - "$keeper" "$tmp" <<'EOF'; rc=$?
import os, subprocess, sys
keeper, tmp = sys.argv[1], sys.argv[2]
def launch(plan):
    r, w = os.pipe()
    r2 = os.dup(r); os.close(r); r = r2   # the read end out of the way, and
    os.dup2(w, 3); os.close(w); w = 3     # the write end at 3, where mount --background puts it
    env = dict(os.environ, INSPATIALFS_READY_FD=str(w), KEEPER_TEST_PLAN=plan)
    p = subprocess.Popen([keeper, "--", tmp + "/child.py"], env=env, pass_fds=(w,), stderr=open(tmp + "/err", "a"))
    os.close(w)
    return p, r
p, r = launch(os.environ["KEEPER_TEST_PLAN"])
first = os.read(r, 1)
assert first == b"R", "ready byte %r" % first
assert p.poll() is None, "keeper still running after READY=1"
open(tmp + "/go", "w").close()
assert os.read(r, 1) == b"", "end of file after the ready byte"
assert p.wait(30) == 0, "keeper exit code"
os.unlink(tmp + "/go")
p, r = launch("check0,exit:1")
assert os.read(r, 1) == b"", "end of file, no byte, when the server fails to start"
assert p.wait(30) == 1
print("  (launcher checks passed)")
EOF
check "readiness pipe" test $rc -eq 0
check "the server never saw INSPATIALFS_READY_FD nor the pipe" bash -c "! grep -q 'CHILD CHECK FAILED' '$tmp/err'"

echo "== X_INSPATIALFS_STDIO=1: the server's log becomes the keeper's stdout and stderr (and its next server's)"
reset
run 'check0,store:probe,stdio:1,ready,kill9|restarts:1,stdiois,stdio:2,stopping,exit:0' </dev/zero; rc=$?
check "keeper exits 0 (got $rc)" test $rc -eq 0
check "the restart line went to the handed file" grep -q 'killed by signal 9; restart 1 with 1 stored descriptors' "$tmp/keeper-stdio"
check "and not to the keeper's first stderr" bash -c "! grep -q 'restart 1' '$tmp/err'"
check "two descriptors are refused" grep -q 'X_INSPATIALFS_STDIO=1 wants exactly one descriptor' "$tmp/keeper-stdio"
check "no child check failed" bash -c "! grep -q 'CHILD CHECK FAILED' '$tmp/err' '$tmp/keeper-stdio'"

echo "== twenty names: handed back in order"
reset
plan0=$(for i in $(seq 1 20); do printf 'store:n%d,' "$i"; done)
names=$(seq -s: -f 'n%g' 1 20)
run "${plan0}ready,kill9|checkfds:$names,stopping,exit:0"; rc=$?
check "20 descriptors at 3..22 with their names (got $rc)" test $rc -eq 0

echo "== the store holds 256: the rest are closed with a warning"
reset
run "bulk:260,ready,kill9|listen:256,stopping,exit:0"; rc=$?
check "256 descriptors handed back (got $rc)" test $rc -eq 0
check "four refused" test "$(grep -c 'descriptor store full' "$tmp/err")" -eq 4

echo
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
