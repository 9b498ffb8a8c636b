#!/usr/bin/env bash
# Prints the source identity of the daemon: one SHA-256 over every file its build reads from the tree (everything under
# src/ but build output and *.md: code, project files, embedded rule files; the two Directory.*.props; and
# native/keeper/early-*.[ch], which are linked into the binary), each named
# by its path, in byte order of the paths. The daemon's build embeds it (`inspatialfs --version` prints it) and the
# test kit runs this script to refuse a bin/inspatialfs built from other sources. Content only (no git, no times), so
# a clean clone and a tarball of the same sources give the same stamp.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # the glob below expands in byte order
{
  sha256sum Directory.Build.props Directory.Packages.props native/keeper/early-*.[ch]
  find src \( -name bin -o -name obj \) -prune -o -type f ! -name '*.md' -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-16
