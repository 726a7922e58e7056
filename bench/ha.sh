#!/usr/bin/env bash
# High availability on a 3-node `tiny` store (issue 17): the write unavailability a client on the
# multi-host URI sees during a switchover; the time from a SIGKILL of the primary's postmaster to
# the first write through that URI, beside its floor (the monitor's detection window plus a bare
# `pg_promote` on a bare primary + replica made in the same run); committed transactions lost
# when the primary is killed under pgbench, in synchronous mode `any_1` and asynchronous (`off`);
# and the write throughput of each synchronous mode against `off`. Run from the repository root,
# as root: `bash bench/ha.sh`. See bench/HA.md for what the figures mean.
#
# Environment:
#   SWITCHOVERS     switchovers measured, alternating candidates; the median is reported (default 5)
#   FAILOVERS       failovers measured, and bare promotions of the floor (default 3)
#   FAILOVER_DELAY  the store's `failover_delay`, seconds, set with PATCH (default 1)
#   PROBE_INTERVAL  the failover monitor's probe interval, seconds, given to Berth as
#                   BERTH_HA_PROBE_INTERVAL (default 1, Berth's default)
#   TPS_ROUNDS      rounds of the throughput runs, each mode once per round (default 3)
#   TPS_DURATION    seconds of each pgbench throughput run (default 20)
#   CLIENTS         pgbench clients, 2 threads (default 4)
#   NODE_PORTS      ports Berth hands to store nodes (default 25600-25619)
#   BARE_PORT       first of the two ports of the bare pair (default 25640)
#   QUIET_WAIT      seconds to wait, before each timed run, for a second in which the machine is
#                   under 10 % busy (default 120; 0 does not wait)
set -euo pipefail
trap 'echo "bench/ha.sh: line $LINENO failed" >&2' ERR

SWITCHOVERS=${SWITCHOVERS:-5}
FAILOVERS=${FAILOVERS:-3}
FAILOVER_DELAY=${FAILOVER_DELAY:-1}
PROBE_INTERVAL=${PROBE_INTERVAL:-1}
TPS_ROUNDS=${TPS_ROUNDS:-3}
TPS_DURATION=${TPS_DURATION:-20}
CLIENTS=${CLIENTS:-4}
NODE_PORTS=${NODE_PORTS:-25600-25619}
BARE_PORT=${BARE_PORT:-25640}
QUIET_WAIT=${QUIET_WAIT:-120}
PG_USER=postgres
# What Berth's `tiny` size writes into a node's configuration; the bare nodes get the same.
SHARED_BUFFERS=64MB
MAX_CONNECTIONS=50
export BERTH_HA_PROBE_INTERVAL=${PROBE_INTERVAL}s
# The primary is killed FAILOVERS + 2 times within the hour: past Berth's default of 3 automatic
# failovers an hour, a store's HA is paused for a person to look at.
export BERTH_HA_MAX_FAILOVERS=$((FAILOVERS + 2))

cd "$(dirname "$0")/.."

BENCH_NAME=ha
# shellcheck source=bench/lib.sh
source bench/lib.sh
command -v pgbench >/dev/null || { echo "the benchmark needs pgbench" >&2; exit 1; }

