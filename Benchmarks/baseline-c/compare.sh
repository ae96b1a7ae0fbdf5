#!/bin/sh
# Throughput of the Swift MicroHTTPD wrapper vs the C libmicrohttpd baseline, with wrk.
# Servers pinned to CPU ${MICROHTTPD_BENCH_SERVER_CPU:-0}, wrk to CPU ${MICROHTTPD_BENCH_CLIENT_CPU:-1}.
# Knobs: MICROHTTPD_BENCH_SECONDS (5), MICROHTTPD_BENCH_CONNECTIONS (32), MICROHTTPD_BENCH_THREADS (1),
# MICROHTTPD_BENCH_ROUNDS (3).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
make -C "$here" >/dev/null
cd "$root"
scratch=${SCRATCH:-.build-http}
swift build -c release --product MicroHTTPDBench --scratch-path "$scratch" 2>&1 | grep -E 'error|warning: ' || true
taskset -c "${MICROHTTPD_BENCH_SERVER_CPU:-0}" "$(swift build -c release --scratch-path "$scratch" --show-bin-path)/MicroHTTPDBench"
