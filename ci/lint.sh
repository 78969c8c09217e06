#!/usr/bin/env bash
# Formatting and lint checks for Rust and Python (run by people and by CI).
source "$(dirname "$0")/env.sh"
cd "$ROOT"
log "cargo fmt --check"
cargo fmt --all -- --check
log "ruff"
"$VENV/bin/ruff" check python tests bench examples ci
"$VENV/bin/ruff" format --check python tests bench examples ci
log "layout (no import circles, files and functions within bounds)"
"$PY" "$ROOT/ci/check_layout.py"
log "extension module stubs"
"$PY" "$ROOT/ci/check_stubs.py"
if [ "${SZM_SKIP_CLIPPY:-0}" != 1 ]; then
    bash "$ROOT/ci/clippy.sh"
fi
