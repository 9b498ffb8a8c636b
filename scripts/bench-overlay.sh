#!/usr/bin/env bash
# Overlay benchmark (issue 13): the same image layers mounted by the kernel's overlayfs, fuse-overlayfs and
# inspatialfs-overlay (the podman mount program, with the system profile's policy and the built-in rules), side by
# side in one run, ratios to the kernel overlay. Prints a table and writes bench/results/overlay-<stamp>.tsv.
#   phases: mount (command start to serving), find+stat of the whole tree, read every file cold (caches dropped) and
#           cached, append to 1,000 lower files (copy-up), tar x of the tree into the mount, and `podman run --rm
#           IMAGE true` start to exit with each as the overlay (podman's own kernel overlay driver for "kernel").
#   columns: seconds per phase (median of ROUNDS rounds, targets rotated each round) and, for the FUSE servers, the
#            server's CPU-seconds (user+system from /proc/PID/stat) per phase.
#   inspatialfs-uring is inspatialfs-overlay with -o io_uring (requests over io_uring; podman gets it as
#           overlay.mountopt): in the default targets on a kernel with FUSE over io_uring, whose switch
#           (/sys/module/fuse/parameters/enable_uring) the run turns on and puts back after.
# Env: ROUNDS (3), FILES (8000 files of 4-16 KiB in 200 dirs in the lower layer), PODMAN_RUNS (5 per round), TARGETS,
#      BASELINE_BIN (dir of an earlier build: its inspatialfs-overlay is target inspatialfs-base, in the same rounds).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ROUNDS=${ROUNDS:-3}
FILES=${FILES:-8000}
PODMAN_RUNS=${PODMAN_RUNS:-5}
uring_switch=/sys/module/fuse/parameters/enable_uring
default_targets="kernel fuse-overlayfs inspatialfs"
[[ -f $uring_switch ]] && default_targets="$default_targets inspatialfs-uring"
read -r -a TARGETS <<< "${TARGETS:-$default_targets}"
[[ -n ${BASELINE_BIN:-} ]] && TARGETS+=(inspatialfs-base)
[[ -x bin/inspatialfs-overlay ]] || { echo "bench-overlay: run 'make build' first" >&2; exit 1; }
for p in fuse-overlayfs podman runc; do command -v $p >/dev/null || { echo "bench-overlay: $p is missing (make deps)" >&2; exit 1; }; done

work=/var/tmp/isfs-bo
rm -rf "$work"; mkdir -p "$work"
lower=$work/lower mnt=$work/bench/merged profile=$work/overlay.yaml
printf 'isolation: standard\npaths:\n  forbidden: [/etc/shadow]\n' > "$profile"
export INSPATIALFS_OVERLAY_CONFIG=$profile
uring_before=
if [[ " ${TARGETS[*]} " == *" inspatialfs-uring "* ]]; then
  [[ -f $uring_switch ]] || { echo "bench-overlay: this kernel has no FUSE over io_uring ($uring_switch)" >&2; exit 1; }
  uring_before=$(cat "$uring_switch"); echo Y > "$uring_switch"
fi
cleanup() {
  [[ -n $uring_before ]] && echo "$uring_before" > "$uring_switch"
  mountpoint -q "$mnt" && umount "$mnt" 2>/dev/null || true
  for t in "${TARGETS[@]}"; do podman_cmd "$t" rm -af >/dev/null 2>&1 || true; done
  umount -R "$work"/podman-*/storage/overlay 2>/dev/null || true
}
trap cleanup EXIT

echo "==> lower layer: busybox rootfs + $FILES files"
scripts/make-rootfs.sh "$lower" >/dev/null
python3 - "$lower/data" "$FILES" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2]); random.seed(7)
for i in range(n):
    d = os.path.join(root, "d%03d" % (i % 200)); os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f: f.write(os.urandom(random.randint(4096, 16384)))
EOF
tar -C "$lower" -cf "$work/tree.tar" data
tar -C "$lower" -cf "$work/rootfs.tar" --exclude=./data .

now() { date +%s.%N; }
cpu_of() { # user+system seconds of a pid (0 for the kernel)
  [[ -z ${1:-} ]] && { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}
server_pid() { # the FUSE server behind $mnt
  case $1 in
    kernel) echo "" ;;
    fuse-overlayfs) pgrep -n -f "fuse-overlayfs.*$mnt" || echo "" ;;
    inspatialfs|inspatialfs-uring|inspatialfs-base) # instance.pid names the keeper; the server is its child
      # (the file outlives the instance: a pid no longer running is none)
      local keeper; keeper=$(cat /var/lib/inspatialfs/bench/instance.pid 2>/dev/null || true)
      [[ -n $keeper && -d /proc/$keeper ]] || { echo ""; return; }
      [[ $(cat "/proc/$keeper/comm" 2>/dev/null) == inspatialfs-kee ]] \
        && awk '{ print $1 }' "/proc/$keeper/task/$keeper/children" 2>/dev/null || echo "$keeper" ;;
  esac
}
fresh_upper() { rm -rf "$work/upper" "$work/work"; mkdir -p "$work/upper" "$work/work" "$mnt"; }
do_mount() { # $1 target: lower + the (fresh) upper, mounted at $mnt
  # inspatialfs-overlay names the instance after the directory above the mountpoint: keep it "bench".
  case $1 in
    kernel) mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/work" "$mnt" ;;
    fuse-overlayfs) fuse-overlayfs -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/work" "$mnt" ;;
    inspatialfs) bin/inspatialfs-overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/work" "$mnt" ;;
    inspatialfs-uring) bin/inspatialfs-overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/work,io_uring" "$mnt" ;;
    inspatialfs-base) "$BASELINE_BIN/inspatialfs-overlay" -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/work" "$mnt" ;;
  esac
}
podman_cmd() { # $1 target, rest: podman arguments, on a storage of that target's own
  local t=$1; shift
  local opts=(--root "$work/podman-$t/storage" --runroot "/run/isfs-bo-$t" --storage-driver overlay --cgroup-manager cgroupfs --events-backend file)
  case $t in
    fuse-overlayfs) opts+=(--storage-opt overlay.mount_program=/usr/bin/fuse-overlayfs) ;;
    inspatialfs) opts+=(--storage-opt "overlay.mount_program=$root/bin/inspatialfs-overlay") ;;
    inspatialfs-uring) opts+=(--storage-opt "overlay.mount_program=$root/bin/inspatialfs-overlay" --storage-opt overlay.mountopt=io_uring) ;;
    inspatialfs-base) opts+=(--storage-opt "overlay.mount_program=$(realpath "$BASELINE_BIN")/inspatialfs-overlay") ;;
  esac
  podman "${opts[@]}" "$@"
}

