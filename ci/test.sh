#!/usr/bin/env bash
# Everything CI checks: set-up, lint, Rust unit tests, Python end-to-end tests.
source "$(dirname "$0")/env.sh"
bash "$ROOT/ci/setup.sh"
# Formatting checks first (cheap), clippy after the Rust tests, pytest last.
SZM_SKIP_CLIPPY=1 bash "$ROOT/ci/lint.sh"
cd "$ROOT"
log "cargo test"
PYO3_PYTHON="$PY" cargo test --release --workspace
# The cluster's roles and client (tests/test_cluster.py): built with the features the tests
# just built, so no dependency is compiled again.
log "building zarr-meta-cluster"
PYO3_PYTHON="$PY" cargo build --release --workspace --bins
export SZM_CLUSTER_BIN="$CARGO_TARGET_DIR/release/zarr-meta-cluster"
bash "$ROOT/ci/clippy.sh"
log "pytest"
# tests/test_install.py installs this wheel into a fresh virtualenv and runs the README there.
export SZM_WHEEL_DIR="$CACHE/wheels"
# The whole run (pytest and every process it starts) must stay under 8 GB resident:
# ci/peak_rss.py prints the peak and stops the run if it ever holds more.
"$PY" "$ROOT/ci/peak_rss.py" --limit-gb 8 -- "$PY" -m pytest -q tests "$@"
