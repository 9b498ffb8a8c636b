#!/usr/bin/env bash
# Whole-filesystem benchmark: the same workloads over a tmpfs backing directory through each target in turn,
# ratios to the native directory taken in this one run. Prints a table and writes bench/results/<stamp>.tsv.
#   targets:   native, bindfs, fuse-overlayfs, inspatialfs-memory, inspatialfs-host (proxied), inspatialfs-direct
#              and, not in the default list, the DirectFS fallbacks without passthrough: inspatialfs-direct-splice
#              (READ by splice(2)) and inspatialfs-direct-copy (pread/pwrite), e.g.
#              TARGETS="native inspatialfs-direct-splice inspatialfs-direct-copy" make bench
#   workloads: fio seq read cold/cached + seq write (1 MiB blocks, SIZE), fio rand 4k read/write with 1 and 2 jobs,
#              metadata phases of native/build/fsmeta (FILES files in 100 dirs), tar extract + read back.
#   cost:      for every FUSE target, the server's CPU-seconds per phase (utime+stime of the daemon process, all
#              threads; steadier than throughput on these VMs) and, in one extra pass with perf, its system calls per
#              metadata operation; then start-up time, idle RSS, idle CPU and context switches, and RSS per 100,000 live nodes
#              (scripts/bench-startup.py).
#              inspatialfs-memory against native is the memory mount against tmpfs (the backing is a tmpfs).
#   read-only: inspatialfs-ro (--read-only: long kernel caches) and inspatialfs-ro-1s (the same with --cache-timeout 1)
#              run only the warm-stat and warm-find phases, over a tree of RO_FILES files made in the backing before
#              mounting; every other target runs those two phases too, on the same tree made through it, e.g.
#              TARGETS="native inspatialfs-ro inspatialfs-ro-1s inspatialfs-host" make bench
#              (ONLY_WARM=1: every target runs only those two phases)
#   before/after: a target with the suffix @before runs the same target with the build in INSPATIALFS_BIN_BEFORE,
#              in the same rounds (rotated with the rest), e.g. to compare a change with the last release:
#              INSPATIALFS_BIN_BEFORE=/tmp/old/inspatialfs TARGETS="native inspatialfs-host inspatialfs-host@before" make bench
# Env: SIZE (default 1g), FILES (20000), RUNTIME (seconds per random test, 8), TARGETS (space list), ROUNDS (3),
#      INSPATIALFS_BIN (default bin/inspatialfs), INSPATIALFS_BIN_BEFORE (for @before targets).
# Each round runs every target in turn; the table gives the median of the rounds per phase (single runs on these
# 2-core VMs vary by 20-50% between runs, and a median of interleaved rounds keeps that out of the ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
SIZE=${SIZE:-1g}
FILES=${FILES:-20000}
RUNTIME=${RUNTIME:-8}
ROUNDS=${ROUNDS:-3}
TARGETS=${TARGETS:-"native bindfs fuse-overlayfs inspatialfs-memory inspatialfs-host inspatialfs-direct"}

