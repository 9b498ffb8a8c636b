#!/usr/bin/env bash
# Daemon CPU per operation: one fixed metadata + untar workload over a tmpfs backing directory through each FUSE
# daemon in turn, and the CPU-seconds the daemon process spent on each phase (utime+stime of all its threads, from
# /proc/PID/stat before and after the phase). CPU-seconds are far steadier than throughput on these shared 2-core
# VMs, so this is the comparison to quote; the wall-clock rate is printed next to it for reference only.
#   targets:  bindfs, fuse-overlayfs, inspatialfs-host (proxied: `mount --source`, default policy: standard isolation,
#             events and the built-in rules on), inspatialfs-uring (the same with --io-uring: requests over io_uring;
#             the run turns /sys/module/fuse/parameters/enable_uring on and puts it back after; kernels without it
#             leave the target out), passthrough_hp if PASSTHROUGH_HP names its binary (optional).
#   phases:   native/build/fsmeta create, stat, readdir (READDIR_PASSES listings of each directory), stat-cold,
#             unlink over FILES files in 100 dirs, then `tar x` of a tarball of /usr/share/doc, then spawn: SPAWN
#             processes that each read one file (a new caller per process), and spawn-sh: the same started by a
#             #!/bin/sh script (a container entrypoint's children).
# A second pass (STRACE=1, the default) runs the same workload with STRACE_FILES files under `strace -f`, and counts
# per phase the FUSE requests (successful reads of /dev/fuse), the daemon's syscalls per request, and per opcode
# the syscalls the serving thread made between reading a request and reading the next one.
# Env: FILES (20000), ROUNDS (3), STRACE_FILES (2000), READDIR_PASSES (10), SPAWN (500), TARGETS, STRACE (1/0), PASSTHROUGH_HP (path),
#      BASELINE_BIN (dir of an earlier build, target inspatialfs-base), INSPATIALFS_ARGS (extra mount flags for
#      both, e.g. "--readers 1"), OUT (results dir).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
FILES=${FILES:-20000}
ROUNDS=${ROUNDS:-3}
STRACE_FILES=${STRACE_FILES:-2000}
STRACE=${STRACE:-1}
READDIR_PASSES=${READDIR_PASSES:-10}
SPAWN=${SPAWN:-500}
uring_switch=/sys/module/fuse/parameters/enable_uring
default_targets="bindfs fuse-overlayfs inspatialfs-host"
[[ -f $uring_switch ]] && default_targets="$default_targets inspatialfs-uring"
TARGETS=${TARGETS:-$default_targets}
[[ -n ${PASSTHROUGH_HP:-} ]] && TARGETS="$TARGETS passthrough_hp"
# BASELINE_BIN: a directory holding an earlier build's inspatialfs, measured as target "inspatialfs-base" in the
# same run (before/after comparisons under the same load).
[[ -n ${BASELINE_BIN:-} ]] && TARGETS="$TARGETS inspatialfs-base"
OUT=${OUT:-bench/results}

