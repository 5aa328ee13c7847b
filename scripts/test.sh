#!/usr/bin/env bash
# Runs every check and test of Gatehouse: the command the README gives and CI runs.
# Installs what the tests need when it is missing, so a fresh machine passes too.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use: the CLI tests signal the gateway with /bin/kill (procps).
need_apt=()
[ -x /bin/kill ] || [ -x /usr/bin/kill ] || need_apt+=(procps)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

echo "==> bash -n on the scripts"
for script in scripts/*.sh bench/run.sh; do bash -n "$script"; done

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Doc tests run separately (--all-targets skips them).
cargo test --doc --locked 2>&1 | tee -a "$log"
cargo test --all-targets --locked 2>&1 | tee -a "$log"

# One closing line for the whole run: the sum over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