# jq: an RFC 3339 timestamp with fractional seconds, as seconds since the epoch.
JQ_TS='def ts: capture("^(?<s>[^.Z]+)(?<f>\\.[0-9]+)?Z$") | (.s + "Z" | fromdateiso8601)
                + ("0" + (.f // ".0") | tonumber);'

# The job $1, polled every 100 ms until it succeeds (it fails the benchmark if it does not).
wait_job() {
    local job=$1 status deadline=$((SECONDS + 300))
    while :; do
        status=$(api GET "/jobs/$job" | jq -r '.status')
        [[ $status == succeeded ]] && return 0
        if [[ $status == failed || $status == cancelled ]] || ((SECONDS > deadline)); then
            echo "job $job is $status:" >&2
            api GET "/jobs/$job" >&2
            return 1
        fi
        sleep 0.1
    done
}

# Waits until the store is available, its HA healthy, and every node, probed since this call
# began, is unfenced, with every replica streaming: the state a measurement starts from.
wait_settled() {
    local since deadline=$((SECONDS + 300))
    since=$(now)
    while :; do
        if [[ $(api GET "/stores/$STORE" | jq -r '.status') == available ]] &&
            api GET "/stores/$STORE/topology" | jq -e --argjson since "$since" "$JQ_TS"'
                .phase == "healthy" and .primary_node_id != null and (.nodes | length == 3)
                and all(.nodes[]; .fenced == false and .last_check != null
                        and (.last_check | ts) > $since
                        and (.role == "primary" or .streaming == true))' >/dev/null; then
            return 0
        fi
        if ((SECONDS > deadline)); then
            echo "the store did not settle within 300 s:" >&2
            api GET "/stores/$STORE/topology" >&2
            return 1
        fi
        sleep 0.2
    done
}

primary_id() { api GET "/stores/$STORE/topology" | jq -r '.primary_node_id'; }
node_port() { api GET "/stores/$STORE/topology" | jq -r --arg n "$1" '.nodes[] | select(.id == $n) | .port'; }

# Changes the store's HA settings to the JSON object $1 and waits for the job that applies them,
# if one does.
patch_ha() {
    local out code job
    out=$(api PATCH "/stores/$STORE" -H 'Content-Type: application/json' --data "{\"ha\": $1}" \
        -w '\n%{http_code}')
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    case $code in
    200) ;;
    202)
        job=$(jq -r '.job.id' <<<"$out")
        wait_job "$job"
        ;;
    *)
        echo "PATCH ha $1 answered $code: $out" >&2
        return 1
        ;;
    esac
}

# The newest job of kind $1 on the store that is not one of the ids in $2.
new_job_of_kind() {
    api GET "/stores/$STORE/jobs" | jq -r --arg k "$1" --arg seen "$2" \
        '[.items[] | select(.kind == $k and (.id as $i | $seen | contains($i) | not))] | first | .id // empty'
}
jobs_of_kind() { api GET "/stores/$STORE/jobs" | jq -r --arg k "$1" '[.items[] | select(.kind == $k) | .id] | join(" ")'; }

# The log of job $1, each line's time in seconds after $2 (to see where the time went).
job_log() {
    api GET "/jobs/$1" | jq -r --argjson t "$2" "$JQ_TS"'
        def at: ((. | ts) - $t) * 1000 | round / 1000;
        "   \(.created_at | at) queued, \(.started_at | at) started",
        (.log[] | "   \(.at | at) \(.message)")'
}

# Kills the postmaster of node $1 with SIGKILL, as a crash would, and prints when.
kill_postmaster() {
    local pidfile=$WORK/data/stores/$STORE/$1/data/postmaster.pid pid
    pid=$(head -n1 "$pidfile")
    [[ $(readlink "/proc/$pid/cwd") == "$(realpath "$(dirname "$pidfile")")" ]] ||
        { echo "pid $pid is not the postmaster of node $1" >&2; return 1; }
    kill -KILL "$pid"
    now
}

# ---------------------------------------------------------------------------------------------
# The writer: one `psql` per insert through the multi-host URI, as a client that reconnects on
# every error would, until $WORK/writer.stop exists. Each attempt is a line
# "<started> <returned> ok|fail <i>" in the log $1.
writer() {
    local log=$1 i=0 t0 r
    : >"$log"
    while [[ ! -e $WORK/writer.stop ]]; do
        i=$((i + 1))
        t0=$EPOCHREALTIME
        if psql "$URI" -XqAtc "insert into w values ($i)" >/dev/null 2>&1; then r=ok; else r=fail; fi
        echo "$t0 $EPOCHREALTIME $r $i" >>"$log"
    done
}
WRITER_PID=""
start_writer() {
    rm -f "$WORK/writer.stop"
    writer "$1" &
    WRITER_PID=$!
    # Until it has written once.
    local deadline=$((SECONDS + 30))
    until grep -q ' ok ' "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "the writer wrote nothing within 30 s" >&2; return 1; }
        sleep 0.05
    done
}
stop_writer() {
    touch "$WORK/writer.stop"
    wait "$WRITER_PID"
    WRITER_PID=""
}

