#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for FUZZ_SECONDS, one after the other (`make fuzz`).
#   FUZZ_SECONDS   seconds per target (600)        FUZZ_TARGETS  names, space-separated, or "all"
#   FUZZ_RSS_MB    libFuzzer -rss_limit_mb (2048)  FUZZ_SCRATCH  build and run directory (.build-fuzz)
# A target is a directory of Fuzz/corpus (its seeds) with an executable Fuzz<Name> in Package.swift.
# New corpus entries, crash inputs and logs go to $FUZZ_SCRATCH/runs/<Name>/, never into Fuzz/corpus:
# Fuzz/README.md says how to keep a crash as a regression. Exits 1 when a target found something.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
FUZZ_TARGETS=${FUZZ_TARGETS:-all}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
FUZZ_SCRATCH=${FUZZ_SCRATCH:-.build-fuzz}

if [[ $FUZZ_TARGETS == all ]]; then
    targets=()
    for dir in Fuzz/corpus/*/; do targets+=("$(basename "$dir")"); done
else
    read -r -a targets <<<"$FUZZ_TARGETS"
fi

build() {
    "$SWIFT" build -c release --sanitize=fuzzer --scratch-path "$FUZZ_SCRATCH" --product "Fuzz$1" "${@:2}"
}

# Build everything first, so that a build error shows before any time is spent fuzzing.
for name in "${targets[@]}"; do
    [[ -d Fuzz/corpus/$name ]] || { echo "fuzz.sh: no Fuzz/corpus/$name (targets: $(ls Fuzz/corpus))" >&2; exit 2; }
    build "$name"
done
bin=$(build "${targets[0]}" --show-bin-path)

summary=()
found=0
for name in "${targets[@]}"; do
    run=$FUZZ_SCRATCH/runs/$name
    # Findings of an earlier run are not this run's: moved aside, so that FOUND means found now.
    if [ -d "$run/artifacts" ] && [ -n "$(ls -A "$run/artifacts")" ]; then
        mv "$run/artifacts" "$run/artifacts.$(date +%s)"
    fi
    mkdir -p "$run/corpus" "$run/artifacts"
    echo "== $name: ${FUZZ_SECONDS}s, new corpus entries in $run/corpus, log $run/fuzz.log"
    # The first directory receives new entries; the committed seeds are only read. `timeout` bounds a
    # fuzzer that stops answering (libFuzzer's own -timeout covers one slow input).
    dict=()
    [[ -f Fuzz/dictionaries/$name.dict ]] && dict=(-dict="Fuzz/dictionaries/$name.dict")
    status=0
    SWIFT_BACKTRACE=enable=no timeout --signal=INT --kill-after=30 "$((FUZZ_SECONDS + 120))" \
        "$bin/Fuzz$name" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb="$FUZZ_RSS_MB" -timeout=30 \
        -print_final_stats=1 -artifact_prefix="$run/artifacts/" "${dict[@]}" "$run/corpus" "Fuzz/corpus/$name" \
        >"$run/fuzz.log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/fuzz.log" | tail -1)
    seconds=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$run/fuzz.log" | tail -1)
    artifacts=$(find "$run/artifacts" -type f | wc -l)
    result=ok
    if [[ $status -ne 0 || $artifacts -ne 0 ]]; then
        result="FOUND (exit $status, $artifacts inputs in $run/artifacts)"
        found=1
        grep -E 'fuzz invariant broken|Fatal error|ERROR: libFuzzer|SUMMARY' "$run/fuzz.log" | head -5 || true
    fi
    summary+=("$(printf '%-20s runs %-12s seconds %-6s corpus %-6s %s' "$name" "${runs:-?}" "${seconds:-?}" \
        "$(find "$run/corpus" -type f | wc -l)" "$result")")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $found
