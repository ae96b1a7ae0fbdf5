#!/usr/bin/env bash
# /ext_authz throughput with `--decision-log all` to a file against `--decision-log none` (issue 10: goal >= 80%).
# Same method as Benchmarks/run.sh part 2: `meshauthz serve --threads 1` on the HTTP_POLICIES-policy generated mesh,
# the whole process (HTTP thread and the log's writer thread) pinned to SERVER_CPU, wrk -t1 pinned to CLIENT_CPU,
# keep-alive, WRK_SECONDS per run; the modes interleaved (none, all, none, all, ...) RUNS times, medians kept.
# Knobs: RUNS (3), WRK_SECONDS (5), HTTP_POLICIES (10000), CONNECTIONS ("1 32"), SERVER_CPU (0), CLIENT_CPU (1),
# SCRATCH (.build-bench), SKIP_WRK=1, SKIP_CALLGRIND=1, CALLGRIND_POLICIES (1000), CALLGRIND_REQUESTS (2000). Writes Benchmarks/out/decision-log.md. (--max-resources 100000: the 10,000-policy mesh has more
# than the default 10,000 resources with its PeerAuthentications.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
RUNS=${RUNS:-3}
WRK_SECONDS=${WRK_SECONDS:-5}
HTTP_POLICIES=${HTTP_POLICIES:-10000}
CONNECTIONS=${CONNECTIONS:-"1 32"}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SCRATCH=${SCRATCH:-.build-bench}
out="$here/out"
work="$out/work-decision-log"
mkdir -p "$work"
results="$out/decision-log.md"
log() { echo "== $*" >&2; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

log "building (release, scratch $SCRATCH)"
swift build -c release --scratch-path "$SCRATCH" --product MeshAuthzBench 2>&1 | grep -E "error" || true
swift build -c release --scratch-path "$SCRATCH" --product meshauthz 2>&1 | grep -E "error" || true
bin=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)
policies="$work/policies-$HTTP_POLICIES"
rm -rf "$policies"
"$bin/MeshAuthzBench" --size "$HTTP_POLICIES" --write-policies "$policies" --write-wrk "$work/ext_authz.lua" \
    --write-wrk-check "$work/check.lua" --write-requests "$work/requests.tsv" >&2

server_pid=""
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
trap stop_server EXIT