# From the writer's log $1 and a time $2: "<unavailable> <longest gap> <failed writes>
# <attempt>". unavailable: from the start of the first write after $2 that failed to the return
# of the first write after it that succeeded (0 without a failure); longest gap: the longest
# time between two successive acknowledged writes, for the acknowledgements after $2; attempt:
# the mean time of one successful attempt (the measure's resolution).
outage() {
    awk -v from="$2" '
        $3 == "ok" { if (last != "" && $2 > from && $2 - last > gap) gap = $2 - last; last = $2
                     d += $2 - $1; n++ }
        $1 < from { next }
        $3 == "fail" { failed++; if (first == "") first = $1 }
        $3 == "ok" && first != "" && back == "" && $1 > first { back = $2 }
        END { printf "%.3f %.3f %d %.3f\n", (first == "" ? 0 : back - first), gap, failed, d / n }' "$1"
}

# From the writer's log $1 and the kill's time $2: seconds to the return of the first write
# started after $2 that succeeded.
back_after() {
    awk -v from="$2" '$1 > from && $3 == "ok" { printf "%.3f\n", $2 - from; found = 1; exit }
                      END { if (!found) exit 1 }' "$1"
}

# ---------------------------------------------------------------------------------------------
# The floor's `pg_promote`: a bare primary and a streaming replica made as the local driver makes
# them (initdb, pg_basebackup -R -X stream -c fast, the `tiny` settings, wal_log_hints and
# wal_level as Berth's nodes), the primary's postmaster killed with SIGKILL, then on the replica
# `select pg_promote()` (which waits for the promotion) and a first insert. One script run as the
# postgres user; it prints the time taken from just before pg_promote to the insert's return.
BARE=$WORK/bare
mkdir -m 700 "$BARE"
chown "$PG_USER:" "$BARE"
for p in $BARE_PORT $((BARE_PORT + 1)); do
    port_free "$p" || { echo "port $p is taken; set BARE_PORT" >&2; exit 1; }
done
cat >"$WORK/bare.sh" <<'SCRIPT'
set -euo pipefail
dir=$1 port=$2 shared_buffers=$3 max_connections=$4
configure() {
    mkdir -m 700 "$1.run"
    cat >>"$1/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $2
unix_socket_directories = '$1.run'
shared_buffers = '$shared_buffers'
max_connections = $max_connections
wal_level = replica
wal_log_hints = on
hot_standby = on
CONF
}
initdb -D "$dir/n0" -U x --auth=trust -E UTF8 --no-locale >/dev/null
configure "$dir/n0" "$port"
pg_ctl start -w -s -D "$dir/n0" -l "$dir/n0.log"
psql -h 127.0.0.1 -p "$port" -U x -d postgres -XqAtc 'create table w (i bigint)'
pg_basebackup -h 127.0.0.1 -p "$port" -U x -D "$dir/n1" -R -X stream -c fast
configure "$dir/n1" $((port + 1))
pg_ctl start -w -s -D "$dir/n1" -l "$dir/n1.log"
replica=(psql -h 127.0.0.1 -p $((port + 1)) -U x -d postgres -XqAt)
until [[ $("${replica[@]}" -c 'select status from pg_stat_wal_receiver') == streaming ]]; do sleep 0.05; done
kill -KILL "$(head -n1 "$dir/n0/postmaster.pid")"
t0=$EPOCHREALTIME
"${replica[@]}" -c 'select pg_promote()' >/dev/null
until "${replica[@]}" -c 'insert into w values (1)' 2>/dev/null; do :; done
t1=$EPOCHREALTIME
pg_ctl stop -D "$dir/n1" -m fast -s -w
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
SCRIPT
chmod 644 "$WORK/bare.sh"