need=()
for p in fio bindfs fuse-overlayfs; do command -v $p >/dev/null || need+=("$p"); done
command -v perf >/dev/null || need+=(linux-perf)
if ((${#need[@]})); then
  echo "==> installing benchmark peers: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
ifs=${INSPATIALFS_BIN:-$root/bin/inspatialfs}
export INSPATIALFS_BIN=$ifs
[[ -x $ifs && -x native/build/fsmeta ]] || { echo "bench: run 'make build' first" >&2; exit 1; }

work=/tmp/inspatialfs-bench
mkdir -p "$work"
mountpoint -q "$work" || mount -t tmpfs -o size=8g tmpfs "$work"
backing=$work/backing mnt=$work/mnt
daemon_pid=
cleanup() {
  [[ -n $daemon_pid ]] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  mountpoint -q "$mnt" && umount -l "$mnt" || true
}
trap 'cleanup; umount -l "$work" 2>/dev/null || true' EXIT

# A tarball of a few thousand real files, made once.
tarball=$work/tree.tar
[[ -f $tarball ]] || tar -C /usr/share -cf "$tarball" doc 2>/dev/null || true

mount_target() { # $1 = target; leaves the directory to test in $dir
  # A fresh state directory each time: every mount is a new instance, not one that reloads earlier journals.
  rm -rf "$backing" "$mnt" "$work/upper" "$work/work" "$work/lower" "$work/state"; mkdir -p "$backing" "$mnt"
  local bin=$ifs
  if [[ $1 == *@before ]]; then
    bin=${INSPATIALFS_BIN_BEFORE:?"bench: $1 needs INSPATIALFS_BIN_BEFORE (the build to compare with)"}
  fi
  local ifs_mount=("$bin" mount --state-dir "$work/state" --log-level warning)
  case ${1%@before} in
    native) dir=$backing ;;
    bindfs) bindfs -o allow_other "$backing" "$mnt"; dir=$mnt ;;
    fuse-overlayfs) mkdir -p "$work/lower" "$work/work"; fuse-overlayfs -o "lowerdir=$work/lower,upperdir=$backing,workdir=$work/work" "$mnt"; dir=$mnt ;;
    inspatialfs-memory) "${ifs_mount[@]}" --memory --memory-size 6GiB "$mnt" & daemon_pid=$!; dir=$mnt ;;
    inspatialfs-host) "${ifs_mount[@]}" --source "$backing" "$mnt" & daemon_pid=$!; dir=$mnt ;;
    inspatialfs-direct) "${ifs_mount[@]}" --source "$backing" --direct "$mnt" & daemon_pid=$!; dir=$mnt ;;
    inspatialfs-ro|inspatialfs-ro-1s)
      ro_tree "$backing"
      "${ifs_mount[@]}" --source "$backing" --read-only $([[ ${1%@before} == inspatialfs-ro-1s ]] && echo --cache-timeout 1) "$mnt" &
      daemon_pid=$!; dir=$mnt ;;
    inspatialfs-direct-splice|inspatialfs-direct-copy)
      "${ifs_mount[@]}" --source "$backing" --direct --no-passthrough --direct-fallback "${1#inspatialfs-direct-}" "$mnt" &
      daemon_pid=$!; dir=$mnt ;;
    *) echo "bench: unknown target $1" >&2; return 1 ;;
  esac
  if [[ $1 != native ]]; then
    for _ in $(seq 200); do mountpoint -q "$mnt" && break; sleep 0.05; done
    mountpoint -q "$mnt" || { echo "bench: $1 did not mount" >&2; return 1; }
  fi
}
server_pid() { # the pid of the process serving target $1 (empty for native)
  case $1 in
    native) ;;
    bindfs|fuse-overlayfs) pgrep -n -x "$1" ;;
    *) kept_server "$daemon_pid" ;;
  esac
}
kept_server() { # `inspatialfs mount` of a kept mount becomes inspatialfs-keeper (same pid): its child serves
  local p=$1
  [[ $(cat "/proc/$p/comm" 2>/dev/null) == inspatialfs-kee ]] && p=$(awk '{ print $1 }' "/proc/$p/task/$p/children")
  echo "$p"
}
cpu_seconds() { # utime+stime of process $1 in seconds (0 without a process)
  [[ -n $1 && -r /proc/$1/stat ]] || { echo 0; return; }
  # Fields after the ")" that closes the command name: utime and stime are the 12th and 13th.
  python3 -c 'import os,sys; f=open("/proc/%s/stat" % sys.argv[1]).read().rsplit(")",1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf("SC_CLK_TCK"))' "$1"
}
unmount_target() {
  if [[ -n $daemon_pid ]]; then kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=; fi
  mountpoint -q "$mnt" && umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
}

fio_bw() { # prints MiB/s of a fio run (read+write)
  fio --output-format=json "$@" 2>/dev/null | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"]; print("%.1f" % (sum(x["read"]["bw"]+x["write"]["bw"] for x in j)/1024))'
}
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

declare -A result   # result[target,phase] = space-separated values, one per round ("cpu:PHASE": server CPU-seconds)
record() { result[$1,$2]="${result[$1,$2]:-} $3"; }
median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print("%.2f" % statistics.median(v) if v else "")' $1; }
timed() { # $1 = target, $2 = phase, rest = a command printing the phase's figure; records figure and server CPU
  local t=$1 p=$2; shift 2
  local pid; pid=$(server_pid "$t"); local c0; c0=$(cpu_seconds "$pid")
  local v; v=$("$@")
  record "$t" "$p" "$v"
  [[ -n $pid ]] && record "$t" "cpu:$p" "$(python3 -c "print('%.2f' % ($(cpu_seconds "$pid") - $c0))")"
  return 0
}
# Warm metadata (issue 14, kernel caches): RO_FILES files in 20 dirs; a first pass warms the caches, then, past the 1 s
# timeout of writable mounts, a timed pass: stat of every file (ops/s) and find -printf %s over the tree (entries/s).
RO_FILES=${RO_FILES:-4000}
ro_tree() { # $1 = where
  mkdir -p "$1/rotree"
  python3 - "$1/rotree" "$RO_FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 20)); os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%d" % i), "w") as f: f.write("x")
