#!/usr/bin/env bash
# Create the virtualenv, install the pinned hosts and test tools from PyPI,
# and build + install this package (one release build) into it.
source "$(dirname "$0")/env.sh"

if [ ! -x "$PY" ]; then
    log "creating virtualenv $VENV"
    python3 -m venv "$VENV"
fi
log "installing Python dependencies"
"$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$PY" -m pip install --quiet --disable-pip-version-check -r "$ROOT/ci/requirements.txt"

log "building the extension module (release; target dir $CARGO_TARGET_DIR)"
rm -rf "$CACHE/wheels"
(cd "$ROOT" && "$VENV/bin/maturin" build --release --quiet --interpreter "$PY" --out "$CACHE/wheels")
"$PY" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$CACHE"/wheels/*.whl
