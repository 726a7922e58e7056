#!/usr/bin/env bash
# Issue 15: a good client's latency under a flood of failed authentications. Starts Berth, mints
# a client credential and a token, and measures a good client (GET /api/v1/orgs/{id} with its
# bearer token, GOOD connections) alone, then beside two floods from the same machine: made-up
# bearer tokens on the same route, and made-up client ids at the token endpoint (FLOOD
# connections each), unbounded, then paced at FLOOD_RATE requests/s each. Target: the good
# client's p99 beside the flood within 2x its p99 alone. On 2 cores the unbounded floods also
# take the CPU from the good client (wrk itself takes most of a core); the paced ones leave CPU
# to spare, so what they show is what the refusals hold: connections, locks. It also counts the
# audit events the floods left once their minute was flushed. Run from the repository root as
# root: `bash bench/flood.sh`. Figures: bench/README.md.
#
# Environment:
#   DURATION    seconds per measurement (default 10)
#   GOOD        connections of the good client (default 4)
#   FLOOD       connections of each flood (default 32)
#   FLOOD_RATE  requests/s of each paced flood (default 1000; 0: no paced floods)
#   ROUNDS      rounds of alone and beside, in turn; medians are reported (default 3)
#   QUIET_WAIT  seconds to wait for a quiet machine before each round (default 60; 0: no wait)
set -euo pipefail
trap 'echo "bench/flood.sh: line $LINENO failed" >&2' ERR

DURATION=${DURATION:-10}
GOOD=${GOOD:-4}
FLOOD=${FLOOD:-32}
FLOOD_RATE=${FLOOD_RATE:-1000}
ROUNDS=${ROUNDS:-3}
QUIET_WAIT=${QUIET_WAIT:-60}
NODE_PORTS=${NODE_PORTS:-25900-25909}

cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
    echo "== installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk
fi
BENCH_NAME=flood
# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "== a client credential and a bearer token"
EXPIRES=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
CRED=$(api POST /credentials -H "Origin: $BERTH" -H 'Content-Type: application/json' \
    --data "{\"description\":\"bench\",\"expires_at\":\"$EXPIRES\",\"scopes\":[\"org:read\"]}")
BASIC=$(jq -r '.client_id + ":" + .client_secret' <<<"$CRED" | tr -d '\n' | base64 -w0)
TOKEN=$(curl -sS -H "Authorization: Basic $BASIC" --data 'grant_type=client_credentials' \
    "$BERTH/api/auth/oauth2/token" | jq -r .access_token)
[[ $TOKEN == brt_* ]] || { echo "no access token" >&2; exit 1; }

# Each request a different made-up token, or a different one of 100 made-up client ids.
cat >"$WORK/garbage.lua" <<'EOF_LUA'
local n = 0
function setup(thread) n = n + 1; thread:set("seed", n) end
function init(args) i = seed * 1000003 end
function request()
  i = i + 1
  return wrk.format(nil, nil, { Authorization = "Bearer brt_made_up_" .. i })
end
EOF_LUA
cat >"$WORK/clients.lua" <<'EOF_LUA'
local n = 0
function setup(thread) n = n + 1; thread:set("seed", n) end
function init(args) i = seed * 7919 end
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&client_id=brc_made_up&client_secret=brs_wrong"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
function request()
  i = i + 1
  local body = "grant_type=client_credentials&client_id=brc_made_up_" .. (i % 100) .. "&client_secret=brs_wrong"
  return wrk.format(nil, nil, nil, body)
end
EOF_LUA

# Paced: each connection waits its turn (wrk's `delay`), FLOOD of them making about FLOOD_RATE/s.
if ((FLOOD_RATE > 0)); then
    for f in garbage clients; do
        { cat "$WORK/$f.lua"; echo "function delay() return $((FLOOD * 1000 / FLOOD_RATE)) end"; } >"$WORK/$f.paced.lua"
    done
fi

