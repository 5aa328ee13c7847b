#!/usr/bin/env bash
# Profile-guided release build of Gatehouse: the build our published figures come from.
#
#   scripts/build-pgo.sh        # -> target/pgo/release/gatehouse
#
# 1. builds an instrumented gatehouse (`-Cprofile-generate`) in target/pgo-gen,
# 2. trains it: bench/run.sh's modes (TRAIN_MODES) run against it with short rounds, so the
#    profile records which code the proxy, TLS, JWT, rate-limit, cache and balancing paths run,
# 3. merges the profiles with the llvm-profdata of rustc's LLVM version (installing the
#    Debian package llvm-<major> when it is missing),
# 4. builds gatehouse again with `-Cprofile-use`, which lays out hot code together and moves
#    cold branches out of the way: target/pgo/release/gatehouse.
#
# Environment overrides:
#   TRAIN_MODES="proxy tls jwt ratelimit cache stack balance"   bench modes used for training
#   TRAIN_DURATION=3s                                            length of each training round
#   LLVM_PROFDATA=PATH                                           an llvm-profdata to use
#
# A plain `cargo build --release` needs none of this and stays the way to build for
# development; see the README's "Release builds".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GEN_DIR=$TARGET_DIR/pgo-gen
USE_DIR=$TARGET_DIR/pgo
PROFILES=$TARGET_DIR/pgo-profiles
PROFDATA=$TARGET_DIR/pgo.profdata
TRAIN_MODES=${TRAIN_MODES:-proxy tls jwt ratelimit cache stack balance}
TRAIN_DURATION=${TRAIN_DURATION:-3s}

log() { printf '\033[1m[pgo] %s\033[0m\n' "$*" >&2; }
die() {
  printf '\033[31m[pgo] error: %s\033[0m\n' "$*" >&2
  exit 1
}

# The profile format follows LLVM's major version: the merger must be rustc's major.
LLVM_MAJOR=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
[[ -n $LLVM_MAJOR ]] || die "could not read the LLVM version from 'rustc -vV'"

# find_profdata: sets LLVM_PROFDATA to an llvm-profdata of major LLVM_MAJOR, or returns 1.
find_profdata() {
  local candidate version sysroot
  sysroot=$(rustc --print sysroot)
  for candidate in "${LLVM_PROFDATA:-}" "llvm-profdata-$LLVM_MAJOR" \
    "$sysroot"/lib/rustlib/*/bin/llvm-profdata llvm-profdata; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    version=$("$candidate" --version 2>/dev/null | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p' | head -n 1)
    if [[ $version == "$LLVM_MAJOR" ]]; then
      LLVM_PROFDATA=$(command -v "$candidate")
      return 0
    fi
  done
  return 1
}

if ! find_profdata; then
  log "no llvm-profdata for LLVM $LLVM_MAJOR; installing llvm-$LLVM_MAJOR with apt-get"
  sudo=()
  [[ $EUID -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "llvm-$LLVM_MAJOR" ||
    die "could not install llvm-$LLVM_MAJOR; set LLVM_PROFDATA to an llvm-profdata of LLVM $LLVM_MAJOR (rustup: 'rustup component add llvm-tools')"
  find_profdata || die "llvm-$LLVM_MAJOR is installed but has no llvm-profdata of LLVM $LLVM_MAJOR"
fi
log "llvm-profdata: $LLVM_PROFDATA (LLVM $LLVM_MAJOR, as rustc)"

cd "$ROOT"

# The upstream the training talks to is an ordinary build: its profile must not mix with
# gatehouse's (both link hyper and tokio).
log "cargo build --release --example bench_upstream"
cargo build --release --locked --example bench_upstream --target-dir "$TARGET_DIR"

log "instrumented build (target dir $GEN_DIR)"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$PROFILES" \
  cargo build --release --locked --bin gatehouse --target-dir "$GEN_DIR"
# The build's own programs (build scripts, proc macros) are instrumented too and leave their
# profiles in the same directory: only the training's may go into the merge.
rm -rf "$PROFILES"

# Training: the bench's own scenarios, short. Every gatehouse the bench starts ends with
# SIGTERM, a clean exit that writes its .profraw file. nginx runs too; it only costs time.
for mode in $TRAIN_MODES; do
  log "training: bench/run.sh $mode"
  GATEHOUSE_BIN=$GEN_DIR/release/gatehouse SKIP_BUILD=1 ROUNDS=1 WARMUP=1s \
    DURATION=$TRAIN_DURATION RESULTS_DIR=$TARGET_DIR/pgo-training \
    "$ROOT/bench/run.sh" "$mode" >/dev/null
done

shopt -s nullglob
raw=("$PROFILES"/*.profraw)
((${#raw[@]})) || die "training wrote no profiles into $PROFILES"
log "merging ${#raw[@]} profile(s) into $PROFDATA"
"$LLVM_PROFDATA" merge -o "$PROFDATA" "${raw[@]}"

log "optimized build (target dir $USE_DIR)"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$PROFDATA" \
  cargo build --release --locked --bin gatehouse --target-dir "$USE_DIR"

log "done: $USE_DIR/release/gatehouse"
log "benchmark it: GATEHOUSE_BIN=$USE_DIR/release/gatehouse SKIP_BUILD=1 bench/run.sh stack"
