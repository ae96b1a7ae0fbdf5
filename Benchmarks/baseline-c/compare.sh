#!/bin/sh
# Throughput of the Swift MicroHTTPD wrapper vs the C libmicrohttpd baseline, with wrk.
# Servers pinned to CPU ${MICROHTTPD_BENCH_SERVER_CPU:-0}, wrk to CPU ${MICROHTTPD_BENCH_CLIENT_CPU:-1}.
# Knobs: MICROHTTPD_BENCH_SECONDS (5), MICROHTTPD_BENCH_CONNECTIONS (32), MICROHTTPD_BENCH_THREADS (1).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
make -C "$here" >/dev/null
cd "$root"
scratch=${SCRATCH:-.build-http}
swift build -c release -Xswiftc -enable-testing --build-tests --scratch-path "$scratch" 2>&1 | grep -E 'error|warning: ' || true
MICROHTTPD_BENCH=1 taskset -c "${MICROHTTPD_BENCH_SERVER_CPU:-0}" \
    swift test -c release -Xswiftc -enable-testing --skip-build --scratch-path "$scratch" \
    --filter 'MicroHTTPDTests.ThroughputBenchmark' 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]|^Building|^Build complete'
