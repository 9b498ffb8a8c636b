#!/usr/bin/env bash
# The unprivileged test set: every test outside the Mount category (those mount FUSE, need root, or run bin/inspatialfs,
# runc or podman), run as an unprivileged user, so a test that quietly needs root fails here instead of passing as root.
# Started as root it drops to nobody (uid 65534) with a private HOME and TMPDIR; started as another user it stays that
# user. Needs a build (`dotnet build`), not bin/. Usage: test-unprivileged.sh [CONFIG]
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-Release}
filter="TestCategory!=Mount"
if [[ $(id -u) -ne 0 ]]; then
  exec scripts/run-tests.sh "$config" "$filter"
fi

drop=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if ! "${drop[@]}" test -r InSpatialFs.sln; then
  echo "uid 65534 cannot read $(pwd): put the tree where nobody can read it, or run this script as a non-root user" >&2
  exit 1
fi
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
chown 65534:65534 "$home"
"${drop[@]}" env HOME="$home" DOTNET_CLI_HOME="$home" TMPDIR="$home" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 \
  scripts/run-tests.sh "$config" "$filter"
