#!/usr/bin/env bash
# Create the virtualenv, install the pinned hosts and test tools from PyPI,
# and build + install this package (one release build) into it.
source "$(dirname "$0")/env.sh"

if [ ! -x "$PY" ]; then
    log "creating virtualenv $VENV (Python $PY_VERSION from $BASE_PY)"
    "$BASE_PY" -m venv "$VENV"
fi
case "$PY_VERSION" in
    3.1[0-1]) log "Python $PY_VERSION: the icechunk package needs Python 3.12 or later, so writing Icechunk repositories (and its tests) is unavailable; set SZM_PYTHON to a python3.12 to enable it" ;;
esac
log "installing Python dependencies"
"$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$PY" -m pip install --quiet --disable-pip-version-check -r "$ROOT/ci/requirements.txt"

log "building the extension module (release; target dir $CARGO_TARGET_DIR)"
rm -rf "$CACHE/wheels"
(cd "$ROOT" && "$VENV/bin/maturin" build --release --quiet --interpreter "$PY" --out "$CACHE/wheels")
"$PY" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$CACHE"/wheels/*.whl
