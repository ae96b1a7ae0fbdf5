#!/usr/bin/env bash
# `make bench`: the benchmarks of issue 3, side by side in one run. Results go to stdout and to
# Benchmarks/out/results.md (BENCHMARKS.md quotes a run of it).
#
#  1. In-process decisions, compiled matcher vs reference evaluator, on generated meshes of 10, 1,000 and
#     10,000 AuthorizationPolicies (one process per size, so resident memory is that size's alone; each
#     size RUNS times, medians kept): compile time, RSS, median/p99 ns per decision, decisions/s on one core.
#  2. HTTP with wrk: /ext_authz and POST /v1/check on `meshauthz serve` (HTTP_POLICIES generated policies)
#     vs the C libmicrohttpd baseline (Benchmarks/baseline-c, same daemon options, always 200): 1 and 32
#     keep-alive connections, server and wrk pinned to different cores, RUNS runs each, medians kept.
#  3. User-space instructions per /ext_authz request under callgrind (a run of CALLGRIND_REQUESTS keep-alive
#     requests minus a run of none, divided by the count), meshauthz vs the C baseline.
#
# Knobs (environment): SIZES ("10 1000 10000"), RUNS (3), SECONDS_PER_MEASURE (3), WRK_SECONDS (5),
# HTTP_POLICIES (10000), CALLGRIND_POLICIES (1000), CALLGRIND_REQUESTS (2000), SERVER_CPU (0), CLIENT_CPU (1),
# SCRATCH (.build-bench), SKIP_HTTP=1, SKIP_CALLGRIND=1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
SIZES=${SIZES:-"10 1000 10000"}
RUNS=${RUNS:-3}
SECONDS_PER_MEASURE=${SECONDS_PER_MEASURE:-3}
WRK_SECONDS=${WRK_SECONDS:-5}
HTTP_POLICIES=${HTTP_POLICIES:-10000}
CALLGRIND_POLICIES=${CALLGRIND_POLICIES:-1000}
CALLGRIND_REQUESTS=${CALLGRIND_REQUESTS:-2000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SCRATCH=${SCRATCH:-.build-bench}
out="$here/out"
work="$out/work"
mkdir -p "$out" "$work"
results="$out/results.md"

log() { echo "== $*" >&2; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

log "building (release, scratch $SCRATCH)"
swift build -c release --scratch-path "$SCRATCH" --product MeshAuthzBench 2>&1 | grep -E "error|warning: unre" || true
bin=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)
bench="$bin/MeshAuthzBench"
[ -x "$bench" ] || { echo "MeshAuthzBench did not build" >&2; exit 1; }

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "# meshauthz benchmark run"
    echo
    echo "- command: \`make bench\` (Benchmarks/run.sh; RUNS=$RUNS, SECONDS_PER_MEASURE=$SECONDS_PER_MEASURE, WRK_SECONDS=$WRK_SECONDS)"
    echo "- machine: $(nproc) CPUs ($cpu_model), $(uname -sr), $(swift --version 2>&1 | head -1)"
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
} > "$results"

# ---------------------------------------------------------------------------------------------------------
# 1. In-process
log "in-process decisions: sizes $SIZES, $RUNS runs each, pinned to CPU $CLIENT_CPU"
rows="$work/rows.txt"
: > "$rows"
for size in $SIZES; do
    for run in $(seq "$RUNS"); do
        log "  $size policies, run $run"
        taskset -c "$CLIENT_CPU" "$bench" --size "$size" --seconds "$SECONDS_PER_MEASURE" | tee "$work/inprocess-$size-$run.txt" \
            | grep '^ROW|' >> "$rows"
    done