results=$work/rounds.tsv
: > "$results"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$1" "$2" "$3" "$4" >> "$results"; } # round target phase seconds cpu
phase() { # $1 target $2 phase, rest: command; times it and the server's CPU
  local t=$1 p=$2; shift 2
  local pid; pid=$(server_pid "$t")
  local c0; c0=$(cpu_of "$pid")
  local t0; t0=$(now)
  "$@" >/dev/null
  local t1; t1=$(now)
  local c1; c1=$(cpu_of "$pid")
  record "$t" "$p" "$(echo "$t1 - $t0" | bc -l)" "$(echo "$c1 - $c0" | bc -l)"
}

echo "==> podman images per target"
for t in "${TARGETS[@]}"; do
  mkdir -p "$work/podman-$t"
  podman_cmd "$t" import "$work/rootfs.tar" localhost/bench:1 >/dev/null
done

read_all() { find "$mnt/data" -type f -print0 | xargs -0 cat > /dev/null; }
find_stat() { find "$mnt" -xdev -print0 | xargs -0 stat --format=%i > /dev/null; }
copy_up() { for i in $(seq 0 999); do d=$(printf 'd%03d' $((i % 200))); echo x >> "$mnt/data/$d/$(printf 'f%05d' "$i")"; done; }
untar() { mkdir -p "$mnt/untar" && tar -C "$mnt/untar" -xf "$work/tree.tar"; }
podman_runs() { for _ in $(seq "$PODMAN_RUNS"); do podman_cmd "$1" run --rm --runtime runc --network none --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 localhost/bench:1 true; done; }

for round in $(seq "$ROUNDS"); do
  shift_by=$(( (round - 1) % ${#TARGETS[@]} ))
  order=("${TARGETS[@]:$shift_by}" "${TARGETS[@]:0:$shift_by}")
  echo "==> round $round: ${order[*]}"
  for t in "${order[@]}"; do
    fresh_upper
    t0=$(now); do_mount "$t"; t1=$(now); record "$t" mount "$(echo "$t1 - $t0" | bc -l)" 0
    sync; echo 3 > /proc/sys/vm/drop_caches
    phase "$t" find-stat-cold find_stat
    phase "$t" find-stat-warm find_stat
    sync; echo 3 > /proc/sys/vm/drop_caches
    phase "$t" read-cold read_all
    phase "$t" read-cached read_all
    phase "$t" copy-up-1000 copy_up
    phase "$t" untar untar
    sync
    umount "$mnt"
    for _ in $(seq 100); do [[ -z $(server_pid "$t") ]] && break; sleep 0.05; done
    t0=$(now); podman_runs "$t" >/dev/null; t1=$(now)
    record "$t" podman-run "$(echo "($t1 - $t0) / $PODMAN_RUNS" | bc -l)" 0
  done
done

mkdir -p bench/results
out=bench/results/overlay-$(date +%Y%m%d-%H%M%S).tsv
python3 - "$results" "$out" "${TARGETS[@]}" <<'EOF'
import sys, statistics, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
out, targets = sys.argv[2], sys.argv[3:]
secs, cpu = collections.defaultdict(list), collections.defaultdict(list)
phases = []
for r, t, p, s, c in rows:
    secs[(t, p)].append(float(s)); cpu[(t, p)].append(float(c))
    if p not in phases: phases.append(p)
med = lambda xs: statistics.median(xs) if xs else float("nan")
lines = ["phase\t" + "\t".join(f"{t} s\t{t} ratio\t{t} cpu-s" for t in targets)]
for p in phases:
    base = med(secs[("kernel", p)])
    cells = []
    for t in targets:
        s = med(secs[(t, p)]); c = med(cpu[(t, p)])
        cells += [f"{s:.3f}", f"{s / base:.2f}" if base > 0 else "-", f"{c:.2f}" if t != "kernel" else "-"]
    lines.append(p + "\t" + "\t".join(cells))
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines).replace("\t", " | "))
print(f"(median of {len(set(r for r, *_ in rows))} rounds; ratio = seconds / kernel overlay's seconds; cpu-s = the FUSE server's CPU-seconds in the phase)")
EOF
cp "$results" "${out%.tsv}.rounds.tsv"
echo "==> $out"
