#!/usr/bin/env bash
# Everything CI checks: set-up, lint, Rust unit tests, Python end-to-end tests.
source "$(dirname "$0")/env.sh"
bash "$ROOT/ci/setup.sh"
bash "$ROOT/ci/lint.sh"
cd "$ROOT"
log "cargo test"
PYO3_PYTHON="$PY" cargo test --release --workspace
log "pytest"
"$PY" -m pytest -q tests "$@"