done
{
    echo "## 1. Decisions in process (one core), compiled matcher vs reference evaluator"
    echo
    echo "Generated meshes (Benchmarks/MeshAuthzBench/Mesh.swift), 4,096 distinct requests drawn over all services."
    echo "Median and p99: single decisions timed one by one, each request's bytes read just before (as a server has"
    echo "just parsed it). Decisions/s: back-to-back over the 4,096 requests, not warmed. Medians of $RUNS runs."
    echo "Load: YAML parse + validation (PolicyLoader). RSS: whole process after load / after compile (three compiles)."
    echo
    echo "| policies | rules | load ms | compile ms | RSS loaded MiB | RSS compiled MiB | compiled median ns | compiled p99 ns | compiled decisions/s | reference median ns | reference p99 ns | reference decisions/s | speed-up (median) | speed-up (throughput) | disagreements |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for size in $(cut -d'|' -f2 "$rows" | sort -un); do
        pick() { awk -F'|' -v s="$size" -v c="$1" '$2 == s { print $c }' "$rows" | median; }
        rules=$(pick 3); load=$(pick 4); compile=$(pick 5); rss1=$(pick 6); rss2=$(pick 7)
        fm=$(pick 8); fp=$(pick 9); fs=$(pick 10); rm=$(pick 11); rp=$(pick 12); rs=$(pick 13); dis=$(pick 14)
        awk -v size="$size" -v rules="$rules" -v load="$load" -v compile="$compile" -v rss1="$rss1" -v rss2="$rss2" \
            -v fm="$fm" -v fp="$fp" -v fs="$fs" -v rm="$rm" -v rp="$rp" -v rs="$rs" -v dis="$dis" 'BEGIN {
            printf "| %d | %d | %.0f | %.1f | %d | %d | %d | %d | %.0f | %d | %d | %.0f | %.0fx | %.0fx | %d |\n",
                size, rules, load, compile, rss1, rss2, fm, fp, fs, rm, rp, rs, rm / fm, fs / rs, dis }'
    done
    first=$(cut -d'|' -f2 "$rows" | sort -un | head -1); last=$(cut -d'|' -f2 "$rows" | sort -un | tail -1)
    fmFirst=$(awk -F'|' -v s="$first" '$2 == s { print $8 }' "$rows" | median)
    fmLast=$(awk -F'|' -v s="$last" '$2 == s { print $8 }' "$rows" | median)
    echo
    awk -v a="$fmFirst" -v b="$fmLast" -v f="$first" -v l="$last" 'BEGIN { printf "Compiled median at %d policies / at %d: %.2fx.\n", l, f, b / a }'
    echo
} >> "$results"

# ---------------------------------------------------------------------------------------------------------
# 2. HTTP with wrk
server_pid=""
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
trap stop_server EXIT

