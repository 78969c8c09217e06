#!/usr/bin/env bash
# Set up, then run the demo on a catalogue it generates.
source "$(dirname "$0")/env.sh"
bash "$ROOT/ci/setup.sh"
"$PY" "$ROOT/examples/demo.py" "$@"
