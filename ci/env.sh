# Shared environment of the ci/ scripts: one virtualenv and one cargo target
# directory outside the checkout, reused across runs when they exist.
# Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SZM_CACHE:-$HOME/.cache/sedonadb-zarr-meta}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="${SZM_VENV:-$CACHE/venv}"
PY="$VENV/bin/python"
mkdir -p "$CACHE"

log() { printf '\n==> %s\n' "$*" >&2; }
