# Shared environment of the ci/ scripts: one virtualenv and one cargo target
# directory outside the checkout, reused across runs when they exist.
# Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SZM_CACHE:-$HOME/.cache/sedonadb-zarr-meta}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
log() { printf '\n==> %s\n' "$*" >&2; }

# The interpreter the virtualenv is made from: Python 3.12 or later where the
# machine has one (the icechunk package, which writes Icechunk repositories,
# needs it), else python3 (then Icechunk writes and their tests are skipped).
# SZM_PYTHON overrides.
base_python() {
    if [ -n "${SZM_PYTHON:-}" ]; then echo "$SZM_PYTHON"; return; fi
    local v candidate
    for v in 3.12 3.13; do
        if command -v "python$v" >/dev/null 2>&1 && "python$v" -c '' >/dev/null 2>&1; then
            command -v "python$v"; return
        fi
        if command -v pyenv >/dev/null 2>&1; then
            for candidate in "$(pyenv root)"/versions/"$v".*/bin/"python$v"; do
                if [ -x "$candidate" ]; then echo "$candidate"; return; fi
            done
        fi
    done
    echo "python3"
}
BASE_PY="$(base_python)"
PY_VERSION="$("$BASE_PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
VENV="${SZM_VENV:-$CACHE/venv-py$PY_VERSION}"
PY="$VENV/bin/python"
mkdir -p "$CACHE"
