#!/usr/bin/env bash
# lint and graph on a 1,000-service repo (1,000 ALLOW policies + 100 allow-nothing + 1,000 DestinationRules,
# 1,000 Deployments with their Services, ServiceAccounts and Namespaces): BENCHMARKS.md, "Policy analysis".
# Usage: Benchmarks/analysis.sh [BINARY]   (default: a release build under .build-lint-rel or .build)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-$(swift build -c release --show-bin-path)/meshauthz}
RUNS=${RUNS:-5}
DIR=$(mktemp -d /tmp/meshauthz-analysis.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
python3 Benchmarks/analysis_repo.py "$DIR"
"$BIN" generate --services "$DIR/services.yaml" --out "$DIR/policies" 2>/dev/null
echo "repo: $(ls "$DIR/policies" | wc -l) policy files, $(grep -c '^kind: AuthorizationPolicy' "$DIR"/policies/*.yaml | awk -F: '{s+=$2} END {print s}') AuthorizationPolicies, $(cat "$DIR"/workloads/*.yaml | grep -c '^kind: Deployment') Deployments"

measure() {  # name, command...: median wall and CPU (user+sys) seconds of RUNS runs, peak RSS of the last
  local name=$1; shift
  local walls=() cpus=()
  for _ in $(seq "$RUNS"); do
    # The last line: /usr/bin/time puts "Command exited with non-zero status N" first when it is not 0.
    /usr/bin/time -f "%e %U %S %M" -o "$DIR/time" "$@" > "$DIR/out" 2>/dev/null || true
    read -r wall user sys rss < <(tail -1 "$DIR/time")
    walls+=("$wall")
    cpus+=("$(echo "$user + $sys" | bc)")
  done
  local mid=$(( (RUNS + 1) / 2 ))
  printf '%-52s wall median %5s s, CPU median %5s s (%s runs), peak RSS %s MB\n' "$name" \
    "$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "${mid}p")" "$(printf '%s\n' "${cpus[@]}" | sort -n | sed -n "${mid}p")" \
    "$RUNS" "$(( rss / 1024 ))"
}

measure "lint policies workloads" "$BIN" lint "$DIR/policies" "$DIR/workloads"
measure "lint --output json" "$BIN" lint --output json "$DIR/policies" "$DIR/workloads"
measure "graph --format json" "$BIN" graph --format json "$DIR/policies" "$DIR/workloads"
measure "graph --format html" "$BIN" graph --format html "$DIR/policies" "$DIR/workloads"
measure "graph --from tenant-000 --to tenant-050 (isolated)" "$BIN" graph "$DIR/policies" "$DIR/workloads" --from tenant-000 --to tenant-050
measure "graph --from tenant-001 --to tenant-000 (reachable)" "$BIN" graph "$DIR/policies" "$DIR/workloads" --from tenant-001 --to tenant-000
measure "validate (the loader alone, policies only)" "$BIN" validate --policies "$DIR/policies"
