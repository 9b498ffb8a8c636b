#!/usr/bin/env bash
# make-rootfs.sh DEST — builds a minimal busybox root filesystem for containers in DEST.
# Uses Debian's busybox-static (/bin/busybox, statically linked); installs it if missing.
# Idempotent: running it again on the same DEST repairs and refreshes, never duplicates.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
    echo "usage: $0 DEST" >&2
    exit 2
fi
dest=$1
if [[ "$dest" == "/" ]]; then
    echo "make-rootfs: refusing to build a rootfs over /" >&2
    exit 2
fi

busybox=/bin/busybox
is_static() { file -L "$1" 2>/dev/null | grep -q 'statically linked' || ! ldd "$1" >/dev/null 2>&1; }
if [[ ! -x $busybox ]] || ! is_static "$busybox"; then
    echo "make-rootfs: installing busybox-static (a statically linked busybox) ..."
    if [[ $EUID -ne 0 ]]; then
        echo "make-rootfs: busybox-static is missing and installing it needs root" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >/dev/null
fi

mkdir -p "$dest"
cd "$dest"
for d in bin sbin etc tmp proc sys dev usr/bin usr/sbin usr/lib var/log var/tmp root home run; do
    mkdir -p "$d"
done
chmod 1777 tmp var/tmp
chmod 0700 root

install -m 0755 "$busybox" bin/busybox
# Applet symlinks (absolute /bin/busybox targets, resolved inside the container's root).
# --install -s never overwrites existing names, so a second run changes nothing.
chroot . /bin/busybox --install -s 2>/dev/null || ./bin/busybox --install -s "$PWD/bin"
# Fix links an install outside chroot may have made pointing at the host path.
for link in bin/* sbin/* usr/bin/* usr/sbin/*; do
    [[ -L $link ]] || continue
    target=$(readlink "$link")
    if [[ $target == "$PWD/bin/busybox" ]]; then ln -sfn /bin/busybox "$link"; fi
done
[[ -e bin/sh ]] || ln -s /bin/busybox bin/sh

write_if_changed() { # FILE MODE CONTENT
    if [[ ! -f $1 ]] || [[ "$(cat "$1")" != "$3" ]]; then printf '%s\n' "$3" > "$1"; fi
    chmod "$2" "$1"
}
write_if_changed etc/passwd 0644 "root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false"
write_if_changed etc/group 0644 "root:x:0:
nogroup:x:65534:"
write_if_changed etc/shadow 0600 "root:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::"
write_if_changed etc/hostname 0644 "inspatial"
write_if_changed etc/hosts 0644 "127.0.0.1 localhost"
write_if_changed etc/profile 0644 'export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root'

echo "make-rootfs: busybox rootfs ready at $PWD ($(find bin -type l | wc -l) applets)"
