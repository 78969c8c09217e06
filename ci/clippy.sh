#!/usr/bin/env bash
# Rust lints (warnings are errors).
source "$(dirname "$0")/env.sh"
cd "$ROOT"
log "cargo clippy"
PYO3_PYTHON="$PY" cargo clippy --release --workspace --all-targets -- -D warnings
