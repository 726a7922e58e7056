#!/usr/bin/env bash
# The job queue's throughput: 10,000 no-op jobs through 4 Berth workers against a bare pgbench
# claim-and-complete loop on the same PostgreSQL in the same run (examples/queue_bench.rs).
# Run from the repository root: `bash bench/queue.sh`. See bench/STORES.md.
#
# Environment:
#   JOBS     jobs per run (default 10000)
#   WORKERS  Berth workers and pgbench clients (default 4)
#   ROUNDS   rounds of every run, Berth and bare in turn; medians are reported (default 5)
#   QUIET_WAIT  seconds to wait, before each run, for a second in which the machine is under
#            10 % busy (default 120; 0 does not wait)
set -euo pipefail
trap 'echo "bench/queue.sh: line $LINENO failed" >&2' ERR

cd "$(dirname "$0")/.."

echo "== building (release)"
# What bench/run.sh builds too: switching between the benchmarks then rebuilds nothing.
cargo build --release --bins --examples

WORK=$(mktemp -d /tmp/berth-queue.XXXXXX)
# PostgreSQL runs as its own user when we are root and must traverse this folder.
chmod 711 "$WORK"

cleanup() {
    set +e
    # The example stops its server; after a crash or Ctrl-C it may not have.
    local pidfile=$WORK/pg/postmaster.pid
    if [[ -f $pidfile ]]; then
        kill -QUIT "$(head -n1 "$pidfile")" 2>/dev/null
        sleep 1
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
target/release/examples/queue_bench --jobs "${JOBS:-10000}" --workers "${WORKERS:-4}" \
    --rounds "${ROUNDS:-5}" --quiet-wait "${QUIET_WAIT:-120}" --dir "$WORK"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