bare_promote() {
    rm -rf "${BARE:?}"/*
    wait_quiet
    as_pg env PATH="$PATH" bash "$WORK/bare.sh" "$BARE" "$BARE_PORT" "$SHARED_BUFFERS" "$MAX_CONNECTIONS"
}

declare -a PROMOTE
for run in $(seq "$FAILOVERS"); do
    PROMOTE+=("$(bare_promote)")
    echo "== bare pg_promote $run: ${PROMOTE[-1]} s (kill of the primary, promote, first insert)"
done

# ---------------------------------------------------------------------------------------------
echo "== creating a 3-node tiny store"
body=$(jq -nc --arg name "bench-ha-$RANDOM" \
    '{name: $name, vendor: "postgres", version: "15", instance_size: "tiny", volume_size: 10,
      nodes: 3, cloud: "local", region: "local-1"}')
api POST /stores -H 'Content-Type: application/json' --data "$body" >"$WORK/post.json"
STORE=$(jq -r '.store.id' "$WORK/post.json")
[[ $STORE != null ]] || { echo "POST /stores: $(cat "$WORK/post.json")" >&2; exit 1; }
wait_job "$(jq -r '.job.id' "$WORK/post.json")"
export PGPASSWORD
PGPASSWORD=$(jq -r '.credentials.password' "$WORK/post.json")
export PGCONNECT_TIMEOUT=1
URI=$(api GET "/stores/$STORE" | jq -r '.connection.multi_host_uri')
DB_USER=${URI#*://}
DB_USER=${DB_USER%%@*}
DB_NAME=${URI##*/}
DB_NAME=${DB_NAME%%\?*}
echo "   $STORE, $URI"
patch_ha "{\"failover_delay\": $FAILOVER_DELAY, \"synchronous\": \"off\"}"
psql "$URI" -XqAtc 'create table w (i bigint)'
wait_settled
mapfile -t NODES < <(api GET "/stores/$STORE/topology" | jq -r '.nodes[].id' | sort)

# ---------------------------------------------------------------------------------------------
# 1. Switchovers, each to the node after the current primary in a fixed order, so that every
#    node takes its turn.
declare -a SW_UNAVAIL SW_GAP SW_JOB SW_OTHERS
for run in $(seq "$SWITCHOVERS"); do
    wait_settled
    from=$(primary_id)
    for i in "${!NODES[@]}"; do [[ ${NODES[$i]} == "$from" ]] && to=${NODES[$(((i + 1) % 3))]}; done
    wait_quiet
    start_writer "$WORK/sw$run.log"
    sleep 1
    k0=$(ticks)
    t0=$(now)
    job=$(api POST "/stores/$STORE/switchover" -H 'Content-Type: application/json' \
        --data "{\"candidate_node_id\": \"$to\"}" | jq -r '.id')
    [[ $job != null ]] || { echo "switchover refused" >&2; exit 1; }
    wait_job "$job"
    sleep 2
    stop_writer
    k1=$(ticks)
    [[ $(primary_id) == "$to" ]] || { echo "after switchover $run the primary is not $to" >&2; exit 1; }
    read -r unavail gap failed attempt < <(outage "$WORK/sw$run.log" "$t0")
    took=$(api GET "/jobs/$job" | jq -r "$JQ_TS"' (.finished_at | ts) - (.created_at | ts) | . * 1000 | round / 1000')
    SW_UNAVAIL+=("$unavail")
    SW_GAP+=("$gap")
    SW_JOB+=("$took")
    SW_OTHERS+=("$(others_pct "$k0" "$k1")")
    job_log "$job" "$t0"
    echo "== switchover $run: unavailable $unavail s ($failed failed writes; longest gap between acknowledged writes $gap s; a write takes $attempt s; job $took s; other ${SW_OTHERS[-1]} %)"
done

# ---------------------------------------------------------------------------------------------
# 2. Failovers: the primary's postmaster killed; the monitor notices, a failover job promotes the
#    most advanced replica and the old primary rejoins as a replica before the next run.
declare -a FO_BACK FO_JOB FO_OTHERS
for run in $(seq "$FAILOVERS"); do
    wait_settled
    seen=$(jobs_of_kind failover)
    old=$(primary_id)
    wait_quiet
    start_writer "$WORK/fo$run.log"
    sleep 1
    k0=$(ticks)
    tk=$(kill_postmaster "$old")
    deadline=$((SECONDS + 120))
    until back=$(back_after "$WORK/fo$run.log" "$tk"); do
        if ((SECONDS > deadline)); then
            echo "no write succeeded within 120 s of the kill; topology and jobs:" >&2
            api GET "/stores/$STORE/topology" >&2
            api GET "/stores/$STORE/jobs" >&2
            exit 1
        fi
        sleep 0.1
    done
    k1=$(ticks)
    stop_writer
    job=$(new_job_of_kind failover "$seen")
    [[ -n $job ]] || { echo "a write succeeded after the kill, but no failover job is there" >&2; exit 1; }
    wait_job "$job"
    # When the monitor queued it, after the kill.
    queued=$(api GET "/jobs/$job" | jq -r --argjson tk "$tk" "$JQ_TS"' (.created_at | ts) - $tk | . * 1000 | round / 1000')
    FO_BACK+=("$back")
    FO_JOB+=("$queued")
    FO_OTHERS+=("$(others_pct "$k0" "$k1")")
    job_log "$job" "$tk"
    echo "== failover $run: first write $back s after the kill (failover job queued $queued s after it; other ${FO_OTHERS[-1]} %)"
