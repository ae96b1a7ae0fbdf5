#!/usr/bin/env bash
# Installs what building, running and testing meshauthz needs, and only what is missing: safe to run
# again and again (`make deps` does). Debian packages via apt-get (with sudo when not root), Python
# packages of requirements-test.txt via pip. The Swift toolchain itself is not installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the headless browser of the graph page test (Tests/e2e/test_graph_page.py); binutils: readelf (test_dist.py).
APT_PACKAGES=(libmicrohttpd-dev libgnutls28-dev nginx wrk pkg-config openssl binutils chromium)
PYTHON=${PYTHON:-python3}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "deps: apt-get install ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python: only when a requirement is missing or too old (no network when all are satisfied).
if ! "$PYTHON" scripts/requirements-satisfied.py requirements-test.txt; then
  echo "deps: pip install -r requirements-test.txt"
  pip=("$PYTHON" -m pip install -q --disable-pip-version-check -r requirements-test.txt)
  if ! "${pip[@]}" 2>/tmp/meshauthz-pip.err; then
    if grep -q externally-managed /tmp/meshauthz-pip.err; then
      # Debian's system Python (PEP 668): install for this user/system anyway, as CI does as root
      "${pip[@]}" --break-system-packages
    else
      cat /tmp/meshauthz-pip.err >&2
      exit 1
    fi
  fi
fi
