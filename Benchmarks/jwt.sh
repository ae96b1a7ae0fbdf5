#!/usr/bin/env bash
# Issue 9's figures (BENCHMARKS.md, "End-user tokens"):
#  1. in process, per algorithm: validating a new token (cache miss) and a verified one (hit), MeshAuthzBench --jwt;
#  2. HTTP: /ext_authz throughput with a valid RS256 token (the same one every time: cache hits) against the same
#     request without a token, `meshauthz serve --threads 1` pinned to SERVER_CPU, wrk -t1 pinned to CLIENT_CPU,
#     CONNECTIONS keep-alive connections, WRK_SECONDS per run, RUNS runs alternating the two, medians kept.
# Knobs: RUNS (3), WRK_SECONDS (5), CONNECTIONS ("1 32"), SERVER_CPU (0), CLIENT_CPU (1), SCRATCH (.build-jwt-rel).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
RUNS=${RUNS:-3}
WRK_SECONDS=${WRK_SECONDS:-5}
CONNECTIONS=${CONNECTIONS:-"1 32"}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SCRATCH=${SCRATCH:-.build-jwt-rel}
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

swift build -c release --scratch-path "$SCRATCH" --product meshauthz >&2
swift build -c release --scratch-path "$SCRATCH" --product MeshAuthzBench >&2
bin=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)

echo "## 1. Token validation in process (RequestAuthenticator.authenticate, 2,000 tokens per algorithm)"
echo
taskset -c "$SERVER_CPU" "$bin/MeshAuthzBench" --jwt --jwt-write "$work/jwt"
echo

taskset -c "$SERVER_CPU" "$bin/meshauthz" serve --policies "$work/jwt" --listen 127.0.0.1:0 --threads 1 \
    --reload-interval 0 > "$work/serve.log" 2>&1 &
server_pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/serve.log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { cat "$work/serve.log" >&2; exit 1; }
echo "## 2. /ext_authz with a valid RS256 token (cache hit) vs the same request without a token"
echo
echo "| connections | without token req/s | with token req/s | with / without | without p99 | with p99 |"
echo "|---:|---:|---:|---:|---:|---:|"
for c in $CONNECTIONS; do
    : > "$work/without-$c"; : > "$work/with-$c"
    for run in $(seq "$RUNS"); do
        for kind in without with; do
            taskset -c "$CLIENT_CPU" wrk -t1 -c"$c" -d"${WRK_SECONDS}s" --latency -s "$work/jwt/$kind-token.lua" \
                "http://127.0.0.1:$port" > "$work/wrk.txt"
            awk '/Requests\/sec/ { rps = $2 } /^ +99%/ { p99 = $2 } END { print rps, p99 }' "$work/wrk.txt" >> "$work/$kind-$c"
        done
    done
    without=$(cut -d' ' -f1 "$work/without-$c" | median); with=$(cut -d' ' -f1 "$work/with-$c" | median)
    echo "| $c | $without | $with | $(awk -v a="$with" -v b="$without" 'BEGIN { printf "%.0f%%", 100 * a / b }') | $(cut -d' ' -f2 "$work/without-$c" | sort | sed -n 2p) | $(cut -d' ' -f2 "$work/with-$c" | sort | sed -n 2p) |"
done
curl -s "http://127.0.0.1:$port/metrics" | grep '^meshauthz_jwt_validations_total' >&2
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=

# 3. Deterministic: user-space instructions per request under callgrind (a run answering N requests minus a run
#    answering none, both after the same warm-up), with and without the token.
if [ "${SKIP_CALLGRIND:-0}" != 1 ] && command -v valgrind > /dev/null; then
    N=${CALLGRIND_REQUESTS:-2000}
    # valgrind gives up on the DWARF of a binary linking swift-crypto ("possibly corrupted debuginfo"): a copy
    # without debug sections runs (symbols stay).
    cp "$bin/meshauthz" "$work/meshauthz-nodebug" && strip --strip-debug "$work/meshauthz-nodebug"
    total() {  # total KIND N: instructions of a callgrind'ed server that answered 20 + N requests of KIND
        local file="$work/cg-$1-$2.out"
        SWIFT_DETERMINISTIC_HASHING=1 valgrind --tool=callgrind --callgrind-out-file="$file" \
            "$work/meshauthz-nodebug" serve --policies "$work/jwt" --listen 127.0.0.1:0 --threads 1 --reload-interval 0 \
            > "$work/cg.log" 2>&1 &
        server_pid=$!
        local p=
        for _ in $(seq 600); do
            p=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$work/cg.log" | head -1 | grep -oE '[0-9]+$' || true)
            [ -n "$p" ] && break
            sleep 0.5
        done
        python3 "$here/keepalive_client.py" --port "$p" --requests "$2" --warmup 20 --file "$work/jwt/$1-token.tsv" >&2
        kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
        grep -E '^(summary|totals):' "$file" | head -1 | awk '{ print $2 }'
    }
    w0=$(total without 0); wn=$(total without "$N"); t0=$(total with 0); tn=$(total with "$N")
    echo
    echo "## 3. User-space instructions per /ext_authz request (callgrind, $N keep-alive requests after 20)"
    echo
    echo "| request | instructions per request |"
    echo "|---|---:|"
    echo "| without token | $(( (wn - w0) / N )) |"
    echo "| with the RS256 token (verified once, then cached) | $(( (tn - t0) / N )) |"
fi