# Starts "$@" in the background, pinned, logging to $1.log; sets server_pid and port (from "listening on").
start_server() {
    local name=$1; shift
    "$@" > "$work/$name.log" 2>&1 &
    server_pid=$!
    port=""
    for _ in $(seq 1200); do
        port=$(grep -oE 'listening on ([a-z]+://)?127\.0\.0\.1:[0-9]+' "$work/$name.log" 2>/dev/null | head -1 | grep -oE '[0-9]+$' || true)
        [ -n "$port" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/$name.log" >&2; return 1; }
        sleep 0.5
    done
    echo "$name did not start" >&2
    return 1
}

# wrk_runs NAME URL SCRIPT CONNECTIONS: RUNS runs; prints "requests/s p50_us p99_us" medians.
wrk_runs() {
    local name=$1 url=$2 script=$3 connections=$4
    : > "$work/wrk-$name-$connections.txt"
    for run in $(seq "$RUNS"); do
        taskset -c "$CLIENT_CPU" wrk -t1 -c"$connections" -d"${WRK_SECONDS}s" --latency -s "$script" "$url" \
            > "$work/wrk-$name-$connections-$run.txt"
        awk '
            function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
            /Requests\/sec/ { rps = $2 }
            $1 == "50%" { p50 = us($2) }
            $1 == "99%" { p99 = us($2) }
            END { print rps, p50, p99 }' "$work/wrk-$name-$connections-$run.txt" >> "$work/wrk-$name-$connections.txt"
    done
    local f="$work/wrk-$name-$connections.txt"
    echo "$(cut -d' ' -f1 "$f" | median) $(cut -d' ' -f2 "$f" | median) $(cut -d' ' -f3 "$f" | median)"
}

if [ "${SKIP_HTTP:-0}" != 1 ]; then
    if ! command -v wrk > /dev/null; then
        log "wrk is missing: skipping HTTP (apt-get install -y wrk)"
    elif ! swift build -c release --scratch-path "$SCRATCH" --product meshauthz 2>&1 | grep -E "error" ; [ ! -x "$bin/meshauthz" ]; then
        log "meshauthz did not build: skipping HTTP"
    else
        make -s -C "$here/baseline-c" OUT="$out" > /dev/null
        policies="$work/policies-$HTTP_POLICIES"
        rm -rf "$policies"
        "$bench" --size "$HTTP_POLICIES" --write-policies "$policies" --write-wrk "$work/ext_authz.lua" \
            --write-wrk-check "$work/check.lua" --write-requests "$work/requests.tsv" >&2
        declare -A result
        # measure NAME: both endpoints' wrk runs at 1 and 32 connections against the server just started.
        measure() {
            for c in 1 32; do
                result[$1-ext-$c]=$(wrk_runs "$1-ext" "http://127.0.0.1:$port" "$work/ext_authz.lua" $c)
                result[$1-check-$c]=$(wrk_runs "$1-check" "http://127.0.0.1:$port" "$work/check.lua" $c)
            done
            stop_server
        }
        log "HTTP: C baseline on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU"
        start_server baseline taskset -c "$SERVER_CPU" "$out/baseline" 0 1
        measure baseline
        log "HTTP: meshauthz serve ($HTTP_POLICIES policies, --threads 1) on CPU $SERVER_CPU"
        start_server meshauthz taskset -c "$SERVER_CPU" "$bin/meshauthz" serve --policies "$policies" --listen 127.0.0.1:0 \
            --threads 1 --reload-interval 0 --max-resources 1000000
        measure meshauthz
        {
            echo "## 2. HTTP: meshauthz vs the C libmicrohttpd baseline (wrk)"
            echo
            echo "Server pinned to CPU $SERVER_CPU (one libmicrohttpd thread, epoll), wrk -t1 pinned to CPU $CLIENT_CPU, keep-alive,"
            echo "${WRK_SECONDS} s per run, medians of $RUNS runs. meshauthz serves $HTTP_POLICIES generated policies; the requests cycle"
            echo "through $(wc -l < "$work/requests.tsv") distinct requests of that mesh. The baseline answers 200 with an empty body."
            echo
            echo "| endpoint | connections | baseline req/s | meshauthz req/s | meshauthz / baseline | baseline p50 µs | meshauthz p50 µs | baseline p99 µs | meshauthz p99 µs |"
            echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
            for endpoint in ext check; do
                label=$([ $endpoint = ext ] && echo "/ext_authz" || echo "POST /v1/check")
                for c in 1 32; do
                    read -r brps bp50 bp99 <<< "${result[baseline-$endpoint-$c]}"
                    read -r mrps mp50 mp99 <<< "${result[meshauthz-$endpoint-$c]}"
                    awk -v l="$label" -v c=$c -v brps="$brps" -v mrps="$mrps" -v bp50="$bp50" -v mp50="$mp50" -v bp99="$bp99" -v mp99="$mp99" \
                        'BEGIN { printf "| %s | %d | %.0f | %.0f | %.0f%% | %.0f | %.0f | %.0f | %.0f |\n", l, c, brps, mrps, 100 * mrps / brps, bp50, mp50, bp99, mp99 }'
                done
            done
            echo
        } >> "$results"
    fi
fi

# ---------------------------------------------------------------------------------------------------------
# 3. Instructions per /ext_authz request (callgrind)
# callgrind_total NAME N WARM COMMAND...: total instructions of a server run that answered WARM + N requests.
# Swift seeds its hashing per process: SWIFT_DETERMINISTIC_HASHING makes the start-up of the two runs
# identical, so their difference is the requests alone.
callgrind_total() {
    local name=$1 n=$2 warm=$3; shift 3
    local file="$work/callgrind-$name-$warm-$n.out"
    rm -f "$file"
    SWIFT_DETERMINISTIC_HASHING=1 start_server "callgrind-$name-$warm-$n" valgrind --tool=callgrind --callgrind-out-file="$file" "$@"
    if [ $((n + warm)) -gt 0 ]; then
        python3 "$here/keepalive_client.py" --port "$port" --requests "$n" --warmup "$warm" --file "$work/requests-cg.tsv" >&2
    fi
    stop_server
    grep -E '^(summary|totals):' "$file" | head -1 | awk '{ print $2 }'
}

if [ "${SKIP_CALLGRIND:-0}" != 1 ] && [ "${SKIP_HTTP:-0}" != 1 ] && command -v valgrind > /dev/null && [ -x "$bin/meshauthz" ]; then
    log "callgrind: $CALLGRIND_REQUESTS keep-alive /ext_authz requests vs none ($CALLGRIND_POLICIES policies), cold and warm"
    make -s -C "$here/baseline-c" OUT="$out" > /dev/null
    # valgrind cannot read the DWARF of Swift binaries: a copy without debug info.
    cp "$bin/meshauthz" "$work/meshauthz-nodebug"
    strip --strip-debug "$work/meshauthz-nodebug"
    cgpolicies="$work/policies-$CALLGRIND_POLICIES"
    rm -rf "$cgpolicies"
    "$bench" --size "$CALLGRIND_POLICIES" --write-policies "$cgpolicies" --write-requests "$work/requests-cg.tsv" >&2
    distinct=$(wc -l < "$work/requests-cg.tsv")
    serve=("$work/meshauthz-nodebug" serve --policies "$cgpolicies" --listen 127.0.0.1:0 --threads 1 --reload-interval 0)
    # Cold: the requests are new to the server. Warm: every distinct request was sent once before both runs,
    # so each answer (built once per deciding rule and kept, see ResponseCache) is already there.
    m0=$(callgrind_total meshauthz 0 0 "${serve[@]}")
    mn=$(callgrind_total meshauthz "$CALLGRIND_REQUESTS" 0 "${serve[@]}")
    w0=$(callgrind_total meshauthz 0 "$distinct" "${serve[@]}")
    wn=$(callgrind_total meshauthz "$CALLGRIND_REQUESTS" "$distinct" "${serve[@]}")
    b0=$(callgrind_total baseline 0 0 "$out/baseline" 0 1)
    bn=$(callgrind_total baseline "$CALLGRIND_REQUESTS" 0 "$out/baseline" 0 1)
    {
        echo "## 3. Instructions per /ext_authz request (valgrind --tool=callgrind)"
        echo
        echo "All threads, user space; (run with $CALLGRIND_REQUESTS keep-alive requests − run with none) / $CALLGRIND_REQUESTS."
        echo "meshauthz serves $CALLGRIND_POLICIES generated policies (--threads 1 --reload-interval 0); same requests to the baseline."
        echo "Warm: both meshauthz runs first send the $distinct distinct requests once (answers already built)."
        echo
        echo "| server | instructions, none | instructions, $CALLGRIND_REQUESTS requests | per request | / baseline |"
        echo "|---|---:|---:|---:|---:|"
        awk -v a="$b0" -v b="$bn" -v n="$CALLGRIND_REQUESTS" 'BEGIN { printf "| C baseline | %.0f | %.0f | %.0f | 1.00x |\n", a, b, (b - a) / n }'
        awk -v a="$m0" -v b="$mn" -v n="$CALLGRIND_REQUESTS" -v a0="$b0" -v an="$bn" 'BEGIN { printf "| meshauthz /ext_authz, cold | %.0f | %.0f | %.0f | %.2fx |\n", a, b, (b - a) / n, (b - a) / (an - a0) }'
        awk -v a="$w0" -v b="$wn" -v n="$CALLGRIND_REQUESTS" -v a0="$b0" -v an="$bn" 'BEGIN { printf "| meshauthz /ext_authz, warm | %.0f | %.0f | %.0f | %.2fx |\n", a, b, (b - a) / n, (b - a) / (an - a0) }'
        echo
    } >> "$results"
fi

cat "$results"