done
wait_settled

# ---------------------------------------------------------------------------------------------
# pgbench: one insert of an increasing id per transaction.
echo 'insert into t default values;' >"$WORK/insert.sql"
chmod 644 "$WORK/insert.sql"
bench_primary() { # <seconds> <output file>
    local port
    port=$(node_port "$(primary_id)")
    pgbench -n -c "$CLIENTS" -j 2 -T "$1" -f "$WORK/insert.sql" -h 127.0.0.1 -p "$port" \
        -U "$DB_USER" "$DB_NAME" >"$2" 2>"$2.err"
}
processed() { sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1"; }
fresh_table() {
    psql "$URI" -XqAtc 'set client_min_messages = warning' -c 'drop table if exists t' \
        -c 'create table t (id bigserial primary key)'
}

# 3. Throughput of each synchronous mode, the modes in turn within each round.
declare -A TPS
declare -a WAL_PER_TX
for round in $(seq "$TPS_ROUNDS"); do
    for mode in off any_1 quorum; do
        patch_ha "{\"synchronous\": \"$mode\"}"
        wait_settled
        fresh_table
        names=$(psql "$URI" -XqAtc 'show synchronous_standby_names')
        lsn0=$(psql "$URI" -XqAtc 'select pg_current_wal_lsn()')
        wait_quiet
        k0=$(ticks)
        bench_primary "$TPS_DURATION" "$WORK/tps.out"
        k1=$(ticks)
        tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$WORK/tps.out" |
            awk '{ printf "%.0f", $1 }')
        wal=$(psql "$URI" -XqAtc "select round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0') / $(processed "$WORK/tps.out"))")
        [[ $mode == off ]] && WAL_PER_TX+=("$wal")
        TPS[$mode]+="$tps "
        echo "== throughput round $round, $mode (synchronous_standby_names '$names'): $tps tps, $wal bytes of WAL per transaction (other $(others_pct "$k0" "$k1") %)"
    done
done

# ---------------------------------------------------------------------------------------------
# 4. Commits lost when the primary is killed under pgbench: acknowledged (pgbench's processed
#    transactions) minus rows on the new primary.
declare -A LOST
for mode in any_1 off; do
    patch_ha "{\"synchronous\": \"$mode\"}"
    wait_settled
    fresh_table
    seen=$(jobs_of_kind failover)
    old=$(primary_id)
    wait_quiet
    bench_primary 60 "$WORK/kill-$mode.out" &
    bench=$!
    sleep 5
    api GET "/stores/$STORE/topology" >"$WORK/before-kill.json"
    kill_postmaster "$old" >/dev/null
    wait "$bench" || true # pgbench exits with 2 when its clients are cut off
    acked=$(processed "$WORK/kill-$mode.out")
    [[ -n $acked ]] || { echo "pgbench printed no count: $(cat "$WORK/kill-$mode.out.err")" >&2; exit 1; }
    deadline=$((SECONDS + 120))
    until have=$(psql "$URI" -XqAtc 'select count(*) from t' 2>/dev/null) &&
        psql "$URI" -XqAtc 'insert into w values (0)' 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "no new primary within 120 s" >&2; exit 1; }
        sleep 0.1
    done
    job=$(new_job_of_kind failover "$seen")
    [[ -n $job ]] || { echo "no failover job after the kill" >&2; exit 1; }
    wait_job "$job"
    new=$(primary_id)
    lag=$(jq -r --arg n "$new" '.nodes[] | select(.id == $n) | .lag_bytes // "null"' "$WORK/before-kill.json")
    lags=$(jq -r '[.nodes[] | select(.role == "replica") | .lag_bytes // "null"] | join("/")' "$WORK/before-kill.json")
    est=$(api GET "/stores/$STORE/history" |
        jq -r --arg j "$job" '.items[] | select(.job_id == $j) | .estimated_bytes_lost // "null"')
    lost=$((acked > have ? acked - have : 0))
    LOST[$mode]="$acked $have $lost $lag $est $lags"
    echo "== kill under pgbench, $mode: $acked acknowledged, $have on the new primary, $lost lost; lag of the promoted node before the kill $lag bytes (replicas: $lags), estimated_bytes_lost $est"
    wait_settled
