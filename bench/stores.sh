#!/usr/bin/env bash
# Time from `POST .../stores` to `available` for a 1-node and a 3-node store, against bare
# `initdb` + `pg_ctl start -w` (+ `pg_basebackup` + `pg_ctl start -w` per replica) on the same
# machine in the same run. Run from the repository root: `bash bench/stores.sh`.
# See bench/STORES.md for what the figures mean.
#
# Environment:
#   REPEATS     runs of each case; the median is reported (default 3)
#   NODE_PORTS  ports Berth hands to store nodes (default 25500-25519)
#   BARE_PORT   first of the three ports of the bare baseline (default 25540)
#   QUIET_WAIT  seconds to wait, before each timed run, for a second in which the machine is
#               under 10 % busy (default 120; 0 does not wait). Both sides wait alike.
set -euo pipefail
trap 'echo "bench/stores.sh: line $LINENO failed" >&2' ERR

REPEATS=${REPEATS:-3}
NODE_PORTS=${NODE_PORTS:-25500-25519}
BARE_PORT=${BARE_PORT:-25540}
QUIET_WAIT=${QUIET_WAIT:-120}
PG_USER=postgres
# What Berth's `tiny` size writes into a node's configuration; the bare nodes get the same.
SHARED_BUFFERS=64MB
MAX_CONNECTIONS=50

cd "$(dirname "$0")/.."

BENCH_NAME=stores
# shellcheck source=bench/lib.sh
source bench/lib.sh

