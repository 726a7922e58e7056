# Shared by the benchmarks that drive a real Berth: sourced after the script has set
# NODE_PORTS, QUIET_WAIT and BENCH_NAME (and cd'd to the repository root). It checks the tools,
# builds the release binary, makes a throwaway folder $WORK (removed on exit with every server in
# it), starts Berth there, signs in, and defines `api METHOD /path [curl args]` for the first
# organization's API, and the helpers below (timing, medians, CPU ticks, quiet waits).
# shellcheck shell=bash
PG_USER=${PG_USER:-postgres}
for tool in curl jq runuser; do
    command -v "$tool" >/dev/null || { echo "the benchmark needs $tool" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "run as root: the baseline runs PostgreSQL as $PG_USER" >&2; exit 1; }
# The stores are PostgreSQL 15, which Berth runs from these binaries; so does the baseline.
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export PATH="$PG_BIN:$PATH"

echo "== building (release)"
# What bench/run.sh builds too: switching between the benchmarks then rebuilds nothing.
cargo build --release --bins --examples

WORK=$(mktemp -d "/tmp/berth-${BENCH_NAME:-bench}.XXXXXX")
# PostgreSQL runs as its own user when we are root and must traverse this folder.
chmod 711 "$WORK"
BERTH_PID=""

as_pg() { runuser -u "$PG_USER" -- "$@"; }

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
    # Store nodes outlive Berth by design (pg_ctl puts them in their own session), as do the
    # bare servers of an interrupted baseline.
    stop_leftover_servers
    # As root, each store node is on a loop-mounted volume and each store has an OS user, which
    # Berth removes with the store: what an interrupted run left, this removes.
    awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | xargs -r -n1 umount -l
    awk -F: -v w=" in $WORK" 'index($5, w) { print $1 }' /etc/passwd | xargs -r -n1 userdel
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "met" : "MISSED" }'; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# CPU ticks: "<machine busy> <machine total> <ours>". Ours is this script's process tree and every
# process working in a folder under $WORK (Berth's PostgreSQL, store nodes and bare servers,
# which pg_ctl detaches from the tree), with their children, reaped ones included.
ticks() {
    local roots
    roots="$$ $BASHPID $({ find /proc -mindepth 2 -maxdepth 2 -name cwd -lname "$WORK/*" 2>/dev/null ||
        true; } | cut -d/ -f3 | tr '\n' ' ')"
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    awk '$1 == "cpu" { busy = $2 + $3 + $4 + $7 + $8 + $9; total = 0; for (i = 2; i <= 9; i++) total += $i
                       printf "%d %d ", busy, total }' /proc/stat
    # Processes come and go while cat reads them; a vanished one is not an error.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v roots="$roots" '
        { pid = $1; sub(/^.*\) /, ""); ppid[pid] = $2; cpu[pid] = $12 + $13 + $14 + $15 }
        END {
            n = split(roots, r, " "); for (i = 1; i <= n; i++) ours[r[i]] = 1
            do { grew = 0
                 for (p in ppid) if (!(p in ours) && (ppid[p] in ours)) { ours[p] = 1; grew = 1 }
            } while (grew)
            for (p in ours) if (p in cpu) sum += cpu[p]
            print sum
        }'
}
# Waits up to QUIET_WAIT seconds for a second in which the whole machine is under 10 % busy:
# on a shared machine, a run started in the middle of someone's build says little.
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
# Share of the machine (%) that processes outside the benchmark used between two `ticks`.
others_pct() {
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ")
        o = (y[1] - x[1]) - (y[3] - x[3]); if (o < 0) o = 0
        printf "%.0f", 100 * o / (y[2] - x[2]) }'
}

# ---------------------------------------------------------------------------------------------
echo "== starting berth (data in $WORK/data, node ports $NODE_PORTS)"
PASSWORD=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
EMAIL=admin@localhost
env -u DATABASE_URL \
    BERTH_DATA_DIR="$WORK/data" BERTH_LISTEN=127.0.0.1:0 BERTH_NODE_PORTS="$NODE_PORTS" \
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

code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Cookie: __Host-berth_session=$COOKIE" \
    "$BERTH/api/v1/content/deploy-options")
[[ $code == 200 ]] || { echo "GET /api/v1/content/deploy-options answered $code" >&2; exit 1; }