PY
}
warm_phases() { # $1 = target; the tree is in $dir/rotree
  local t=$1
  record $t warm-stat "$(python3 - "$dir/rotree" <<'PY'
import os, sys, time
paths = [os.path.join(r, f) for r, _, fs in os.walk(sys.argv[1]) for f in fs]
for p in paths: os.stat(p)
time.sleep(1.5)
s = time.perf_counter()
for p in paths: os.stat(p)
print("%.0f" % (len(paths) / (time.perf_counter() - s)))
PY
)"
  find "$dir/rotree" -printf '%s\n' > /dev/null; sleep 1.5
  local s=$(date +%s.%N) n=$(find "$dir/rotree" -printf '%s\n' | wc -l) e=$(date +%s.%N)
  record $t warm-find "$(python3 -c "print('%.0f' % ($n/($e-$s)))")"
}
run_workloads() { # $1 = target
  local t=$1 common="--directory=$dir --ioengine=psync --group_reporting"
  if [[ $t == inspatialfs-ro* ]]; then warm_phases "$t"; return; fi
  if [[ ${ONLY_WARM:-} == 1 ]]; then ro_tree "$dir"; warm_phases "$t"; return; fi
  timed $t seq-write fio_bw --name=sw $common --rw=write --bs=1m --size=$SIZE --end_fsync=1
  drop; timed $t seq-read-cold fio_bw --name=sw $common --rw=read --bs=1m --size=$SIZE
  timed $t seq-read-cached fio_bw --name=sw $common --rw=read --bs=1m --size=$SIZE
  for jobs in 1 2; do
    timed $t rand-read-4k-j$jobs fio_bw --name=rr $common --rw=randread --bs=4k --size=256m --numjobs=$jobs --time_based --runtime=$RUNTIME
    timed $t rand-write-4k-j$jobs fio_bw --name=rw $common --rw=randwrite --bs=4k --size=256m --numjobs=$jobs --time_based --runtime=$RUNTIME
  done
  rm -f "$dir"/sw.* "$dir"/rr.* "$dir"/rw.*
  mkdir -p "$dir/meta"
  # fsmeta runs the hook just before and after each timed phase: the server's CPU time is sampled there. Its readdir
  # phase lists every directory 10 times (one pass is ~10 ms, too short to time).
  local pid; pid=$(server_pid "$t"); local marks=$work/cpu-marks; : > "$marks"
  local hook=""; [[ -n $pid ]] && hook="printf '%s %s ' \"\$FSMETA_EVENT\" \"\$FSMETA_PHASE\" >> $marks; cut -d')' -f2 /proc/$pid/stat | awk '{print (\$12+\$13)/$(getconf CLK_TCK)}' >> $marks"
  while IFS=$'\t' read -r phase secs rate; do record $t meta-$phase "$rate"; done < <(FSMETA_HOOK=$hook native/build/fsmeta "$dir/meta" "$FILES" 100 10)
  # marks: "begin PHASE CPU" / "end PHASE CPU" lines, in order.
  while read -r event phase cpu; do
    if [[ $event == begin ]]; then c0=$cpu; else record $t "cpu:meta-$phase" "$(python3 -c "print('%.2f' % ($cpu - $c0))")"; fi
  done < "$marks"
  if [[ -f $tarball ]]; then
    mkdir -p "$dir/untar"
    timed $t untar bash -c 's=$(date +%s.%N); tar -C "$0" -xf "$1"; python3 -c "import time; print(\"%.2f\" % (1/(time.time()-$s)))"' "$dir/untar" "$tarball"
    drop
    timed $t tar-readback bash -c 's=$(date +%s.%N); tar -C "$0" -cf - . | wc -c >/dev/null; python3 -c "import time; print(\"%.2f\" % (1/(time.time()-$s)))"' "$dir/untar"
  fi
  ro_tree "$dir"; warm_phases "$t"
}

