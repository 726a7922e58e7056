#!/usr/bin/env bash
# Issue 5: applying a reload-only parameter change to a 3-node store, from `POST
# .../parameter-group` to its job `succeeded`, against the bare `ALTER SYSTEM` +
# `pg_reload_conf()` on the same three servers (psql over their sockets, one after the other),
# in the same run. Target: Berth within 2 s of bare. Run from the repository root as root:
# `bash bench/params.sh`. Figures: bench/STORE-FEATURES.md.
#
# Environment:
#   REPEATS     measurements of each side, alternating; medians are reported (default 5)
#   NODE_PORTS  ports Berth hands to store nodes (default 25600-25619)
#   QUIET_WAIT  seconds to wait for a quiet second before each measurement (default 60)
set -euo pipefail
trap 'echo "bench/params.sh: line $LINENO failed" >&2' ERR

REPEATS=${REPEATS:-5}
NODE_PORTS=${NODE_PORTS:-25600-25619}
QUIET_WAIT=${QUIET_WAIT:-60}

cd "$(dirname "$0")/.."
BENCH_NAME=params
# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "== a 3-node store"
api POST /stores -H 'Content-Type: application/json' --data \
    '{"name":"params-bench","vendor":"postgres","version":"15","instance_size":"tiny","volume_size":10,
      "nodes":3,"cloud":"local","region":"local-1"}' >"$WORK/store.json"
STORE=$(jq -r '.store.id' "$WORK/store.json")
[[ $STORE != null ]] || { echo "creating the store: $(cat "$WORK/store.json")" >&2; exit 1; }
for _ in $(seq 600); do
    [[ $(api GET "/stores/$STORE" | jq -r .status) == available ]] && break
    sleep 0.2
done
[[ $(api GET "/stores/$STORE" | jq -r .status) == available ]] || { echo "the store did not come up" >&2; exit 1; }

# Two groups that differ in one reload-only parameter; applying them in turn is a change each time.
# Small enough for the tiny size: work_mem × its 50 connections within its 256 MB.
group() {
    api POST /parameter-groups -H 'Content-Type: application/json' --data \
        "{\"name\":\"bench-$1\",\"vendor\":\"postgres\",\"version\":\"15\",\"parameters\":{\"work_mem\":\"$1\"}}" |
        jq -r .id
}
PGROUPS=("$(group 3MB)" "$(group 4MB)")
VALUES=(3MB 4MB)

# Each node's socket folder and port, from its berth.conf (Berth's superuser `berth` is trusted
# there).
mapfile -t SOCKETS < <(for conf in "$WORK"/data/stores/"$STORE"/*/data/berth.conf; do
    sed -n "s/^unix_socket_directories = '\(.*\)'$/\1/p; s/^port = '\{0,1\}\([0-9]*\)'\{0,1\}$/\1/p" "$conf" |
        paste -sd' '
done)
((${#SOCKETS[@]} == 3)) || { echo "expected 3 nodes, found ${#SOCKETS[@]}" >&2; exit 1; }

berth_apply() {
    local group=$1 t0 t1 job status
    wait_quiet
    t0=$(now)
    job=$(api POST "/stores/$STORE/parameter-group" -H 'Content-Type: application/json' \
        --data "{\"group_id\":\"$group\"}" | jq -r .id)
    [[ $job != null ]] || { echo "applying the group failed" >&2; return 1; }
    while :; do
        status=$(curl -sS -H "Cookie: __Host-berth_session=$COOKIE" "$BERTH/api/v1/orgs/$ORG/jobs/$job" | jq -r .status)
        [[ $status == succeeded ]] && break
        [[ $status == failed ]] && { echo "job $job failed" >&2; return 1; }
        sleep 0.01
    done
    t1=$(now)
    elapsed "$t0" "$t1"
}

bare_apply() {
    local value=$1 t0 t1 socket port
    wait_quiet
    t0=$(now)
    for s in "${SOCKETS[@]}"; do
        read -r socket port <<<"$s"
        as_pg psql -X -q -h "$socket" -p "$port" -U berth -d postgres \
            -c "alter system set work_mem = '$value'" -c "select pg_reload_conf()" >/dev/null
    done
    t1=$(now)
    elapsed "$t0" "$t1"
}

BERTH_RUNS=() BARE_RUNS=()
for run in $(seq "$REPEATS"); do
    i=$((run % 2))
    b=$(berth_apply "${PGROUPS[$i]}")
    p=$(bare_apply "${VALUES[$((1 - i))]}")
    BERTH_RUNS+=("$b") BARE_RUNS+=("$p")
    printf '== run %d: berth %.3f s, bare %.3f s\n' "$run" "$b" "$p"
done
# Berth's own last apply is what the nodes hold now; the bare runs changed it behind its back.
berth_apply "${PGROUPS[0]}" >/dev/null

B=$(median "${BERTH_RUNS[@]}")
P=$(median "${BARE_RUNS[@]}")
D=$(awk -v b="$B" -v p="$P" 'BEGIN { printf "%.3f", b - p }')
echo
echo "== results: $(date -u +%Y-%m-%d), $(nproc) cores, median of $REPEATS"
echo "| apply work_mem to 3 nodes | seconds |"
echo "| --- | ---: |"
echo "| Berth (POST to job succeeded) | $B |"
echo "| bare ALTER SYSTEM + pg_reload_conf() x 3 | $P |"
echo "| difference (target <= 2 s) | $D ($(verdict "$D" 2)) |"
