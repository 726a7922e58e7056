#!/usr/bin/env bash
# Issue 6: a full backup of a store holding 1 GiB, from `POST .../backups` to `succeeded`, against
# the bare `pg_basebackup` of the same node in the same run; and a restore in place, from
# `POST .../restore` to `available`, against bare untar + `pg_ctl start` + recovery of the same
# archive. Target: both ratios ≤ 1.2. Run from the repository root: `bash bench/backup.sh`.
# See bench/BACKUPS.md for what the figures mean.
#
# Environment:
#   ROUNDS      rounds; each one times all four cases once, the median is reported (default 3)
#   SIZE_MB     data to load, as pg_database_size of the store's database (default 1024)
#   NODE_PORTS  ports Berth hands to store nodes (default 25600-25619)
#   BARE_PORT   port of the bare restore's server (default 25640)
#   QUIET_WAIT  seconds to wait, before each timed run, for a second in which the machine is
#               under 10 % busy (default 60; 0 does not wait). Both sides wait alike.
#   MAX_OTHER   a run during which processes outside the benchmark used more than this share of
#               the machine (%) is discarded and run again (default 10) ...
#   REDO        ... at most this many times per case and round (default 2; 0: keep every run)
#   PG_BIN      PostgreSQL 15 binaries (default /usr/lib/postgresql/15/bin)
#   LOGS        a folder to copy each run's job (JSON) and server logs to, to look into later
set -euo pipefail
trap 'echo "bench/backup.sh: line $LINENO failed" >&2' ERR

ROUNDS=${ROUNDS:-3}
SIZE_MB=${SIZE_MB:-1024}
NODE_PORTS=${NODE_PORTS:-25600-25619}
BARE_PORT=${BARE_PORT:-25640}
QUIET_WAIT=${QUIET_WAIT:-60}
MAX_OTHER=${MAX_OTHER:-10}
REDO=${REDO:-2}
LOGS=${LOGS:-}
PG_USER=${BERTH_PG_USER:-postgres}
# `small`: shared_buffers 256MB, the size a 1 GiB database would be given.
INSTANCE_SIZE=small
# The flags of src/provision/local/mod.rs `base_backup`; the bare side uses the same.
BASEBACKUP_FLAGS=(-F tar -Z 1 -X fetch -c fast)

cd "$(dirname "$0")/.."

for tool in curl jq psql openssl tar; do
    command -v "$tool" >/dev/null || { echo "bench/backup.sh needs $tool" >&2; exit 1; }
done
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export PATH="$PG_BIN:$PATH"

# The binary as it is: this script does not rebuild it (run `cargo build --release --bins` after
# changing src/), it only builds one when there is none.
[[ -z $LOGS ]] || mkdir -p "$LOGS"
if [[ ! -x target/release/berth ]]; then
    echo "== building (release)"
    cargo build --release --bins
fi

WORK=$(mktemp -d /tmp/berth-backup.XXXXXX)
# PostgreSQL runs as its own user when we are root and must traverse this folder.
chmod 711 "$WORK"
BERTH_PID=""

# As root, Berth runs PostgreSQL as $PG_USER, and so does the baseline; as anyone else, both run
# it as that user.
if [[ $(id -u) == 0 ]]; then
    command -v runuser >/dev/null || { echo "bench/backup.sh needs runuser" >&2; exit 1; }
    as_pg() { runuser -u "$PG_USER" -- "$@"; }
else
    as_pg() { "$@"; }
fi

# Every server still running on a data folder under $WORK, stopped without waiting for anything.
stop_leftover_servers() {
    local pidfile dir
    while IFS= read -r pidfile; do
        dir=$(dirname "$pidfile")
        as_pg pg_ctl stop -D "$dir" -m immediate -s -w -t 30 >/dev/null 2>&1 ||
            kill -QUIT "$(head -n1 "$pidfile")" 2>/dev/null || true
    done < <(find "$WORK" -name postmaster.pid 2>/dev/null)
}