start_server() {  # MODE: sets server_pid and port
    : > "$work/serve.log"
    rm -f "$work/decisions.log"
    taskset -c "$SERVER_CPU" "$bin/meshauthz" serve --policies "$policies" --listen 127.0.0.1:0 --threads 1 \
        --reload-interval 0 --max-resources 100000 --decision-log "$1" --decision-log-file "$work/decisions.log" > "$work/serve.log" 2>&1 &
    server_pid=$!
    port=""
    for _ in $(seq 1200); do
        port=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$work/serve.log" | head -1 | grep -oE '[0-9]+$' || true)
        [ -n "$port" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
        sleep 0.5
    done
    echo "serve did not start" >&2; exit 1
}

: > "$work/raw.txt"
[ "${SKIP_WRK:-0}" = 1 ] && RUNS=0
for run in $(seq "$RUNS"); do
    for mode in none all; do
        start_server "$mode"
        for c in $CONNECTIONS; do
            taskset -c "$CLIENT_CPU" wrk -t1 -c"$c" -d"${WRK_SECONDS}s" --latency -s "$work/ext_authz.lua" \
                "http://127.0.0.1:$port" > "$work/wrk.txt"
            rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk.txt")
            p99=$(awk 'function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; return v * 1000000 }
                       $1 == "99%" { print us($2) }' "$work/wrk.txt")
            dropped=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^meshauthz_decision_log_dropped_total\{reason="queue_full"\}/ { print $2 }')
            lines=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^meshauthz_decision_log_lines_total / { print $2 }')
            echo "$mode $c $rps $p99 ${lines:-0} ${dropped:-0}" | tee -a "$work/raw.txt" >&2
        done
        stop_server
    done
done

# Instructions per warm /ext_authz request under callgrind, none vs all (deterministic, unlike req/s on a shared
# host): every thread's user-space instructions, the log's writer included; the kernel's write() is not counted.
CALLGRIND_POLICIES=${CALLGRIND_POLICIES:-1000}
CALLGRIND_REQUESTS=${CALLGRIND_REQUESTS:-2000}
callgrind_total() {  # MODE N WARM: total instructions of a server run that answered WARM + N requests
    local mode=$1 n=$2 warm=$3 file="$work/callgrind-$1-$3-$2.out"
    rm -f "$file" "$work/decisions.log"
    : > "$work/serve.log"
    SWIFT_DETERMINISTIC_HASHING=1 valgrind --tool=callgrind --callgrind-out-file="$file" "$work/meshauthz-nodebug" serve \
        --policies "$cgpolicies" --listen 127.0.0.1:0 --threads 1 --reload-interval 0 --decision-log "$mode" \
        --decision-log-file "$work/decisions.log" > "$work/serve.log" 2>&1 &
    server_pid=$!
    port=""
    for _ in $(seq 1200); do
        port=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$work/serve.log" | head -1 | grep -oE '[0-9]+$' || true)
        [ -n "$port" ] && break
        sleep 0.5
    done
    python3 "$here/keepalive_client.py" --port "$port" --requests "$n" --warmup "$warm" --file "$work/requests-cg.tsv" >&2
    stop_server
    grep -E '^(summary|totals):' "$file" | head -1 | awk '{ print $2 }'
}
cg=""
if [ "${SKIP_CALLGRIND:-0}" != 1 ] && command -v valgrind > /dev/null; then
    cp "$bin/meshauthz" "$work/meshauthz-nodebug"
    strip --strip-debug "$work/meshauthz-nodebug"
    cgpolicies="$work/policies-$CALLGRIND_POLICIES"
    rm -rf "$cgpolicies"
    "$bin/MeshAuthzBench" --size "$CALLGRIND_POLICIES" --write-policies "$cgpolicies" --write-requests "$work/requests-cg.tsv" >&2
    distinct=$(wc -l < "$work/requests-cg.tsv")
    for mode in none all; do
        a=$(callgrind_total "$mode" 0 "$distinct")
        b=$(callgrind_total "$mode" "$CALLGRIND_REQUESTS" "$distinct")
        cg="$cg$mode $a $b"$'\n'
        log "callgrind $mode: $a $b"
    done
fi

{
    echo "# /ext_authz with and without the decision log"
    echo
    echo "- command: \`Benchmarks/decision_log.sh\` (RUNS=$RUNS, WRK_SECONDS=$WRK_SECONDS, HTTP_POLICIES=$HTTP_POLICIES)"
    echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(uname -sr)"
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    [ "$RUNS" -gt 0 ] && echo "| connections | none req/s | all req/s | all / none | none p99 µs | all p99 µs | lines dropped (all, per run) |"
    [ "$RUNS" -gt 0 ] && echo "|---:|---:|---:|---:|---:|---:|---:|"
    [ "$RUNS" -gt 0 ] && for c in $CONNECTIONS; do
        n=$(awk -v c="$c" '$1 == "none" && $2 == c { print $3 }' "$work/raw.txt" | median)
        a=$(awk -v c="$c" '$1 == "all" && $2 == c { print $3 }' "$work/raw.txt" | median)
        np=$(awk -v c="$c" '$1 == "none" && $2 == c { print $4 }' "$work/raw.txt" | median)
        ap=$(awk -v c="$c" '$1 == "all" && $2 == c { print $4 }' "$work/raw.txt" | median)
        d=$(awk -v c="$c" '$1 == "all" && $2 == c { printf "%s%s", sep, $6; sep = ", " }' "$work/raw.txt")
        awk -v c="$c" -v n="$n" -v a="$a" -v np="$np" -v ap="$ap" -v d="$d" \
            'BEGIN { printf "| %d | %.0f | %.0f | %.0f%% | %.0f | %.0f | %s |\n", c, n, a, 100 * a / n, np, ap, d }'
    done
    if [ -n "$cg" ]; then
        echo
        echo "Instructions per warm /ext_authz request (callgrind, all threads, user space; $CALLGRIND_POLICIES policies,"
        echo "(run with $CALLGRIND_REQUESTS requests − run with none) / $CALLGRIND_REQUESTS, both after the distinct requests once):"
        echo
        echo "| decision log | instructions, none | instructions, $CALLGRIND_REQUESTS requests | per request |"
        echo "|---|---:|---:|---:|"
        echo "$cg" | awk -v n="$CALLGRIND_REQUESTS" 'NF == 3 { printf "| %s | %.0f | %.0f | %.0f |\n", $1, $2, $3, ($3 - $2) / n; per[$1] = ($3 - $2) / n }
            END { if (per["all"] > 0) printf "\nnone / all per request: %.0f%% (the CPU-bound throughput ratio this predicts)\n", 100 * per["none"] / per["all"] }'
    fi
} > "$results"
cat "$results"
