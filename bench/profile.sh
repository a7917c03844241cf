#!/usr/bin/env bash
# Profiles the service under one bench scenario with `perf` (Debian's linux-perf):
# once the bench has printed a line matching <start> (the heading or row printed right
# before the workload to profile), samples the service's process for <seconds> and
# writes where the time went to docs/profiles/<name>.txt.
#
#   bench/profile.sh <name> <start> <seconds> -- <bench args…>
#   bench/profile.sh withdraw-hot-sqlite '^workload' 3 -- hot --duration 5s --users 2
set -euo pipefail
cd "$(dirname "$0")/.."

name=$1 start=$2 span=$3
shift 3
[ "${1:-}" = "--" ] && shift
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 1; }

out=docs/profiles/$name.txt
data=$(mktemp /tmp/perf-XXXXXX.data)
trap 'rm -f "$data"' EXIT

./target/release/gophermart-bench "$@" > "/tmp/profile-$name.log" 2>&1 &
bench=$!
for _ in $(seq 1 1200); do
    grep -qE "$start" "/tmp/profile-$name.log" 2>/dev/null && break
    kill -0 "$bench" 2>/dev/null || { cat "/tmp/profile-$name.log" >&2; exit 1; }
    sleep 0.1
done
sleep 0.5
service=$(pgrep -n -f 'target/release/gophermart -a' || pgrep -n -x gophermart)
perf record -q -F 999 -g -p "$service" -o "$data" -- sleep "$span" 2>/dev/null
wait "$bench"
{
    echo "# bench: gophermart-bench $*"
    echo "# perf record -F 999 -g -p <service> for ${span}s from the line matching '$start'; $(date -u +%F)"
    echo "# bench output:"
    sed 's/\x1b\[[0-9;]*m//g' "/tmp/profile-$name.log" | grep -vE ' (INFO|WARN|ERROR) ' | sed 's/^/#   /'
    echo
    echo "# where the time went, by object:"
    perf report -i "$data" --stdio --no-children --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -6
    echo
    echo "# the hottest functions, self time:"
    perf report -i "$data" --stdio --no-children --sort dso,symbol --percent-limit 0.7 2>/dev/null \
        | grep -E '^ +[0-9]' | cut -c1-160 | head -40
} > "$out"
echo "wrote $out"