cleanup() {
    local status=$?
    set +e
    if ((status != 0)) && [[ -s $WORK/berth.log.err ]]; then
        echo "-- last lines of berth's stderr:" >&2
        tail -n 20 "$WORK/berth.log.err" >&2
    fi
    if [[ -n $BERTH_PID ]] && kill -0 "$BERTH_PID" 2>/dev/null; then
        # SIGTERM: Berth stops its workers and its embedded PostgreSQL before it exits.
        kill -TERM "$BERTH_PID"
        for _ in $(seq 60); do
            kill -0 "$BERTH_PID" 2>/dev/null || break
            sleep 0.5
        done
    fi
    # Store nodes outlive Berth by design (pg_ctl puts them in their own session), as does the
    # bare server of an interrupted restore.
    stop_leftover_servers
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { echo "$EPOCHREALTIME"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "met" : "MISSED" }'; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# CPU ticks, into file $1: "<machine busy> <machine total>", then "<pid> <ticks>" for each of our
# processes: this script's process tree and every process working in a folder under $WORK (Berth's
# PostgreSQL, the store's node, the bare server, which pg_ctl detaches from the tree), with their
# children, reaped ones included.
ticks() {
    local roots
    roots="$$ $BASHPID $({ find /proc -mindepth 2 -maxdepth 2 -name cwd -lname "$WORK/*" 2>/dev/null ||
        true; } | cut -d/ -f3 | tr '\n' ' ')"
    {
        # user nice system idle iowait irq softirq steal (guest time is already in user)
        awk '$1 == "cpu" { busy = $2 + $3 + $4 + $7 + $8 + $9; total = 0; for (i = 2; i <= 9; i++) total += $i
                           print busy, total }' /proc/stat
        # Processes come and go while cat reads them; a vanished one is not an error.
        { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v roots="$roots" '
            { pid = $1; sub(/^.*\) /, ""); ppid[pid] = $2; cpu[pid] = $12 + $13 + $14 + $15 }
            END {
                n = split(roots, r, " "); for (i = 1; i <= n; i++) ours[r[i]] = 1
                do { grew = 0
                     for (p in ppid) if (!(p in ours) && (ppid[p] in ours)) { ours[p] = 1; grew = 1 }
                } while (grew)
                for (p in ours) if (p in cpu) print p, cpu[p]
            }'
    } >"$1"
}
# Waits up to QUIET_WAIT seconds for a second in which the whole machine is under 10 % busy.
wait_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT)) a b
    while ((SECONDS < deadline)); do
        a=$(head -n1 /proc/stat)
        sleep 1
        b=$(head -n1 /proc/stat)
        awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ")
            for (i = 2; i <= 9; i++) { d = y[i] - x[i]; total += d; if (i != 5 && i != 6) busy += d }
            exit !(100 * busy < 10 * total) }' && return 0
    done
    ((QUIET_WAIT == 0)) || echo "   (the machine was not quiet within ${QUIET_WAIT} s; measuring anyway)" >&2
}
# Share of the machine (%) that processes outside the benchmark used between two `ticks` files.
# Ours is the sum, over our processes alive at the end, of what each used since the start (all of
# it if it started since). A server that stopped in between (the node a restore replaces) is not
# counted as ours after its last sample; that errs towards a higher other %.
others_pct() {
    awk 'FNR == 1 { if (NR == 1) { b0 = $1; t0 = $2 } else { b1 = $1; t1 = $2 }; next }
         NR == FNR { c0[$1] = $2; next }
         { d = $2 - (($1 in c0) ? c0[$1] : 0); if (d > 0) ours += d }
         END { o = (b1 - b0) - ours; if (o < 0) o = 0; printf "%.0f", 100 * o / (t1 - t0) }' "$1" "$2"
}
# Copies file $1 to $LOGS as $2.
keep() { [[ -z $LOGS ]] || cp "$1" "$LOGS/$2"; }
# Before every timed run: what the previous one left to write back goes to disk first (untimed),
# then the machine must be quiet.
settle() {
    sync
    wait_quiet
}

# ---------------------------------------------------------------------------------------------
echo "== starting berth (data in $WORK/data, node ports $NODE_PORTS)"
port_free "$BARE_PORT" || { echo "port $BARE_PORT is taken; set BARE_PORT" >&2; exit 1; }
PASSWORD=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
EMAIL=admin@localhost
env -u DATABASE_URL \
    BERTH_DATA_DIR="$WORK/data" BERTH_BACKUP_DIR="$WORK/data/backups" BERTH_LISTEN=127.0.0.1:0 \
    BERTH_NODE_PORTS="$NODE_PORTS" \
    BERTH_ADMIN_EMAIL="$EMAIL" BERTH_ADMIN_PASSWORD="$PASSWORD" \
    target/release/berth >"$WORK/berth.log" 2>"$WORK/berth.log.err" &
BERTH_PID=$!
ADDR=""
for _ in $(seq 240); do
    ADDR=$(sed -n 's|^Berth is listening on http://\([0-9.:]*\).*|\1|p' "$WORK/berth.log" | head -n1)
    [[ -n $ADDR ]] && break
    kill -0 "$BERTH_PID" 2>/dev/null || { echo "berth exited before listening" >&2; exit 1; }
    sleep 0.25
done
[[ -n $ADDR ]] || { echo "berth did not start listening" >&2; exit 1; }
BERTH=http://$ADDR
echo "   $BERTH"

LOGIN=$(curl -sS -D "$WORK/login.headers" -H 'Content-Type: application/json' \
    --data "{\"login\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" "$BERTH/api/auth/login")
COOKIE=$(sed -n 's/^[Ss]et-[Cc]ookie: __Host-berth_session=\([^;]*\).*/\1/p' "$WORK/login.headers" | tr -d '\r')
ORG=$(jq -r '.organizations[0].id' <<<"$LOGIN")
[[ -n $COOKIE && $ORG != null ]] || { echo "login failed: $LOGIN" >&2; exit 1; }

api() {
    local method=$1 path=$2
    shift 2
    curl -sS -H "Cookie: __Host-berth_session=$COOKIE" -X "$method" "$@" "$BERTH/api/v1/orgs/$ORG$path"
}

# jq: an RFC 3339 timestamp with fractional seconds, as seconds since the epoch.
JQ_TS='def ts: capture("^(?<s>[^.Z]+)(?<f>\\.[0-9]+)?Z$") | (.s + "Z" | fromdateiso8601)
                + ("0" + (.f // ".0") | tonumber);'

# When the server whose log is $1 last (or with $4 = first, first) said "$2" (a fixed string),
# counting only the lines after line $3, in seconds since the epoch (the log's default prefix has
# milliseconds).
log_at() {
    local at which=${4:-last}
    at=$(tail -n +"$(($3 + 1))" "$1" | grep -F -- "$2" | { if [[ $which == first ]]; then head -n1; else tail -n1; fi } |
        awk '{ print $1, $2, $3 }')
    [[ -n $at ]] || { echo "no '$2' in $1" >&2; return 1; }
    date -d "$at" +%s.%N
}

# Polls GET $1 every 50 ms until its body holds "status":"$2" (or "status":"failed" or
# "status":"degraded", or 900 s pass). The poll starts no process: it speaks HTTP over bash's
# /dev/tcp and sleeps in `read -t`. With curl and jq every 50 ms, the poll alone took a third of
# a core here, from the very run it was timing (the bare side has no poll to pay).
exec {NAP}<> <(:)
poll() {
    local path=/api/v1/orgs/$ORG$1 want=$2 reply deadline=$((SECONDS + 900)) fd
    while :; do
        reply=""
        exec {fd}<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}"
        printf 'GET %s HTTP/1.1\r\nHost: %s\r\nCookie: __Host-berth_session=%s\r\nConnection: close\r\n\r\n' \
            "$path" "$ADDR" "$COOKIE" >&"$fd"
        IFS= read -r -d '' reply <&"$fd" || true
        exec {fd}<&-
        [[ $reply == HTTP/1.1\ 200* && $reply == *"\"status\":\"$want\""* ]] && return 0
        if [[ $reply != HTTP/1.1\ 200* || $reply == *'"status":"failed"'* || $reply == *'"status":"degraded"'* ]] ||
            ((SECONDS > deadline)); then
            echo "GET $path: ${reply:-no answer}" >&2
            return 1
        fi
        read -r -t 0.05 -u "$NAP" || true
    done
}

# ---------------------------------------------------------------------------------------------
echo "== creating a 1-node store (postgres 15, $INSTANCE_SIZE)"
NAME=bench-backup-$RANDOM
api POST /stores -H 'Content-Type: application/json' --data "$(jq -nc --arg name "$NAME" --arg size "$INSTANCE_SIZE" \
    '{name: $name, vendor: "postgres", version: "15", instance_size: $size, volume_size: 10,
      nodes: 1, cloud: "local", region: "local-1"}')" >"$WORK/store.json"
STORE=$(jq -r '.store.id' "$WORK/store.json")
[[ $STORE != null ]] || { echo "POST /stores: $(cat "$WORK/store.json")" >&2; exit 1; }
poll "/stores/$STORE" available
api GET "/stores/$STORE" >"$WORK/store.json.now"
NODE=$(jq -r '.nodes[0].id' "$WORK/store.json.now")
PORT=$(jq -r '.nodes[0].port' "$WORK/store.json.now")
DB_USER=$(jq -r '.credentials.username' "$WORK/store.json")
DB_NAME=$(jq -r '.credentials.database' "$WORK/store.json")
export PGPASSWORD
PGPASSWORD=$(jq -r '.credentials.password' "$WORK/store.json")
NODE_DIR=$WORK/data/stores/$STORE/$NODE
SOCKET=$(sed -n "s/^unix_socket_directories = '\(.*\)'$/\1/p" "$NODE_DIR/data/berth.conf")
[[ -n $SOCKET ]] || { echo "no socket folder in $NODE_DIR/data/berth.conf" >&2; exit 1; }
BACKUPS=$WORK/data/backups/$STORE
echo "   store $STORE, node $NODE on port $PORT, socket $SOCKET"

# The customer's connection (TCP, the store's admin user) and Berth's (its socket, superuser).
client() { psql -X -v ON_ERROR_STOP=1 -q -At -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d "$DB_NAME" "$@"; }
super() { psql -X -v ON_ERROR_STOP=1 -q -At -h "$SOCKET" -p "$PORT" -U berth -d "$DB_NAME" "$@"; }

# ---------------------------------------------------------------------------------------------
# About 1 GiB of rows that compress like real data rather than like zeros: an id, a timestamp, an
# account number and 64 hex characters, half of them random (gzip takes it to about 43 %),
# with a primary key. One batch of 1 million rows first; the rest is sized from what it added.
echo "== loading ${SIZE_MB} MiB"
T_LOAD=$(now)
EMPTY=$(client -c "select pg_database_size(current_database())")
client <<'SQL'
create table bench_rows (id bigint primary key, at timestamptz not null, account int not null,
                         payload text not null);
SQL
load() {
    client -c "insert into bench_rows
               select g, timestamptz '2026-01-01' + g * interval '1 second', (random() * 100000)::int,
                      md5(g::text) || md5(random()::text)
               from generate_series($1, $2) g"
}
load 1 1000000
ROWS=$(client -c "select (1000000 * (${SIZE_MB}::numeric * 1048576 - $EMPTY)
                          / (pg_database_size(current_database()) - $EMPTY))::bigint")
for ((from = 1000001; from <= ROWS; from += 1000000)); do
    load "$from" $((from + 999999 < ROWS ? from + 999999 : ROWS))
done
ROWS=$(client -c "select count(*) from bench_rows")
client -c "vacuum (freeze, analyze) bench_rows"
super -c checkpoint
DB_BYTES=$(client -c "select pg_database_size(current_database())")
# Everything written so far archived, so that the archiver does not copy WAL during the runs.
SEGMENT=$(super -c "select pg_walfile_name(pg_switch_wal())")
until [[ $(super -c "select coalesce(last_archived_wal, '') >= '$SEGMENT' from pg_stat_archiver") == t ]]; do
    sleep 0.2
done
printf '   %s rows, pg_database_size %s MiB, in %.0f s\n' "$ROWS" $((DB_BYTES / 1048576)) \
    "$(awk -v a="$T_LOAD" -v b="$(now)" 'BEGIN { print b - a }')"
# What a restore must give back: a digest of every 1000th row, compared after each restore.
CHECK_SQL="select count(*) || ' ' || sum(account) || ' ' || md5(string_agg(payload, '' order by id))
           from bench_rows where id % 1000 = 0"
CHECK=$(client -c "$CHECK_SQL")

# ---------------------------------------------------------------------------------------------
# Berth: POST .../backups {"kind": "full"}, then GET the backup every 50 ms until `succeeded`.
# Prints "<seconds> <other %> <server: finished_at - started_at> <POST> <queue> <pg_basebackup>
# <recorded> <seen> <archive bytes> <backup id>": POST is how long the request took to answer;
# queue is the job's created_at -> started_at; pg_basebackup is the step's start -> the archive's
# last write (its mtime, which the rename keeps); recorded is that -> the backup's finished_at
# (pg_basebackup's fsync, the rename, the SHA-256 of the archive, the row); seen is finished_at ->
# the poll that saw it.
berth_backup() {
    local t0 tp t1 id job archive
    settle
    ticks "$WORK/k0"
    t0=$(now)
    api POST "/stores/$STORE/backups" -H 'Content-Type: application/json' --data '{"kind":"full"}' \
        >"$WORK/backup.json"
    tp=$(now)
    id=$(jq -r '.backup.id' "$WORK/backup.json")
    job=$(jq -r '.job.id' "$WORK/backup.json")
    [[ $id != null ]] || { echo "POST /backups: $(cat "$WORK/backup.json")" >&2; return 1; }
    poll "/stores/$STORE/backups/$id" succeeded
    t1=$(now)
    ticks "$WORK/k1"
    archive=$BACKUPS/$id.tar.gz
    api GET "/stores/$STORE/backups/$id" >"$WORK/backup.json"
    api GET "/jobs/$job" >"$WORK/job.json"
    keep "$WORK/job.json" "round$round-berth-backup-job-$id.json"
    jq -r --slurp --argjson t0 "$t0" --argjson tp "$tp" --argjson t1 "$t1" \
        --argjson written "$(stat -c %.9Y "$archive")" \
        --argjson others "$(others_pct "$WORK/k0" "$WORK/k1")" --arg id "$id" "$JQ_TS"'
        .[0] as $b | .[1] as $j
        | ([$j.log[] | select(.message | test("^step ")) | (.at | ts)][0]) as $step
        | [ ($t1 - $t0), $others,
            (($b.finished_at | ts) - ($b.started_at | ts)),
            ($tp - $t0),
            (($j.started_at | ts) - ($j.created_at | ts)),
            ($written - $step),
            (($b.finished_at | ts) - $written),
            ($t1 - ($b.finished_at | ts)) ]
        | map(. * 1000 | round / 1000) + [$b.size_bytes, $id] | @tsv' "$WORK/backup.json" "$WORK/job.json"
}

# The bare baseline, run as the postgres user (one runuser, outside the timing): pg_basebackup
# with Berth's flags against the same node's socket as the same superuser, into a fresh folder,
# then the archive's SHA-256 (openssl, which like Berth's sha2 uses the CPU's SHA instructions;
# coreutils' sha256sum is 3 to 4 times slower here). Prints a timestamp after each stage, then
# the archive's size.
BARE=$WORK/bare
mkdir -m 700 "$BARE"
[[ $(id -u) != 0 ]] || chown "$PG_USER:" "$BARE"
cat >"$WORK/bare_backup.sh" <<'SCRIPT'
set -euo pipefail
socket=$1 port=$2 dest=$3
shift 3
echo "$EPOCHREALTIME"
pg_basebackup -h "$socket" -p "$port" -U berth -D "$dest" "$@"
echo "$EPOCHREALTIME"
openssl dgst -sha256 -r "$dest/base.tar.gz" >/dev/null
echo "$EPOCHREALTIME"
stat -c %s "$dest/base.tar.gz"
SCRIPT

# Prints "<pg_basebackup + SHA-256> <other %> <pg_basebackup> <SHA-256> <archive bytes>".
bare_backup() {
    local t
    rm -rf "${BARE:?}"/*
    settle
    ticks "$WORK/k0"
    mapfile -t t < <(as_pg env PATH="$PATH" bash "$WORK/bare_backup.sh" "$SOCKET" "$PORT" "$BARE/backup" \
        "${BASEBACKUP_FLAGS[@]}")
    ticks "$WORK/k1"
    ((${#t[@]} == 4)) || { echo "the bare backup failed" >&2; return 1; }
    rm -rf "${BARE:?}"/*
    awk -v a="${t[0]}" -v b="${t[1]}" -v c="${t[2]}" -v size="${t[3]}" -v o="$(others_pct "$WORK/k0" "$WORK/k1")" \
        'BEGIN { printf "%.3f %s %.3f %.3f %s\n", c - a, o, b - a, c - b, size }'
}

# Berth: POST .../restore {"backup_id", "confirm"}, then GET the store every 50 ms until
# `available` (and its job `succeeded`). Prints "<seconds> <other %> <POST> <queue> <to stop>
# <stop to start> <start to ready> <to reload> <reload to end> <seen>": POST is how long the request took to
# answer (it checks the archive's SHA-256 before it queues the job); queue is the answer -> the
# job's started_at; to stop is the restore step's start -> the node's log says "received fast
# shutdown request" (the archive's SHA-256 again, untar into a staging folder, configuration,
# archiving the current WAL); stop to start is that -> "starting PostgreSQL" (the old node's
# shutdown, the swap of the data folders, pg_ctl start); start to ready is that -> "database
# system is ready to accept connections" (the data folder's fsync, recovery, promotion); to reload
# is that -> the first "received SIGHUP" after it (pg_ctl and Berth's 200 ms poll of
# pg_is_in_recovery() noticing, the normal configuration written back); reload to end is that ->
# the job's finished_at (removing the replaced data folder, the firewall applied again, recording
# the node, finish_available); seen is finished_at -> the poll that saw `available`.
berth_restore() {
    local backup=$1 t0 tp t1 job lines log=$NODE_DIR/server.log stop start ready reload
    settle
    lines=$(wc -l <"$log")
    ticks "$WORK/k0"
    t0=$(now)
    api POST "/stores/$STORE/restore" -H 'Content-Type: application/json' \
        --data "$(jq -nc --arg b "$backup" --arg n "$NAME" '{backup_id: $b, confirm: $n}')" >"$WORK/restore.json"
    tp=$(now)
    job=$(jq -r '.id' "$WORK/restore.json")
    [[ $job != null ]] || { echo "POST /restore: $(cat "$WORK/restore.json")" >&2; return 1; }
    poll "/stores/$STORE" available
    t1=$(now)
    ticks "$WORK/k1"
    api GET "/jobs/$job" >"$WORK/job.json"
    [[ $(jq -r '.status' "$WORK/job.json") == succeeded ]] || { cat "$WORK/job.json" >&2; return 1; }
    keep "$WORK/job.json" "round$round-berth-restore-job-$job.json"
    keep "$log" "round$round-berth-restore-server-$job.log"
    stop=$(log_at "$log" "received fast shutdown request" "$lines")
    start=$(log_at "$log" "starting PostgreSQL" "$lines")
    ready=$(log_at "$log" "database system is ready to accept connections" "$lines")
    # The first reload after the restore: Berth's own configuration back in place. (A second one
    # follows when the firewall is applied to the node at the end of its step.)
    reload=$(log_at "$log" "received SIGHUP" "$lines" first)
    [[ $(client -c "$CHECK_SQL") == "$CHECK" ]] ||
        { echo "the restored store does not hold the data loaded" >&2; return 1; }
    jq -r --argjson t0 "$t0" --argjson tp "$tp" --argjson t1 "$t1" --argjson stop "$stop" \
        --argjson start "$start" --argjson ready "$ready" --argjson reload "$reload" \
        --argjson others "$(others_pct "$WORK/k0" "$WORK/k1")" "$JQ_TS"'
        ([.log[] | select(.message | test("^step ")) | (.at | ts)][0]) as $step
        | [ ($t1 - $t0), $others,
            ($tp - $t0),
            ((.started_at | ts) - $tp),
            ($stop - $step),
            ($start - $stop),
            ($ready - $start),
            ($reload - $ready),
            ((.finished_at | ts) - $reload),
            ($t1 - (.finished_at | ts)) ]
        | map(. * 1000 | round / 1000) | @tsv' "$WORK/job.json"
}

# The bare restore of the same archive, as the postgres user: the archive's SHA-256 (Berth checks
# it before restoring), untar into a fresh folder, the node's own configuration with another port
# and socket folder and no WAL archiving, recovery to the end of the backup and promotion (the WAL
# is in the archive: -X fetch; PostgreSQL insists on a restore_command, `false` finds nothing),
# pg_ctl start -w, then psql every 50 ms until pg_is_in_recovery() is false. Prints a timestamp
# after each stage, then the same check of the data as the Berth side (untimed); the caller stops
# the server.
cat >"$WORK/bare_restore.sh" <<'SCRIPT'
set -euo pipefail
archive=$1 dir=$2 port=$3 db=$4 check=$5
echo "$EPOCHREALTIME"
openssl dgst -sha256 -r "$archive" >/dev/null
echo "$EPOCHREALTIME"
mkdir -m 700 "$dir" "$dir.run"
tar -xzf "$archive" -C "$dir"
echo "$EPOCHREALTIME"
# postgresql.auto.conf is read last: these win over the node's berth.conf.
cat >>"$dir/postgresql.auto.conf" <<CONF
port = $port
unix_socket_directories = '$dir.run'
listen_addresses = ''
archive_mode = off
restore_command = 'false'
recovery_target = 'immediate'
recovery_target_action = 'promote'
CONF
touch "$dir/recovery.signal"
rm -f "$dir/standby.signal"
pg_ctl start -w -s -t 300 -D "$dir" -l "$dir.log"
q() { psql -X -q -At -h "$dir.run" -p "$port" -U berth "$@"; }
until [[ $(q -d postgres -c 'select pg_is_in_recovery()' 2>/dev/null) == f ]]; do
    sleep 0.05
done
echo "$EPOCHREALTIME"
q -d "$db" -c "$check"
SCRIPT

# Prints "<SHA-256 + untar + start + recovery> <other %> <SHA-256> <untar> <to start>
# <start to ready> <after ready>", split at the server log's "starting PostgreSQL" and "ready to
# accept connections" like the Berth side: to start is the beginning -> "starting PostgreSQL",
# after ready is "ready" -> the psql that saw pg_is_in_recovery() false.
bare_restore() {
    local archive=$1 t start ready
    rm -rf "${BARE:?}"/*
    settle
    ticks "$WORK/k0"
    mapfile -t t < <(as_pg env PATH="$PATH" bash "$WORK/bare_restore.sh" "$archive" "$BARE/restore" \
        "$BARE_PORT" "$DB_NAME" "$CHECK_SQL")
    ticks "$WORK/k1"
    as_pg pg_ctl stop -D "$BARE/restore" -m fast -s -w || true
    keep "$BARE/restore.log" "round$round-bare-restore-server-$RANDOM.log"
    ((${#t[@]} == 5)) || { echo "the bare restore failed; its log:" >&2; tail "$BARE/restore.log" >&2; return 1; }
    [[ ${t[4]} == "$CHECK" ]] || { echo "the bare restore does not hold the data loaded" >&2; return 1; }
    start=$(log_at "$BARE/restore.log" "starting PostgreSQL" 0)
    ready=$(log_at "$BARE/restore.log" "database system is ready to accept connections" 0)
    rm -rf "${BARE:?}"/*
    awk -v a="${t[0]}" -v b="${t[1]}" -v c="${t[2]}" -v e="${t[3]}" -v s="$start" \
        -v r="$ready" -v o="$(others_pct "$WORK/k0" "$WORK/k1")" \
        'BEGIN { printf "%.3f %s %.3f %.3f %.3f %.3f %.3f\n", e - a, o, b - a, c - b, s - a, r - s, e - r }'
}

# ---------------------------------------------------------------------------------------------
# Berth and bare runs alternate, and which side goes first alternates between rounds, so that a
# change in what else the machine does falls on both sides alike. Each round's restores use the
# archive of that round's Berth backup.
show() {
    local a
    read -r -a a <<<"$2"
    case $1 in
    berth_backup) printf '%7.3f s (other %2d %%; POST %.3f, queue %.3f, pg_basebackup %.3f, recorded %.3f, seen %.3f later; server %.3f; %d MiB)' \
        "${a[0]}" "${a[1]}" "${a[3]}" "${a[4]}" "${a[5]}" "${a[6]}" "${a[7]}" "${a[2]}" $((a[8] / 1048576)) ;;
    bare_backup) printf '%7.3f s (other %2d %%; pg_basebackup %.3f, SHA-256 %.3f; %d MiB)' \
        "${a[0]}" "${a[1]}" "${a[2]}" "${a[3]}" $((a[4] / 1048576)) ;;
    berth_restore) printf '%7.3f s (other %2d %%; POST %.3f, queue %.3f, to stop %.3f, stop to start %.3f, start to ready %.3f, to reload %.3f, reload to end %.3f, seen %.3f later)' \
        "${a[@]}" ;;
    bare_restore) printf '%7.3f s (other %2d %%; SHA-256 %.3f, untar %.3f, to start %.3f, start to ready %.3f, after ready %.3f)' \
        "${a[@]}" ;;
    esac
}
# Runs case $1 (with arguments $2...), again when something else used more than MAX_OTHER % of
# the machine meanwhile, at most REDO more times; the last run counts. Sets OUT.
declare -A RUNS DISCARDED
measure() {
    local attempt other
    for ((attempt = 0; ; attempt++)); do
        OUT=$("$@")
        other=$(awk '{ print $2 }' <<<"$OUT")
        printf '== round %d: %-14s %s\n' "$round" "${1/_/ }" "$(show "$1" "$OUT")"
        ((other > MAX_OTHER && attempt < REDO)) || break
        DISCARDED[$1]+="$OUT"$'\n'
        echo "   (other $other % > $MAX_OTHER %: discarded, measuring again)"
    done
    RUNS[$1]+="$OUT"$'\n'
}
LOAD_BEFORE=$(uptime | sed 's/.*load average: //')
for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then order=(berth bare); else order=(bare berth); fi
    for side in "${order[@]}"; do
        measure "${side}_backup"
        [[ $side == berth ]] && backup_id=$(awk '{ print $10 }' <<<"$OUT")
    done
    for side in "${order[@]}"; do
        if [[ $side == berth ]]; then
            measure berth_restore "$backup_id"
        else
            measure bare_restore "$BACKUPS/$backup_id.tar.gz"
        fi
    done
done
LOAD_AFTER=$(uptime | sed 's/.*load average: //')

# The median of column $2 of the runs of $1; of column $2 minus column $3 when $3 is given.
col() {
    # shellcheck disable=SC2046 # one value a line, each its own argument
    median $(printf '%s' "${RUNS[$1]}" | awk -v c="$2" -v m="${3:-0}" 'NF { printf "%.3f\n", $c - (m ? $m : 0) }')
}

row() { printf '| %-45s | %9s | %8s | %5s | %6s | %-7s |\n' "$@"; }
echo
echo "== results: $(date -u +%Y-%m-%d), $(nproc) cores, PostgreSQL $(postgres --version | awk '{ print $3 }'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), median of $ROUNDS"
echo "   $ROWS rows, pg_database_size $((DB_BYTES / 1048576)) MiB, archives of $(printf '%s' "${RUNS[berth_backup]}" | awk 'NF { printf "%d ", $9 / 1048576 }')MiB"
echo "   load average before: $LOAD_BEFORE; after: $LOAD_AFTER"
echo
row "ratio" "berth (s)" "bare (s)" "ratio" "target" "verdict"
row "---" "---:" "---:" "---:" "---:" "---"
b=$(col berth_backup 1)
p=$(col bare_backup 3)
r=$(ratio "$b" "$p")
row "backup / pg_basebackup" "$b" "$p" "$r" "<= 1.2" "$(verdict "$r" 1.2)"
p=$(col bare_backup 1)
row "backup / pg_basebackup + SHA-256" "$b" "$p" "$(ratio "$b" "$p")" "" "(info)"
b=$(col berth_restore 1)
p=$(col bare_restore 1 3)
r=$(ratio "$b" "$p")
row "restore / untar + start + recovery" "$b" "$p" "$r" "<= 1.2" "$(verdict "$r" 1.2)"
p=$(col bare_restore 1)
row "restore / SHA-256 + untar + start + recovery" "$b" "$p" "$(ratio "$b" "$p")" "" "(info)"
echo
echo "Raw figures, seconds, in the order run (other %: the share of the machine that processes"
echo "outside the benchmark used meanwhile):"
raw() {
    printf '  %-36s' "$1"
    printf '%s' "$2" | awk -v c="$3" -v m="${4:-0}" 'NF { printf "  %.3f (%s %%)", $c - (m ? $m : 0), $2 } END { print "" }'
}
raw "berth backup" "${RUNS[berth_backup]}" 1
raw "bare pg_basebackup" "${RUNS[bare_backup]}" 3
raw "bare pg_basebackup + SHA-256" "${RUNS[bare_backup]}" 1
raw "berth restore" "${RUNS[berth_restore]}" 1
raw "bare untar + start + recovery" "${RUNS[bare_restore]}" 1 3
raw "bare SHA-256 + untar + start + rec." "${RUNS[bare_restore]}" 1
for k in berth_backup bare_backup berth_restore bare_restore; do
    [[ -z ${DISCARDED[$k]:-} ]] || raw "discarded: ${k/_/ }" "${DISCARDED[$k]}" 1
done
echo
echo "Where the time went, in seconds (the median of each part on its own, so they need not add up):"
echo "  berth backup:  POST $(col berth_backup 4), queue $(col berth_backup 5), pg_basebackup $(col berth_backup 6), recorded $(col berth_backup 7), seen $(col berth_backup 8); server-side finished_at - started_at $(col berth_backup 3)"
echo "  bare backup:   pg_basebackup $(col bare_backup 3), SHA-256 $(col bare_backup 4)"
echo "  berth restore: POST $(col berth_restore 3), queue $(col berth_restore 4), to stop $(col berth_restore 5), stop to start $(col berth_restore 6), start to ready $(col berth_restore 7), to reload $(col berth_restore 8), reload to end $(col berth_restore 9), seen $(col berth_restore 10)"
echo "  bare restore:  SHA-256 $(col bare_restore 3), untar $(col bare_restore 4), to start $(col bare_restore 5), start to ready $(col bare_restore 6), after ready $(col bare_restore 7)"
if printf '%s' "${RUNS[@]}" | awk -v max="$MAX_OTHER" 'NF && $2 > max { bad = 1 } END { exit !bad }'; then
    echo "warning: something else used over $MAX_OTHER % of the machine during some of the runs" \
        "kept; rerun on a quieter machine before trusting the ratios" >&2
fi