# System calls the server makes per metadata operation: one fsmeta run per FUSE target under `perf stat` counting
# the raw_syscalls:sys_enter tracepoint of the server process (counting in the kernel; separate from the timed rounds).
declare -A syscalls  # syscalls[target] = calls per operation over create+stat+readdir+stat-cold+unlink
count_syscalls() { # $1 = target (mounted)
  local t=$1 pid; pid=$(server_pid "$t"); [[ -n $pid ]] || return 0
  mkdir -p "$dir/sys"
  perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$work/perf.out" 2>/dev/null & local perf_pid=$!
  sleep 0.5
  native/build/fsmeta "$dir/sys" 5000 50 >/dev/null || echo "bench: fsmeta failed on $t (no system-call figure)" >&2
  kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
  local n; n=$(awk -F, '/raw_syscalls/ {print $1}' "$work/perf.out" 2>/dev/null)
  # 5 phases over 5000 files (readdir counts entries, about the same).
  [[ $n =~ ^[0-9]+$ ]] && syscalls[$t]=$(python3 -c "print('%.1f' % ($n / 25000))")
  return 0
}

phases="seq-write seq-read-cold seq-read-cached rand-read-4k-j1 rand-read-4k-j2 rand-write-4k-j1 rand-write-4k-j2 meta-create meta-stat meta-readdir meta-stat-cold meta-unlink untar tar-readback warm-stat warm-find"
targets=($TARGETS)
for round in $(seq "$ROUNDS"); do
  # The order rotates each round, so no target is always measured first or last (the machine drifts over minutes).
  shift_by=$(( (round - 1) % ${#targets[@]} ))
  for t in "${targets[@]:shift_by}" "${targets[@]:0:shift_by}"; do
    echo "==> round $round: $t" >&2
    if mount_target "$t"; then run_workloads "$t" || echo "bench: $t failed a workload" >&2; fi
    unmount_target
  done
done

if perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
  for t in "${targets[@]}"; do
    [[ $t == native || $t == inspatialfs-ro* ]] && continue
    echo "==> system calls per operation: $t" >&2
    if mount_target "$t"; then count_syscalls "$t"; fi
    unmount_target
  done
else
  echo "bench: perf cannot count raw_syscalls here; no system-call column" >&2
fi

mkdir -p bench/results
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ).tsv
{
  printf "phase\tunit"; for t in $TARGETS; do printf "\t%s" "$t"; done; for t in $TARGETS; do [[ $t == native ]] || printf "\t%s/native" "$t"; done; echo
  for p in $phases; do
    unit="MiB/s"; [[ $p == meta-* || $p == warm-* ]] && unit="ops/s"; [[ $p == untar || $p == tar-readback ]] && unit="1/s"
    printf "%s\t%s" "$p" "$unit"
    declare -A med=()
    for t in $TARGETS; do med[$t]=$(median "${result[$t,$p]:-}"); printf "\t%s" "${med[$t]}"; done
    for t in $TARGETS; do
      [[ $t == native ]] && continue
      n=${med[native]:-}; v=${med[$t]:-}
      if [[ -n $n && -n $v ]]; then printf "\t%s" "$(python3 -c "print('%.3f' % ($v/$n if $n else 0))")"; else printf "\t"; fi
    done
    echo
  done
} | tee "$out" | column -t -s $'\t'

# The servers' CPU-seconds per phase (median of the rounds; the workload is the same for every target).
{
  echo
  printf "server CPU-seconds\tphase"; for t in $TARGETS; do [[ $t == native ]] || printf "\t%s" "$t"; done; echo
  for p in $phases; do
    printf "cpu\t%s" "$p"
    for t in $TARGETS; do [[ $t == native ]] || printf "\t%s" "$(median "${result[$t,cpu:$p]:-}")"; done
    echo
  done
  printf "syscalls/op\tmetadata"; for t in $TARGETS; do [[ $t == native ]] || printf "\t%s" "${syscalls[$t]:-}"; done; echo
} | tee -a "$out" | column -t -s $'\t'

# Per-instance cost: start-up, idle RSS, idle CPU and context switches, RSS per 100,000 live nodes, against the C peers.
echo "==> start-up and memory per instance" >&2
echo
python3 scripts/bench-startup.py "$work" "$ROUNDS" | tee -a "$out" | column -t -s $'\t'

{ printf "phase\ttarget\tvalues per round\n"; for p in $phases; do for t in $TARGETS; do printf "%s\t%s\t%s\t%s\n" "$p" "$t" "${result[$t,$p]:-}" "${result[$t,cpu:$p]:-}"; done; done; } > "${out%.tsv}.rounds.tsv"
echo "results: $out (per-round values, then CPU-seconds: ${out%.tsv}.rounds.tsv)"
