#!/usr/bin/env bash
# The GPU subset of issue 9's benchmarks in one go (a few minutes on one CUDA GPU):
#   1. SNAC decode throughput with --device cuda at 1/4/12/32/64 streams (benchmarks/decode_throughput.py:
#      forward-pass cost by window length, then reference per-stream vs service vs batched vs chunked);
#   2. harness overhead with decode on, on the GPU, at 1/16/64/256 streams (benchmarks/harness_overhead.py).
# It stops at once, with exit status 3, when torch sees no CUDA device (2: a Python package is missing).
#
# Usage: benchmarks/gpu_subset.sh [OUT_DIR]      (OUT_DIR, or $OUT if set, receives one log per step)
# Environment: PYTHON (default .venv/bin/python, else python3), STEP_TIMEOUT_S (default 240 per step),
#   DECODE_STREAMS (1,4,12,32,64), OVERHEAD_STREAMS (1,16,64,256), DECODE_ARGS / OVERHEAD_ARGS (extra flags).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
    py=.venv/bin/python
else
    py=python3
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
out="${1:-${OUT:-}}"
step_timeout="${STEP_TIMEOUT_S:-240}"
decode_streams="${DECODE_STREAMS:-1,4,12,32,64}"
overhead_streams="${OVERHEAD_STREAMS:-1,16,64,256}"

# Fail fast and say why: no CUDA is the common case on a laptop or CI runner.
status=0
"$py" - <<'EOF' || status=$?
import importlib.util
import sys

missing = [m for m in ("torch", "snac", "aiohttp", "pydantic", "numpy", "yaml") if importlib.util.find_spec(m) is None]
if missing:
    print(f"gpu_subset.sh: missing Python packages: {', '.join(missing)} ({sys.executable}); "
          "install the project first (pip install -e .) or set PYTHON", file=sys.stderr)
    sys.exit(2)
import torch

if not torch.cuda.is_available():
    print(f"gpu_subset.sh: torch.cuda.is_available() is False (torch {torch.__version__}, CUDA build "
          f"{torch.version.cuda or 'none'}): this script needs a CUDA GPU. CPU numbers are in benchmarks/README.md; "
          "run benchmarks/harness_overhead.py and benchmarks/decode_throughput.py without --device cuda.",
          file=sys.stderr)
    sys.exit(3)
props = torch.cuda.get_device_properties(0)
print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs; "
      f"torch {torch.__version__} (CUDA {torch.version.cuda}); python {sys.version.split()[0]}")
EOF
if [[ $status -ne 0 ]]; then
    exit "$status"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
echo "CPU cores: $(nproc), load avg: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"

run_step() {  # name, then the command; output to the console and, with OUT_DIR, to OUT_DIR/name.txt
    local name="$1"
    shift
    echo
    echo "==== $name: $* (limit ${step_timeout} s)"
    local start=$SECONDS rc=0
    if [[ -n "$out" ]]; then
        mkdir -p "$out"
        timeout "$step_timeout" "$@" 2>&1 | tee "$out/$name.txt" || rc=$?
    else
        timeout "$step_timeout" "$@" 2>&1 || rc=$?
    fi
    echo "==== $name: exit $rc after $((SECONDS - start)) s"
    return "$rc"
}

failed=0
# Batching as DecodeService uses by default on CUDA (orpheus_bench.audio.service.default_batching).
# shellcheck disable=SC2086  # the *_ARGS variables are word lists on purpose
run_step decode_throughput "$py" benchmarks/decode_throughput.py --device cuda --streams "$decode_streams" \
    --skip fidelity --max-batch 32 --max-wait-ms 2 ${DECODE_ARGS:-} || failed=1
# shellcheck disable=SC2086
run_step harness_overhead "$py" benchmarks/harness_overhead.py --decode on --device cuda \
    --streams "$overhead_streams" --frames-on 24 --level-timeout-s 60 ${OVERHEAD_ARGS:-} || failed=1
exit "$failed"
