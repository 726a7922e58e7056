#!/usr/bin/env bash
# Issue 5: what the statistics collector costs with 100 stores. Starts Berth, creates 100 one-node
# stores, waits until every one is available and the first samples are in, then measures for
# WINDOW seconds the CPU time of the Berth process (the collector, and beside it the health checks
# and the backup scheduler: an upper bound of the collector's cost), of its control PostgreSQL
# (where the samples are written) and of the 100 nodes (answering the samples). Target: the
# collector under 5 % of one core. Run from the repository root as root: `bash bench/collector.sh`.
# Figures: bench/STORE-FEATURES.md.
#
# Environment:
#   STORES      stores to create (default 100)
#   WINDOW      seconds measured (default 60)
#   BERTH_STATS_INTERVAL  Berth's sampling interval (default 10s, Berth's own default)
#   NODE_PORTS  ports Berth hands to store nodes (default 25700-25899)
set -euo pipefail
trap 'echo "bench/collector.sh: line $LINENO failed" >&2' ERR

STORES=${STORES:-100}
WINDOW=${WINDOW:-60}
NODE_PORTS=${NODE_PORTS:-25700-25899}
QUIET_WAIT=0
export BERTH_STATS_INTERVAL=${BERTH_STATS_INTERVAL:-10s}
# Creating 100 stores goes faster with more workers; it does not change what is measured.
export BERTH_WORKERS=${BERTH_WORKERS:-4}
# One organization holds every store: its quotas must admit them (the defaults are 20 and 50).
export BERTH_QUOTA_STORES=${BERTH_QUOTA_STORES:-$STORES} BERTH_QUOTA_NODES=${BERTH_QUOTA_NODES:-$STORES}

cd "$(dirname "$0")/.."
BENCH_NAME=collector
# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "== creating $STORES stores"
t0=$(now)
for i in $(seq "$STORES"); do
    api POST /stores -H 'Content-Type: application/json' -o /dev/null --data \
        "{\"name\":\"s$i\",\"vendor\":\"postgres\",\"version\":\"15\",\"instance_size\":\"tiny\",
          \"volume_size\":10,\"nodes\":1,\"cloud\":\"local\",\"region\":\"local-1\"}"
done
deadline=$((SECONDS + 1800))
while :; do
    up=$(api GET "/stores?status=available&limit=100" | jq '.items | length')
    ((up >= STORES)) && break
    ((SECONDS < deadline)) || { echo "only $up stores came up within 30 minutes" >&2; exit 1; }
    sleep 2
done
printf '   %d stores available after %.0f s\n' "$STORES" "$(elapsed "$t0" "$(now)")"
# Two sampling rounds before measuring, so that nothing of the creation is left in the window.
sleep "$(($(sed 's/s$//' <<<"$BERTH_STATS_INTERVAL") * 2 + 5))"

# CPU ticks of the processes of a group: berth (its pid), control (PostgreSQL of Berth's own
# data), nodes (PostgreSQL working under the stores' folders).
group_ticks() {
    local pid cwd berth=0 control=0 nodes=0 t
    for stat in /proc/[0-9]*/stat; do
        pid=${stat#/proc/}
        pid=${pid%/stat}
        cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || continue
        t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$stat" 2>/dev/null) || continue
        if [[ $pid == "$BERTH_PID" ]]; then
            berth=$((berth + t))
        elif [[ $cwd == "$WORK/data/stores/"* ]]; then
            nodes=$((nodes + t))
        elif [[ $cwd == "$WORK/"* ]]; then
            control=$((control + t))
        fi
    done
    echo "$berth $control $nodes"
}

echo "== measuring for $WINDOW s"
samples_before=$(api GET "/stores?limit=1" | jq -r '.items[0].id')
read -r b0 c0 n0 <<<"$(group_ticks)"
t0=$(now)
sleep "$WINDOW"
read -r b1 c1 n1 <<<"$(group_ticks)"
t1=$(now)
HZ=$(getconf CLK_TCK)
pct() { awk -v d="$1" -v hz="$HZ" -v s="$(elapsed "$t0" "$t1")" 'BEGIN { printf "%.2f", 100 * d / hz / s }'; }
taken=$(api GET "/stores/$samples_before/stats/summary" | jq -c '.' | head -c 200)

echo
echo "== results: $(date -u +%Y-%m-%d), $(nproc) cores, $STORES stores, interval $BERTH_STATS_INTERVAL, ${WINDOW} s"
echo "| process | % of one core |"
echo "| --- | ---: |"
echo "| Berth (collector, health checks, scheduler) | $(pct $((b1 - b0))) |"
echo "| its control PostgreSQL | $(pct $((c1 - c0))) |"
echo "| the $STORES store nodes | $(pct $((n1 - n0))) |"
echo "Berth: $(verdict "$(pct $((b1 - b0)))" 5) (target < 5 %)"
echo "a store's summary, to show samples were taken: $taken"
