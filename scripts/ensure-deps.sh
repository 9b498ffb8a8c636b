#!/usr/bin/env bash
# Installs what building and testing InSpatialFs needs, only when it is missing, and says so.
set -euo pipefail

need_pkgs=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# python3-prometheus-client: the metrics tests check the exposition with the official Prometheus client parser; jq: the README runc walk-through;
# strace: a test checks which process execs the keeper, before any thread.
for pkg in fuse3 runc busybox-static fio gcc libc6-dev sqlite3 git attr stress-ng podman fuse-overlayfs python3-prometheus-client jq strace; do
  have "$pkg" || need_pkgs+=("$pkg")
done
if ((${#need_pkgs[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "inspatialfs: missing packages: ${need_pkgs[*]} (run as root, or: apt-get install ${need_pkgs[*]})" >&2
    exit 1
  fi
  echo "==> installing missing packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
if ! command -v dotnet >/dev/null; then
  echo "inspatialfs: the .NET 10 SDK (dotnet) is required and not on PATH" >&2
  exit 1
fi
# fusectl lets tests abort a hung connection instead of hanging.
if [[ -d /sys/fs/fuse/connections ]] && ! mountpoint -q /sys/fs/fuse/connections; then
  mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null || true
fi
if [[ ! -d obj ]] && ! ls src/*/obj >/dev/null 2>&1; then
  echo "==> restoring NuGet packages (first build) ..."
fi
