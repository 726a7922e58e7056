#!/usr/bin/env bash
# `berthctl store list -o json` against `curl` of the same call with the same token: the whole
# process's wall time over RUNS runs each, interleaved; target: berthctl's median at most 2x
# curl's. Run from the repository root: `bash bench/cli.sh`. Figures in bench/README.md.
#
# Environment:
#   RUNS        runs of each (default 50)
#   NODE_PORTS  ports Berth hands to store nodes (default 25560-25569)
#   QUIET_WAIT  seconds to wait for a quiet machine before timing (default 60; 0 does not wait)
set -euo pipefail
trap 'echo "bench/cli.sh: line $LINENO failed" >&2' ERR

RUNS=${RUNS:-50}
NODE_PORTS=${NODE_PORTS:-25560-25569}
QUIET_WAIT=${QUIET_WAIT:-60}
cd "$(dirname "$0")/.."

BENCH_NAME=cli
# shellcheck source=bench/lib.sh
source bench/lib.sh

CTL=target/release/berthctl
export XDG_CONFIG_HOME="$WORK/config"
printf '%s\n' "$PASSWORD" | "$CTL" login --url "$BERTH" --email "$EMAIL" --password-stdin
# Three stores to list, built before the timing starts.
for i in 1 2 3; do "$CTL" store create "bench-cli-$i" --size tiny --wait -o json >/dev/null; done
"$CTL" store list >/dev/null
TOKEN=$(sed -n 's/^access_token = "\(.*\)"$/\1/p' "$XDG_CONFIG_HOME/berthctl/credentials.toml")
[[ -n $TOKEN ]] || { echo "no access token cached by berthctl" >&2; exit 1; }

run_ctl() { BERTH_TOKEN=$TOKEN "$CTL" --url "$BERTH" --org "$ORG" store list -o json >/dev/null; }
run_curl() {
    curl -sS -f -H "Authorization: Bearer $TOKEN" "$BERTH/api/v1/orgs/$ORG/stores?limit=100" >/dev/null
}

wait_quiet
ctl=() curl_t=()
for _ in $(seq "$RUNS"); do
    t0=$(now); run_ctl; t1=$(now); ctl+=("$(elapsed "$t0" "$t1")")
    t0=$(now); run_curl; t1=$(now); curl_t+=("$(elapsed "$t0" "$t1")")
done
m_ctl=$(median "${ctl[@]}")
m_curl=$(median "${curl_t[@]}")
r=$(ratio "$m_ctl" "$m_curl")
echo "berthctl store list -o json: median ${m_ctl}s over $RUNS runs"
echo "curl of the same call:       median ${m_curl}s"
echo "ratio ${r}x (target <= 2x: $(verdict "$r" 2))"
