#!/usr/bin/env bash
# The wheels benchmarks/gpu_subset.sh installs on a CUDA machine that has torch (CUDA), aiohttp, numpy, pandas,
# pyarrow, pyyaml, jinja2, matplotlib, prometheus-client and rich but none of orpheus-bench's other dependencies
# and no network: snac, pydantic (pydantic-core, annotated-types, typing-inspection, typing-extensions), gguf,
# orjson (the hot path decodes token events with it; without it the numbers would be json.loads's),
# and orpheus-bench itself, each at the version this checkout's virtualenv has. Locust is not needed: only the
# Locust adapter imports it, and no GPU step uses it.
#
# Usage: benchmarks/gpu_wheels.sh OUT_DIR [PYTHON_VERSION]
#   PYTHON_VERSION of the target machine's python3 (default 3.12, the CUDA image's); binary wheels are taken for
#   CPython on manylinux x86_64. Run it here (it needs PyPI), carry OUT_DIR to the GPU machine, and pass it to
#   gpu_subset.sh --wheels. Environment: PYTHON (default .venv/bin/python) is the Python whose versions are used.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:?usage: benchmarks/gpu_wheels.sh OUT_DIR [PYTHON_VERSION]}"
pyver="${2:-3.12}"
py="${PYTHON:-.venv/bin/python}"
packages=(snac pydantic pydantic-core annotated-types typing-inspection typing-extensions gguf orjson)

mapfile -t pins < <("$py" - "${packages[@]}" <<'EOF'
import importlib.metadata as m
import sys

for name in sys.argv[1:]:
    print(f"{name}=={m.version(name)}")
EOF
)
mkdir -p "$out"
rm -f "$out"/*.whl
"$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$pyver" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$out" "${pins[@]}"
"$py" -m pip wheel -q --disable-pip-version-check --no-deps -w "$out" .
echo "gpu_wheels: $(ls "$out"/*.whl | wc -l) wheels, $(du -sh "$out" | cut -f1) in $out for CPython $pyver:"
ls "$out"
