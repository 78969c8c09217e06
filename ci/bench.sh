#!/usr/bin/env bash
# Set up, then run the benchmark (bench/run.py; pass --quick for a 10x smaller run).
source "$(dirname "$0")/env.sh"
bash "$ROOT/ci/setup.sh"
"$PY" -m pip install --quiet --disable-pip-version-check -r "$ROOT/bench/requirements.txt"
"$PY" "$ROOT/bench/run.py" "$@"
