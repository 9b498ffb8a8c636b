#!/usr/bin/env bash
# make install: the daemon under /usr/local/lib/inspatialfs, a /usr/local/bin/inspatialfs link, the systemd
# template unit with the daily prune timer, and example configs under /etc/inspatialfs/examples (existing configs are never overwritten).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr/local}
[[ -x bin/inspatialfs ]] || { echo "install: run 'make build' first" >&2; exit 1; }
install -d -m 0755 "$prefix/lib/inspatialfs" "$prefix/bin" /etc/inspatialfs/examples /etc/systemd/system "$prefix/share/doc/inspatialfs"
cp -a bin/. "$prefix/lib/inspatialfs/"
ln -sfn "$prefix/lib/inspatialfs/inspatialfs" "$prefix/bin/inspatialfs"
ln -sfn "$prefix/lib/inspatialfs/inspatialfs-overlay" "$prefix/bin/inspatialfs-overlay"
# mount(8) looks for /sbin/mount.fuse.TYPE for `mount -t fuse.inspatialfs` and fstab lines of that type.
ln -sfn "$prefix/lib/inspatialfs/mount.fuse.inspatialfs" /sbin/mount.fuse.inspatialfs
for u in inspatialfs@.service inspatialfs-prune.service inspatialfs-prune.timer; do install -m 0644 "scripts/systemd/$u" "/etc/systemd/system/$u"; done
for f in scripts/examples/*.yaml scripts/examples/profiles/*.yaml; do install -m 0644 "$f" /etc/inspatialfs/examples/; done
install -m 0644 README.md "$prefix/share/doc/inspatialfs/README.md"
command -v systemctl >/dev/null && systemctl daemon-reload 2>/dev/null || true
echo "installed: $prefix/bin/inspatialfs, /etc/systemd/system/inspatialfs@.service and inspatialfs-prune.{service,timer}, /etc/inspatialfs/examples/"
echo "next: cp /etc/inspatialfs/examples/web-1.yaml /etc/inspatialfs/web-1.yaml && systemctl start inspatialfs@web-1"
echo "      systemctl enable --now inspatialfs-prune.timer   (daily removal of stopped instances' state)"