# jq: an RFC 3339 timestamp with fractional seconds, as seconds since the epoch.
JQ_TS='def ts: capture("^(?<s>[^.Z]+)(?<f>\\.[0-9]+)?Z$") | (.s + "Z" | fromdateiso8601)
                + ("0" + (.f // ".0") | tonumber);'

# When the server whose log is $1 said it was ready to accept connections, in seconds since the
# epoch (the log's default prefix has milliseconds).
ready_at() {
    local at
    at=$(sed -n 's/^\([0-9-]* [0-9:.]* [A-Z]*\) .*database system is ready to accept connections.*/\1/p' "$1" |
        head -n1)
    [[ -n $at ]] || { echo "no 'ready to accept connections' in $1" >&2; return 1; }
    date -d "$at" +%s.%N
}

# Creates a store of $1 nodes and waits for `available`, polling every 50 ms. Prints
# "<seconds> <other %> <queue wait> <primary up> <after ready> <replicas> <finish> <seen after>"
# (see bench/STORES.md), then deletes the store and waits until it is gone.
create_store() {
    local nodes=$1 run=$2 t0 t1 k0 k1 body id job primary ready status=""
    body=$(jq -nc --arg name "bench-$nodes-$run-$RANDOM" --argjson n "$nodes" \
        '{name: $name, vendor: "postgres", version: "15", instance_size: "tiny", volume_size: 10,
          nodes: $n, cloud: "local", region: "local-1"}')
    wait_quiet
    k0=$(ticks)
    t0=$(now)
    api POST /stores -H 'Content-Type: application/json' --data "$body" >"$WORK/post.json"
    id=$(jq -r '.store.id' "$WORK/post.json")
    job=$(jq -r '.job.id' "$WORK/post.json")
    [[ $id != null ]] || { echo "POST /stores: $(cat "$WORK/post.json")" >&2; return 1; }
    local deadline=$((SECONDS + 300))
    while :; do
        status=$(api GET "/stores/$id" | jq -r '.status')
        [[ $status == available ]] && break
        if [[ $status == failed || $status == degraded ]] || ((SECONDS > deadline)); then
            echo "store $id is $status; its job:" >&2
            api GET "/jobs/$job" >&2
            return 1
        fi
        sleep 0.05
    done
    t1=$(now)
    k1=$(ticks)
    # Where the time went, from the job's timestamps and log and the primary's server log (one
    # clock: this machine's).
    api GET "/jobs/$job" >"$WORK/job.json"
    primary=$(jq -r '.steps[0].name | sub("^create_primary:"; "")' "$WORK/job.json")
    ready=$(ready_at "$WORK/data/stores/$id/$primary/server.log")
    jq -r --argjson t0 "$t0" --argjson t1 "$t1" --argjson ready "$ready" \
        --argjson others "$(others_pct "$k0" "$k1")" "$JQ_TS"'
        [.log[] | select(.message | test("^step |^succeeded$")) | (.at | ts)] as $at
        | ($at | length) as $n
        | [ ($t1 - $t0), $others,
            ((.started_at | ts) - (.created_at | ts)),
            ($ready - $at[0]),
            ($at[1] - $ready),
            (if $n > 3 then $at[$n - 2] - $at[1] else 0 end),
            ($at[$n - 1] - $at[$n - 2]),
            ($t1 - (.finished_at | ts)) ]
        | map(. * 1000 | round / 1000) | @tsv' "$WORK/job.json"
    api DELETE "/stores/$id" -o /dev/null
    deadline=$((SECONDS + 120))
    while [[ $(api GET "/stores/$id" -o /dev/null -w '%{http_code}') != 404 ]]; do
        ((SECONDS < deadline)) || { echo "store $id was not deleted within 120 s" >&2; return 1; }
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------------------------
# The bare baseline: the commands alone, in one script run as the postgres user, with the
# options Berth's local driver uses: initdb -E UTF8 --no-locale with fsync (src/pg/server.rs),
# pg_basebackup -R -X stream -c fast with fsync (src/provision/local/mod.rs), the nodes one after
# the other, the settings of the `tiny` size. It prints a timestamp after each stage.
BARE=$WORK/bare
mkdir -m 700 "$BARE"
chown "$PG_USER:" "$BARE"
for p in $BARE_PORT $((BARE_PORT + 1)) $((BARE_PORT + 2)); do
    port_free "$p" || { echo "port $p is taken; set BARE_PORT" >&2; exit 1; }
done
cat >"$WORK/bare.sh" <<'SCRIPT'
set -euo pipefail
nodes=$1 dir=$2 port=$3 shared_buffers=$4 max_connections=$5
configure() {
    mkdir -m 700 "$1.run"
    cat >>"$1/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $2
unix_socket_directories = '$1.run'
shared_buffers = '$shared_buffers'
max_connections = $max_connections
CONF
}
echo "$EPOCHREALTIME"
initdb -D "$dir/n0" -U x --auth=trust -E UTF8 --no-locale >/dev/null
configure "$dir/n0" "$port"
pg_ctl start -w -s -D "$dir/n0" -l "$dir/n0.log"
echo "$EPOCHREALTIME"
for ((i = 1; i < nodes; i++)); do
    pg_basebackup -h 127.0.0.1 -p "$port" -U x -D "$dir/n$i" -R -X stream -c fast
    configure "$dir/n$i" $((port + i))
    pg_ctl start -w -s -D "$dir/n$i" -l "$dir/n$i.log"
done
echo "$EPOCHREALTIME"
SCRIPT
chmod 644 "$WORK/bare.sh"

# Brings up $1 nodes, a primary and $1 - 1 streaming replicas, stops them, and prints
# "<seconds> <other %> <primary up> <after ready> <replicas>".
bare_store() {
    local nodes=$1 k0 k1 t i ready
    rm -rf "${BARE:?}"/*
    wait_quiet
    k0=$(ticks)
    mapfile -t t < <(as_pg env PATH="$PATH" bash "$WORK/bare.sh" "$nodes" "$BARE" "$BARE_PORT" \
        "$SHARED_BUFFERS" "$MAX_CONNECTIONS")
    k1=$(ticks)
    ((${#t[@]} == 3)) || { echo "the bare baseline failed" >&2; return 1; }
    for ((i = nodes - 1; i >= 0; i--)); do
        as_pg pg_ctl stop -D "$BARE/n$i" -m fast -s -w
    done
    ready=$(ready_at "$BARE/n0.log")
    awk -v t0="${t[0]}" -v tp="${t[1]}" -v t1="${t[2]}" -v r="$ready" -v o="$(others_pct "$k0" "$k1")" \
        'BEGIN { printf "%.3f %s %.3f %.3f %.3f\n", t1 - t0, o, r - t0, tp - r, t1 - tp }'
}

# ---------------------------------------------------------------------------------------------
# Berth and bare runs alternate, so that a change in what else the machine does during the run
# weighs on both sides alike.
declare -A RUNS
for run in $(seq "$REPEATS"); do
    for nodes in 1 3; do
        out=$(create_store "$nodes" "$run")
        RUNS[berth,$nodes]+="$out"$'\n'
        read -r total others queue up after replicas finish seen <<<"$out"
        printf '== run %d, %d node(s): berth %6.3f s (other %2d %%; queue %.3f, primary up %.3f + %.3f after ready, replicas %.3f, finish %.3f, seen %.3f later)\n' \
            "$run" "$nodes" "$total" "$others" "$queue" "$up" "$after" "$replicas" "$finish" "$seen"
        out=$(bare_store "$nodes")
        RUNS[bare,$nodes]+="$out"$'\n'
        read -r total others up after replicas <<<"$out"
        printf '== run %d, %d node(s): bare  %6.3f s (other %2d %%; primary up %.3f + %.3f after ready, replicas %.3f)\n' \
            "$run" "$nodes" "$total" "$others" "$up" "$after" "$replicas"
    done
done

# The median of column $2 of the runs of $1.
col() { median $(printf '%s' "${RUNS[$1]}" | awk -v c="$2" 'NF { print $c }'); }

row() { printf '| %-8s | %9s | %8s | %5s | %6s | %-7s | %7s | %6s |\n' "$@"; }
echo
echo "== results: $(date -u +%Y-%m-%d), $(nproc) cores, PostgreSQL $(postgres --version | awk '{ print $3 }'), median of $REPEATS"
echo
row "store" "berth (s)" "bare (s)" "ratio" "target" "verdict" "other %" "(bare)"
row "---" "---:" "---:" "---:" "---:" "---" "---:" "---:"
for nodes in 1 3; do
    target=$([[ $nodes == 1 ]] && echo 1.5 || echo 2.0)
    b=$(col "berth,$nodes" 1)
    p=$(col "bare,$nodes" 1)
    r=$(ratio "$b" "$p")
    row "$nodes node" "$b" "$p" "$r" "<= $target" "$(verdict "$r" "$target")" \
        "$(col "berth,$nodes" 2)" "$(col "bare,$nodes" 2)"
done
echo
echo "Where the time went, in seconds (median of each part on its own, so they need not add up):"
part() { printf '| %-8s | %5s | %10s | %11s | %8s | %6s | %5s |\n' "$@"; }
part "" "queue" "primary up" "after ready" "replicas" "finish" "seen"
part "---" "---:" "---:" "---:" "---:" "---:" "---:"
for nodes in 1 3; do
    part "berth, $nodes" "$(col "berth,$nodes" 3)" "$(col "berth,$nodes" 4)" "$(col "berth,$nodes" 5)" \
        "$(col "berth,$nodes" 6)" "$(col "berth,$nodes" 7)" "$(col "berth,$nodes" 8)"
    part "bare, $nodes" "" "$(col "bare,$nodes" 3)" "$(col "bare,$nodes" 4)" "$(col "bare,$nodes" 5)" "" ""
done
echo
echo "after ready: from the primary's 'ready to accept connections' to the end of its step: for"
echo "Berth, pg_ctl noticing (it polls every 100 ms), connecting, roles and database; for bare,"
echo "pg_ctl noticing only."
echo "other %: share of the machine that processes outside the benchmark used during the run."
if printf '%s' "${RUNS[@]}" | awk 'NF && $2 > 10 { bad = 1 } END { exit !bad }'; then
    echo "warning: something else used over 10 % of the machine during some runs; rerun on a" \
        "quiet machine before trusting the ratios" >&2
fi