need=()
for p in bindfs fuse-overlayfs strace; do command -v $p >/dev/null || need+=("$p"); done
if ((${#need[@]})); then
  echo "==> installing: ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[[ -x bin/inspatialfs && -x native/build/fsmeta ]] || { echo "bench-cpu: run 'make build' first" >&2; exit 1; }

# Own work dir (not bench.sh's), so both can run on one machine.
work=/tmp/inspatialfs-bench-cpu
mkdir -p "$work"
mountpoint -q "$work" || mount -t tmpfs -o size=4g tmpfs "$work"
backing=$work/backing mnt=$work/mnt
daemon_pid= server_pid= tracer_pid=
cleanup() {
  [[ -n $tracer_pid ]] && kill -INT "$tracer_pid" 2>/dev/null || true
  [[ -n $daemon_pid ]] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  mountpoint -q "$mnt" && umount -l "$mnt" || true
}
uring_before=
if [[ " $TARGETS " == *" inspatialfs-uring "* ]]; then
  [[ -f $uring_switch ]] || { echo "bench-cpu: this kernel has no FUSE over io_uring ($uring_switch)" >&2; exit 1; }
  uring_before=$(cat "$uring_switch"); echo Y > "$uring_switch"
fi
trap 'cleanup; umount -l "$work" 2>/dev/null || true; [[ -n $uring_before ]] && echo "$uring_before" > "$uring_switch" || true' EXIT

tarball=$work/tree.tar
[[ -f $tarball ]] || tar -C /usr/share -cf "$tarball" doc 2>/dev/null || true

mount_target() { # $1 = target; every daemon runs in the foreground so $daemon_pid is the serving process
  rm -rf "$backing" "$mnt" "$work/upper" "$work/work" "$work/lower" "$work/state" "$work/ctl"
  mkdir -p "$backing" "$mnt"
  case $1 in
    bindfs) bindfs -f -o allow_other "$backing" "$mnt" & daemon_pid=$! ;;
    fuse-overlayfs) mkdir -p "$work/lower" "$work/work"
      fuse-overlayfs -f -o "lowerdir=$work/lower,upperdir=$backing,workdir=$work/work" "$mnt" & daemon_pid=$! ;;
    inspatialfs-host|inspatialfs-base|inspatialfs-uring)
      local exe=bin/inspatialfs extra=(); [[ $1 == inspatialfs-base ]] && exe=$BASELINE_BIN/inspatialfs
      [[ $1 == inspatialfs-uring ]] && extra=(--io-uring)
      "$exe" mount --source "$backing" --name bench-cpu --state-dir "$work/state" \
        --control "$work/ctl" --log-level warning "${extra[@]}" ${INSPATIALFS_ARGS:-} "$mnt" & daemon_pid=$! ;;
    passthrough_hp) "$PASSTHROUGH_HP" --foreground "$backing" "$mnt" >/dev/null 2>&1 & daemon_pid=$! ;;
    *) echo "bench-cpu: unknown target $1" >&2; return 1 ;;
  esac
  for _ in $(seq 300); do mountpoint -q "$mnt" && break; sleep 0.05; done
  mountpoint -q "$mnt" || { echo "bench-cpu: $1 did not mount" >&2; return 1; }
  # `inspatialfs mount` of a kept mount becomes inspatialfs-keeper (same pid); the server, whose CPU is measured, is
  # its child. Signals still go to $daemon_pid (the keeper forwards SIGTERM).
  server_pid=$daemon_pid
  [[ $(cat "/proc/$daemon_pid/comm" 2>/dev/null) == inspatialfs-kee ]] && server_pid=$(awk '{ print $1 }' "/proc/$daemon_pid/task/$daemon_pid/children")
  return 0
}
# CPU ticks and context switches per thread name of the daemon (where its time goes: request threads, event
# consumer, JIT, GC), appended to $threads_out for every round.
thread_breakdown() {
  for task in /proc/$server_pid/task/*; do
    read -r stat < "$task/stat" || continue
    set -- $(echo "${stat##*) }")
    printf "%s|%s|%s|%s\n" "$(cat "$task/comm")" "${12}" "${13}" "$(awk '/ctxt_switches/ { n += $2 } END { print n + 0 }' "$task/status")"
  done | sed 's/-[0-9]*|/|/' | awk -F'|' -v t="$1" '{ u[$1] += $2; s[$1] += $3; c[$1] += $4 }
    END { for (k in u) if (u[k] + s[k] > 0) printf "%s\t%s\tutime=%d\tstime=%d\tctxsw=%d\n", t, k, u[k], s[k], c[k] }' | sort -t$'\t' -k3 >> "$threads_out"
}
unmount_target() {
  if [[ -n $daemon_pid ]]; then
    [[ $t == inspatialfs-* && -n ${threads_out:-} ]] && thread_breakdown "$t"
    if [[ $t == inspatialfs-* ]]; then kill -TERM "$daemon_pid"; else umount "$mnt" 2>/dev/null || umount -l "$mnt"; fi
    wait "$daemon_pid" 2>/dev/null || true; daemon_pid=
  fi
  mountpoint -q "$mnt" && { umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null; } || true
}

# The sampler fsmeta calls around each phase (FSMETA_HOOK):
#   "<begin|end> <phase> <cpu ticks> <epoch seconds> <context switches of the live threads> <FUSE requests>".
# FUSE requests come from our daemon's status file (fuse_requests), read outside the CPU sample; 0 for the peers.
samples=$work/samples
cat > "$work/hook" <<'EOF'
#!/bin/sh
requests() { [ -n "$CTL" ] && awk '/^fuse_requests:/ { print $2 }' "$CTL/status" || echo 0; }
[ "$1" = begin ] && r=$(requests)
read -r stat < /proc/$DAEMON/stat
switches=$(cat /proc/$DAEMON/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }')
when=$1 phase=$2
set -- $(echo "${stat##*) }")
ticks=$(( ${12} + ${13} ))
[ "$when" = end ] && r=$(requests)
echo "$when $phase $ticks $(date +%s.%N) $switches ${r:-0}" >> "$SAMPLES"
EOF
chmod +x "$work/hook"
ctl_of() { [[ $t == inspatialfs-* ]] && echo "$work/ctl"; }
sample() { DAEMON=$server_pid SAMPLES=$samples CTL=$(ctl_of) "$work/hook" "$1" "$2"; }

run_workload() { # $1 = files; writes $samples
  : > "$samples"
  mkdir -p "$mnt/meta"
  DAEMON=$server_pid SAMPLES=$samples CTL=$(ctl_of) FSMETA_HOOK="$work/hook \"\$FSMETA_EVENT\" \"\$FSMETA_PHASE\"" native/build/fsmeta "$mnt/meta" "$1" 100 "$READDIR_PASSES" > "$work/fsmeta.out"
  if [[ -f $tarball ]]; then
    mkdir -p "$mnt/untar"
    # A failed extraction is reported, not fatal: on a shared machine another program's drop_caches can make the
    # kernel forget and look up a directory again mid-extraction (tar then sees a new st_ino: "Directory renamed").
    sample begin untar
    tar -C "$mnt/untar" -xf "$tarball" 2> "$work/tar.err" || echo "bench-cpu: tar x on $t: $(wc -l < "$work/tar.err") errors, first: $(head -1 "$work/tar.err")" >&2
    sample end untar
  fi
  # spawn: SPAWN short-lived processes, each reading one small file. Every one is a caller the daemon has not seen
  # (identified through /proc, with a process context for its events): what a shell script or a build pays per exec.
  echo x > "$mnt/spawn-file"
  sample begin spawn
  local s e; s=$(date +%s.%N)
  for ((i = 0; i < SPAWN; i++)); do cat "$mnt/spawn-file" > /dev/null; done
  e=$(date +%s.%N)
  sample end spawn
  python3 -c "import sys; d=float(sys.argv[2])-float(sys.argv[1]); print('spawn\t%.3f\t%.0f' % (d, int(sys.argv[3])/d))" "$s" "$e" "$SPAWN" >> "$work/fsmeta.out"
  # spawn-sh: the same from a #!/bin/sh script, as a container's entrypoint starts its children. The kernel runs it as
  # "/bin/sh SCRIPT" named after the script, so the parent's name and argv[0] differ; the daemon has to know it as a
  # script, not as a process caught inside execve.
  printf '#!/bin/sh\ni=0\nwhile [ $i -lt %d ]; do cat "$1" > /dev/null; i=$((i + 1)); done\n' "$SPAWN" > "$work/spawn.sh"
  chmod 0755 "$work/spawn.sh"
  sample begin spawn-sh
  s=$(date +%s.%N)
  "$work/spawn.sh" "$mnt/spawn-file"
  e=$(date +%s.%N)
  sample end spawn-sh
  python3 -c "import sys; d=float(sys.argv[2])-float(sys.argv[1]); print('spawn-sh\t%.3f\t%.0f' % (d, int(sys.argv[3])/d))" "$s" "$e" "$SPAWN" >> "$work/fsmeta.out"
}

mkdir -p "$OUT"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
threads_out=$OUT/cpu-$stamp.threads
declare -A cpu rate ctx req   # [target,phase] = space-separated values, one per round
phases="create stat readdir stat-cold unlink untar spawn spawn-sh"
ticks=$(getconf CLK_TCK)
targets=($TARGETS)
for round in $(seq "$ROUNDS"); do
  # The order rotates each round, so no target always runs first or last (other work on the machine drifts).
  shift_by=$(( (round - 1) % ${#targets[@]} ))
  for t in "${targets[@]:shift_by}" "${targets[@]:0:shift_by}"; do
    echo "==> cpu pass, round $round: $t ($FILES files)" >&2
    mount_target "$t" || continue
    run_workload "$FILES"
    while read -r phase secs r; do rate[$t,$phase]="${rate[$t,$phase]:-} $r"; done < "$work/fsmeta.out"
    while read -r phase secs switches requests; do
      cpu[$t,$phase]="${cpu[$t,$phase]:-} $secs"; ctx[$t,$phase]="${ctx[$t,$phase]:-} $switches"
      req[$t,$phase]="${req[$t,$phase]:-} $requests"
    done < <(python3 - "$samples" "$ticks" <<'EOF'
import sys
begin = {}
for line in open(sys.argv[1]):
    when, phase, ticks, at, switches, requests = line.split()
    if when == "begin": begin[phase] = (int(ticks), int(switches), int(requests))
    else:
        b = begin[phase]
        print(phase, "%.2f" % ((int(ticks) - b[0]) / int(sys.argv[2])), int(switches) - b[1], int(requests) - b[2])
EOF
)
    unmount_target
  done
done

stat_of() { # $1 = min|median, values...
  local how=$1; shift
  python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[2:]]; print(("%.2f" % (min(v) if sys.argv[1]=="min" else statistics.median(v))) if v else "")' "$how" "$@"
}
out=$OUT/cpu-$stamp.tsv
echo "# daemon CPU-seconds per phase (utime+stime of all threads; best of $ROUNDS interleaved rounds, all rounds in"
echo "# $out.rounds), the daemon's context switches (median), FUSE requests (our daemon's counter; the strace pass"
echo "# counts them for every target) and the wall-clock rate (median, reference only);"
echo "# FILES=$FILES, tmpfs backing, $(nproc) cores shared with other work"
{
  printf "phase"; for t in "${targets[@]}"; do printf "\t%s cpu-s\tctxsw\trequests\tops/s" "$t"; done; echo
  declare -A sum=()
  for p in $phases; do
    printf "%s" "$p"
    for t in "${targets[@]}"; do
      c=$(stat_of min ${cpu[$t,$p]:-}); sum[$t]=$(python3 -c "print('%.2f' % (${sum[$t]:-0} + ${c:-0}))")
      r=$(stat_of median ${rate[$t,$p]:-}); n=$(stat_of median ${req[$t,$p]:-} | cut -d. -f1); [[ $n == 0 ]] && n=-
      printf "\t%s\t%s\t%s\t%s" "$c" "$(stat_of median ${ctx[$t,$p]:-} | cut -d. -f1)" "$n" "${r:--}"
    done
    echo
  done
  printf "total"; for t in "${targets[@]}"; do printf "\t%s\t\t\t" "${sum[$t]}"; done; echo
} | tee "$out" | column -t -s $'\t'
for t in "${targets[@]}"; do for p in $phases; do printf "%s\t%s\tcpu-s:%s\tctxsw:%s\n" "$t" "$p" "${cpu[$t,$p]:-}" "${ctx[$t,$p]:-}"; done; done > "$out.rounds"

[[ $STRACE == 1 ]] || { echo "results: $out (per-thread CPU ticks of our daemon, per round: $threads_out)"; exit 0; }
threads_out=  # the strace pass's thread times are the tracer's doing

# Second pass: syscalls per FUSE request under strace (slower, so fewer files; counts, not times, are kept).
straceout=$OUT/cpu-$stamp.syscalls.tsv
: > "$straceout"
for t in "${targets[@]}"; do
  # The per-request split reads request boundaries from reads of /dev/fuse; a ring serves them in io_uring_enter.
  [[ $t == inspatialfs-uring ]] && { echo "==> strace pass: $t left out (its requests do not pass through read(2))" >&2; continue; }
  echo "==> strace pass: $t ($STRACE_FILES files)" >&2
  mount_target "$t" || continue
  strace -f -y -ttt -qq -s 8 -xx -o "$work/strace.out" -p "$server_pid" 2>/dev/null & tracer_pid=$!
  sleep 1
  run_workload "$STRACE_FILES"
  sleep 0.5
  kill -INT "$tracer_pid"; wait "$tracer_pid" 2>/dev/null || true; tracer_pid=
  cp "$work/strace.out" "$OUT/cpu-$stamp.$t.strace"; cp "$samples" "$OUT/cpu-$stamp.$t.samples"
  python3 scripts/bench-cpu-strace.py "$t" "$samples" "$work/strace.out" >> "$straceout"
  unmount_target
done
column -t -s $'\t' "$straceout"
echo "results: $out $straceout (per-thread CPU ticks of our daemon, per round: $threads_out)"