ORG_URL="$BERTH/api/v1/orgs/$ORG"
good() { wrk -t1 -c"$GOOD" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$ORG_URL" >"$WORK/$1.txt"; }
# Starts both floods, their scripts `garbage$2.lua` and `clients$2.lua`; their pids are in
# FLOOD_PIDS (Berth is a background job too: `wait` alone would wait for it).
flood() {
    wrk -t1 -c"$FLOOD" -d"$((DURATION + 4))s" --latency -s "$WORK/garbage$2.lua" "$ORG_URL" >"$WORK/$1.garbage.txt" &
    FLOOD_PIDS=($!)
    wrk -t1 -c"$FLOOD" -d"$((DURATION + 4))s" --latency -s "$WORK/clients$2.lua" \
        "$BERTH/api/auth/oauth2/token" >"$WORK/$1.clients.txt" &
    FLOOD_PIDS+=($!)
}
rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
# The 99th percentile of wrk's distribution, in milliseconds.
p99_ms() {
    awk '$1 == "99%" { v = $2
        if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) }
        else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
        printf "%.2f", v }' "$1"
}
non2xx() { awk '/Non-2xx/ { print $NF }' "$1"; }
audit_events() { as_pg psql -qtA -h "$WORK/data/run" -U berth -d berth -c 'select count(*) from audit_events'; }

# The good client beside floods started by `flood "$1" "$2"`; appends its p99 to the array named
# $3 and the floods' requests/s together to the one named $4.
beside() {
    local -n p99s=$3 rates=$4
    flood "$1" "$2"
    sleep 2
    good "$1"
    wait "${FLOOD_PIDS[@]}"
    [[ -z $(non2xx "$WORK/$1.txt") ]] || { echo "the good client got errors beside the flood" >&2; exit 1; }
    p99s+=("$(p99_ms "$WORK/$1.txt")")
    rates+=("$(awk -v a="$(rps "$WORK/$1.garbage.txt")" -v b="$(rps "$WORK/$1.clients.txt")" 'BEGIN { printf "%.0f", a + b }')")
    echo "   $(rps "$WORK/$1.txt")/s, p99 ${p99s[-1]} ms; the floods: $(rps "$WORK/$1.garbage.txt")/s made-up tokens," \
        "$(rps "$WORK/$1.clients.txt")/s made-up clients"
}

good warmup
AUDIT_BEFORE=$(audit_events)
ALONE=() BESIDE=() FLOOD_RPS=() PACED=() PACED_RPS=()
for r in $(seq "$ROUNDS"); do
    wait_quiet
    echo "== round $r: the good client alone ($GOOD connections, ${DURATION} s)"
    good "alone$r"
    ALONE+=("$(p99_ms "$WORK/alone$r.txt")")
    echo "   $(rps "$WORK/alone$r.txt")/s, p99 ${ALONE[-1]} ms"
    echo "== round $r: beside the floods (2 x $FLOOD connections, unbounded)"
    beside "flood$r" "" BESIDE FLOOD_RPS
    if ((FLOOD_RATE > 0)); then
        echo "== round $r: beside the floods (2 x $FLOOD connections, paced at $FLOOD_RATE/s each)"
        beside "paced$r" .paced PACED PACED_RPS
    fi
done
# The refusals of a minute are appended once it has ended, at the next 10-second flush.
sleep $((60 - $(date +%-S) + 12))
AUDIT_AFTER=$(audit_events)
REFUSED=$(awk '/Non-2xx/ { s += $NF } END { print s + 0 }' "$WORK"/flood*.txt "$WORK"/paced*.txt)

A=$(median "${ALONE[@]}")
B=$(median "${BESIDE[@]}")
row() { printf '| %-52s | %12s |\n' "$1" "$2"; }
echo
echo "== results: $(date -u +%Y-%m-%d), $(nproc) cores, $ROUNDS rounds of ${DURATION} s, medians"
echo
row "measure" "value"
row "---" "---:"
row "good client p99 alone, $GOOD connections (ms)" "$A"
row "good client p99 beside the floods (ms)" "$B"
row "floods, requests/s (both together)" "$(median "${FLOOD_RPS[@]}")"
if ((FLOOD_RATE > 0)); then
    P=$(median "${PACED[@]}")
    row "good client p99 beside the paced floods (ms)" "$P"
    row "paced floods, requests/s (both together)" "$(median "${PACED_RPS[@]}")"
fi
row "refused requests of the floods (all rounds)" "$REFUSED"
row "audit events they added" "$((AUDIT_AFTER - AUDIT_BEFORE))"
row "ratio beside / alone (target <= 2)" "$(ratio "$B" "$A") ($(verdict "$(ratio "$B" "$A")" 2))"
if ((FLOOD_RATE > 0)); then
    row "ratio beside paced / alone (target <= 2)" "$(ratio "$P" "$A") ($(verdict "$(ratio "$P" "$A")" 2))"
fi
