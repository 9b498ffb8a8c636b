#!/usr/bin/env bash
# Runs every test project and prints one closing line: "N passed, N failed[, N skipped]".
# Usage: run-tests.sh [CONFIG] [FILTER]; FILTER is a `dotnet test --filter` expression (e.g. "TestCategory!=Mount").
set -uo pipefail
config=${1:-Release}
filter=${2:-}
filter_args=()
[[ -n $filter ]] && filter_args=(--filter "$filter")
cd "$(dirname "$0")/.."
results=$(mktemp -d)
# INSPATIALFS_TEST_RESULTS=DIR keeps the TRX files (every failure's whole message and output) for a later look.
keep=${INSPATIALFS_TEST_RESULTS:-}
trap '[[ -n $keep ]] && mkdir -p "$keep" && cp "$results"/*.trx "$keep"/ 2>/dev/null; rm -rf "$results"' EXIT

status=0
for proj in tests/*.Tests/*.csproj tests/InSpatialFs.IntegrationTests/*.csproj; do
  [[ -e $proj ]] || continue
  name=$(basename "$proj" .csproj)
  echo "==> $name"
  # dotnet test's own status, taken in the same statement: with pipefail a failing pipeline followed by `|| true` would
  # leave PIPESTATUS describing `true`, and a crashed or hung test host (the run aborted, its remaining tests never run)
  # would still sum to "N passed, 0 failed".
  dotnet test "$proj" -c "$config" --no-build --nologo -v:q "${filter_args[@]}" \
    --logger "trx;LogFileName=$name.trx" --results-directory "$results" \
    --blame-hang-timeout 10m 2>&1 | grep -vE '^\s*$|Microsoft \(R\)|Copyright \(C\)|An issue was encountered verifying workloads'
  codes=("${PIPESTATUS[@]}")
  if [[ ${codes[0]} -ne 0 ]]; then
    status=1
    echo "==> $name: dotnet test exited with ${codes[0]}"
  fi
  # A run the test host did not finish: its TRX says so even where the counters look clean.
  if grep -q '<ResultSummary outcome="\(Aborted\|Error\|Timeout\)"' "$results/$name.trx" 2>/dev/null; then
    status=1
    echo "==> $name: the test run did not complete ($(grep -o '<ResultSummary outcome="[A-Za-z]*"' "$results/$name.trx" | head -1))"
  fi
done

# Sum the TRX counters: the single source of truth for the closing line.
counter() { # sum of one TRX counter attribute over all result files
  cat "$results"/*.trx 2>/dev/null | grep -o "<Counters [^>]*" | grep -o " $1=\"[0-9]*\"" | grep -o "[0-9]*" | awk '{s+=$1} END {print s+0}'
}
passed=$(counter passed)
failed=$(( $(counter failed) + $(counter error) + $(counter timeout) + $(counter aborted) ))
skipped=$(counter notExecuted)
# Name every failed test with its message (up to 30 lines each: a timeout's message carries the daemon's status and
# output, the only trace CI keeps), from the TRX files.
for trx in "$results"/*.trx; do
  [[ -e $trx ]] || continue
  awk '/<UnitTestResult / { failed = 0; lines = 0
         if ($0 ~ /outcome="Failed"/ && match($0, /testName="[^"]*"/)) { print "FAILED: " substr($0, RSTART + 10, RLENGTH - 11); failed = 1 } }
       failed == 1 && /<Message>/ { failed = 2; sub(/.*<Message>/, "") }
       failed == 2 { done = sub(/<\/Message>.*/, ""); if (++lines <= 30) print "    " $0; if (done) failed = 0 }' "$trx" | head -200
done
if [[ -z ${passed:-} ]]; then passed=0; failed=1; skipped=0; fi
if (( status != 0 && failed == 0 )); then failed=1; fi   # a crashed or aborted test host counts as a failure
if (( skipped > 0 )); then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
(( failed == 0 ))