done

# ---------------------------------------------------------------------------------------------
floor_promote=$(median "${PROMOTE[@]}")
# The monitor fails over on the probe at which the primary has failed at least 3 probes in a row
# and for at least failover_delay: at the soonest, when the first failed probe comes right after
# the kill, max(failover_delay, 2 probe intervals) after it (one interval later at the latest).
window=$(awk -v d="$FAILOVER_DELAY" -v i="$PROBE_INTERVAL" 'BEGIN { w = 2 * i; if (d > w) w = d; printf "%.3f", w }')
floor=$(awk -v w="$window" -v p="$floor_promote" 'BEGIN { printf "%.3f", w + p }')
sw=$(median "${SW_UNAVAIL[@]}")
fo=$(median "${FO_BACK[@]}")
fo_target=$(awk -v f="$floor" 'BEGIN { printf "%.3f", f + 2 }')
read -ra off_runs <<<"${TPS[off]}"
off_tps=$(median "${off_runs[@]}")

echo
echo "== results: $(date -u +%Y-%m-%d), $(nproc) cores, PostgreSQL $(postgres --version | awk '{ print $3 }'), probe interval $PROBE_INTERVAL s, failover_delay $FAILOVER_DELAY s"
echo
row() { printf '| %-44s | %9s | %-24s | %-7s |\n' "$@"; }
row "measure" "value (s)" "target" "verdict"
row "---" "---:" "---" "---"
row "switchover: write unavailability, median of $SWITCHOVERS" "$sw" "<= 2" "$(verdict "$sw" 2)"
row "failover: kill to first write, median of $FAILOVERS" "$fo" "<= floor + 2 = $fo_target" "$(verdict "$fo" "$fo_target")"
row "floor: detection window + bare pg_promote" "$floor" "" ""
echo
echo "switchovers, unavailable (s): ${SW_UNAVAIL[*]}; longest gap between acknowledged writes (s): ${SW_GAP[*]}; job (s): ${SW_JOB[*]}; other %: ${SW_OTHERS[*]}"
echo "failovers, kill to first write (s): ${FO_BACK[*]}; failover job queued after the kill (s): ${FO_JOB[*]}; other %: ${FO_OTHERS[*]}"
echo "floor: detection window max($FAILOVER_DELAY, 2 x $PROBE_INTERVAL) = $window s (up to $PROBE_INTERVAL s more, by the probes' phase); bare pg_promote to first insert (s): ${PROMOTE[*]} (median $floor_promote)"
echo
row2() { printf '| %-8s | %9s | %-28s | %9s | %-7s | %-16s |\n' "$@"; }
row2 "mode" "tps" "of the rounds" "vs off" "target" "WAL per tx"
row2 "---" "---:" "---" "---:" "---" "---:"
for mode in off any_1 quorum; do
    read -ra runs <<<"${TPS[$mode]}"
    m=$(median "${runs[@]}")
    row2 "$mode" "$m" "${TPS[$mode]}" "$(ratio "$m" "$off_tps")" "report" \
        "$([[ $mode == off ]] && median "${WAL_PER_TX[@]}" || echo "")"
done
echo
row3() { printf '| %-6s | %12s | %8s | %5s | %10s | %20s | %-13s | %-7s |\n' "$@"; }
row3 "mode" "acknowledged" "present" "lost" "lag before" "estimated_bytes_lost" "target" "verdict"
row3 "---" "---:" "---:" "---:" "---:" "---:" "---" "---"
read -r acked have lost lag est _ <<<"${LOST[any_1]}"
row3 "any_1" "$acked" "$have" "$lost" "$lag" "$est" "0 lost" "$( ((lost == 0)) && echo met || echo MISSED)"
read -r acked have lost lag est _ <<<"${LOST[off]}"
lost_bytes=$((lost * $(median "${WAL_PER_TX[@]}")))
row3 "off" "$acked" "$have" "$lost" "$lag" "$est" "<= lag before" \
    "$( ( ((lost == 0)) || { [[ $lag != null ]] && ((lost_bytes <= lag)); }) && echo met || echo MISSED)"
echo
echo "off: $lost rows lost x $(median "${WAL_PER_TX[@]}") bytes of WAL per transaction = about $lost_bytes bytes"
