#!/usr/bin/env bash
# make run: the main job. Builds a busybox rootfs, mounts it through InSpatialFs with the default demo config
# (standard isolation, built-in rules, /tmp in memory, /usr direct), runs a container on it with runc that does
# normal work and then a few attacks, shows events and incidents live from the control files, prints a summary,
# unmounts and exits 0. Safe to run again: leftovers of an earlier run are cleaned first.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bin=$repo/bin/inspatialfs
name=demo
work=/var/lib/inspatialfs-demo
image=$work/image
mnt=$work/rootfs
ctl=/run/inspatialfs/$name
bundle=$work/bundle
state=$work/state
container=inspatialfs-demo

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

command -v runc >/dev/null || { say "installing runc"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc >/dev/null; }

# Leftovers of an interrupted earlier run.
runc delete -f "$container" >/dev/null 2>&1 || true
for m in "$mnt" "$ctl"; do mountpoint -q "$m" 2>/dev/null && umount -l "$m" || true; done
rm -rf "$state" "$bundle"

say "building the busybox rootfs in $image"
scripts/make-rootfs.sh "$image"
rm -rf "$image/data" "$image/tmp"/* # what the previous run's workload left
mkdir -p "$image/data" "$image/demo" "$mnt" "$bundle"
cat > "$image/etc/shadow" <<'SHADOW'
root:$6$demo$notarealhash:19000:0:99999:7:::
SHADOW
chmod 0640 "$image/etc/shadow"
cat > "$image/demo/workload.sh" <<'WORKLOAD'
#!/bin/sh
# Normal activity first.
echo "[workload] normal activity"
mkdir -p /data/app/logs
for i in 1 2 3 4 5; do echo "record $i" >> /data/app/logs/app.log; done
cp /etc/passwd /tmp/passwd.copy && wc -l < /tmp/passwd.copy > /dev/null
ls /usr/bin > /dev/null
mv /data/app/logs/app.log /data/app/logs/app.log.1
sleep 1
echo "[workload] attack: credential read"
cat /etc/shadow > /dev/null 2>&1 && echo "  shadow was readable!" || echo "  shadow read refused"
echo "[workload] attack: symlink to /etc/shadow"
ln -s /etc/shadow /tmp/.hidden-shadow 2>/dev/null && echo "  symlink created (detected)" || echo "  symlink refused"
echo "[workload] attack: setuid chmod"
cp /bin/busybox /tmp/rootshell && chmod u+s /tmp/rootshell 2>/dev/null && echo "  setuid set!" || echo "  setuid refused"
echo "[workload] attack: drop and exec from /tmp"
printf '#!/bin/sh\necho "  dropped payload ran"\n' > /tmp/dropper && chmod +x /tmp/dropper && /tmp/dropper || echo "  exec refused"
echo "[workload] attack: burst of renames (ransomware-like)"
# The rule counts renames per process, so one mv moves all 120 files (a loop would fork one mv per file).
rm -rf /data/docs /data/locked && mkdir -p /data/docs /data/locked && for i in $(seq 1 120); do echo "doc $i" > /data/docs/doc$i.txt; done
mv /data/docs/doc*.txt /data/locked/ 2>/dev/null
echo "  moved $(ls /data/locked | wc -l) files"
echo "[workload] done"
WORKLOAD
chmod 0755 "$image/demo/workload.sh"

cat > "$work/demo.yaml" <<CONFIG
# The default demo instance: standard isolation, built-in rules, /tmp in memory, /usr direct.
name: $name
mountpoint: $mnt
control: $ctl
state_dir: $state
isolation: standard
mounts:
  - { path: /,    source: $image }
  - { path: /usr, source: $image/usr, readonly: true, direct: true }
  - { path: /tmp, memory: { size: 64MiB } }
paths:
  forbidden: [/etc/shadow, /root/.ssh/**]
  readonly:  [/usr/**]
response: { suspend_on: critical }
container: { cgroup: /$container }   # runc puts the container in this cgroup (cgroupsPath below)
CONFIG

say "mounting $mnt through InSpatialFs (control files in $ctl)"
"$bin" mount --config "$work/demo.yaml" --log-level warning > "$work/daemon.log" 2>&1 &
daemon=$!
stop_daemon() {
  if kill -0 "$daemon" 2>/dev/null; then kill -TERM "$daemon"; wait "$daemon" || return $?; fi
}
trap 'kill $viewer 2>/dev/null || true; runc delete -f $container >/dev/null 2>&1 || true; stop_daemon || true' EXIT
for _ in $(seq 200); do [[ -e $ctl/status ]] && mountpoint -q "$mnt" && break; sleep 0.05; done
if ! mountpoint -q "$mnt"; then echo "inspatialfs did not mount:"; cat "$work/daemon.log"; exit 1; fi
"$bin" ctl "$ctl" status | sed 's/^/   /'

say "live events and incidents (notable events: denials, changes, executions)"
"$bin" ctl "$ctl" watch &
viewer=$!

say "running the container workload with runc"
runc spec --bundle "$bundle"
sed -i -e 's#"terminal": true#"terminal": false#' \
       -e "s#\"path\": \"rootfs\"#\"path\": \"$mnt\"#" \
       -e 's#"readonly": true#"readonly": false#' \
       -e 's#"sh"$#"/demo/workload.sh"#' \
       -e "s#\"linux\": {#\"linux\": { \"cgroupsPath\": \"/$container\",#" "$bundle/config.json"
set +e
runc run --bundle "$bundle" "$container" 2>&1 | sed -u 's/^/   /'
status=${PIPESTATUS[0]}
set -e
"$bin" ctl "$ctl" status >/dev/null  # let the analysis catch up before the viewer stops
sleep 1
kill "$viewer" 2>/dev/null || true
wait "$viewer" 2>/dev/null || true

say "summary"
"$bin" ctl "$ctl" summary
echo "   container exit code: $status"

say "unmounting"
trap - EXIT
runc delete -f "$container" >/dev/null 2>&1 || true
stop_daemon
echo "   daemon exited 0; log in $work/daemon.log"
