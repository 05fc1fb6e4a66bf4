#!/usr/bin/env bash
# The GPU subset in one prepared run, about 8 minutes on one CUDA GPU (every step has its own time limit):
#   decode_throughput      benchmarks/decode_throughput.py --device cuda: forward-pass cost by window length and
#                          batch, then reference per-stream vs the service vs batched vs chunked, 1/4/16/64 streams;
#   decode_batches         benchmarks/gpu_decode_batches.py: decode windows per second by max_batch (1/4/16/64),
#                          reference vs chunked windows, 1/4/16/64 closed-loop streams;
#   sim_reference          orpheus-bench run --decode reference --device cuda, 1/4/16/64 streams, against
#   sim_chunked            `orpheus-bench simulate` pacing every stream at real time (85 tokens/s); then chunked;
#   max_streams            benchmarks/max_streams.py: streams one client process drives, decode off;
#   max_streams_processes  benchmarks/max_streams.py --processes 16: the same spread over 16 client processes.
#
# Usage: benchmarks/gpu_subset.sh [--device cuda|cpu] [--quick] [--wheels DIR] [--bundle] OUT_DIR
#   OUT_DIR (or $OUT) receives everything: gpu_subset.txt (all that was printed), logs/<step>.txt and runs/ (the
#   run directories). --bundle packs logs/ and runs/ into gpu_subset.tar.gz instead (the device tool brings back at
#   most 8 files). --wheels DIR first installs the wheels benchmarks/gpu_wheels.sh made (pip --no-index --no-deps)
#   into a temporary folder on PYTHONPATH: for a machine with torch but not our other dependencies. The
#   checkout's own orpheus_bench is imported before the wheel's (the same code when the wheel is fresh; the
#   preflight prints which); the orpheus-bench wheel supplies the package's metadata.
#   --device cpu --quick is the dry run: every step, tiny sizes, on a CPU machine.
# Exit status: 0 every step passed; 1 a step failed or could not run; 2 a Python package is missing; 3 no CUDA.
# Environment: PYTHON (default .venv/bin/python, else python3); STEP_TIMEOUT_S overrides every step's limit;
#   DECODE_ARGS, BATCH_ARGS, SIM_ARGS, MAX_STREAMS_ARGS, PROCESSES_ARGS are appended to their steps' commands.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
device=cuda quick=0 wheels="" bundle=0 out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        --wheels) wheels="$2"; shift 2 ;;
        --bundle) bundle=1; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        -*) echo "gpu_subset.sh: unknown option $1" >&2; exit 2 ;;
        *) out="$1"; shift ;;
    esac
done
out="${out:-${OUT:-}}"
if [[ -z "$out" ]]; then
    echo "gpu_subset.sh: give the output folder (OUT_DIR or \$OUT)" >&2
    exit 2
fi
if [[ "$device" != cuda* && "$device" != cpu ]]; then
    echo "gpu_subset.sh: --device is cuda, cuda:N or cpu, not $device" >&2
    exit 2
fi
if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
    py=.venv/bin/python
else
    py=python3
fi
mkdir -p "$out/logs" "$out/runs"
out="$(cd "$out" && pwd)"
exec > >(tee -a "$out/gpu_subset.txt") 2>&1
export PYTHONUNBUFFERED=1
start_all=$SECONDS
echo "# gpu_subset.sh $(date -u +%Y-%m-%dT%H:%M:%SZ): device $device, quick $quick, python $py, out $out"

if [[ -n "$wheels" ]]; then
    site="$(mktemp -d "${TMPDIR:-/tmp}/gpu-subset-site.XXXXXX")"
    echo "installing $(ls "$wheels"/*.whl | wc -l) wheels from $wheels into $site"
    "$py" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
        --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$root:$site${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
fi

# Fail fast and say why: a missing package (2) or, for --device cuda, no CUDA device (3).
status=0
DEVICE="$device" "$py" - <<'EOF' || status=$?
import importlib.metadata as md
import importlib.util
import os
import sys

need = ("torch", "snac", "aiohttp", "pydantic", "numpy", "yaml", "pandas", "rich", "orpheus_bench")
missing = [m for m in need if importlib.util.find_spec(m) is None]
if missing:
    print(f"gpu_subset.sh: missing Python packages: {', '.join(missing)} ({sys.executable}); give --wheels DIR "
          "(benchmarks/gpu_wheels.sh makes it) or install the project (pip install -e .)", file=sys.stderr)
    sys.exit(2)
import torch

import orpheus_bench

versions = ", ".join(f"{p} {md.version(p)}" for p in ("snac", "pydantic", "aiohttp", "numpy", "orpheus-bench"))
print(f"python {sys.version.split()[0]} ({sys.executable}); torch {torch.__version__}; {versions}")
print(f"orpheus_bench from {os.path.dirname(orpheus_bench.__file__)}")
if os.environ["DEVICE"].startswith("cuda"):
    if not torch.cuda.is_available():
        print(f"gpu_subset.sh: torch.cuda.is_available() is False (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda or 'none'}): this script needs a CUDA GPU; --device cpu --quick is its dry run",
              file=sys.stderr)
        sys.exit(3)
    props = torch.cuda.get_device_properties(0)
    print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs; "
          f"CUDA {torch.version.cuda}")
EOF
if [[ $status -ne 0 ]]; then
    exit "$status"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
echo "CPU cores: $(nproc), load avg: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"

steps=()
failed=0
run_step() {  # name, limit in seconds, then the command; output to the console and to logs/name.txt
    local name="$1" limit="${STEP_TIMEOUT_S:-$2}"
    shift 2
    echo
    echo "==== $name: $* (limit ${limit} s)"
    local start=$SECONDS rc=0
    timeout --kill-after=10 "$limit" "$@" > >(tee "$out/logs/$name.txt") 2>&1 || rc=$?
    echo "==== $name: exit $rc after $((SECONDS - start)) s"
    steps+=("$name: exit $rc, $((SECONDS - start)) s")
    if [[ $rc -ne 0 ]]; then
        failed=1
    fi
}

if [[ $quick -eq 1 ]]; then
    streams=1,2 levels=1,2 batches=1,2
    decode_sizes=(--frames 4 --repeat 1 --skip fidelity,cost)
    batch_sizes=(--frames 4)
    sim_load=(--requests-per-level 2) sim_frames=8
    ms_sizes=(--paths stream --cpu-streams 2 --levels 2 --duration-s 2 --settle-s 0.5 --breakdown 0)
    proc_sizes=(--paths streamx2 --cpu-streams '' --levels 4 --duration-s 2 --settle-s 0.5 --breakdown 0)
else
    streams=1,4,16,64 levels=1,4,16,64 batches=1,4,16,64
    decode_sizes=(--skip fidelity --repeat 5)
    batch_sizes=(--frames 24)
    sim_load=(--duration-per-level 8) sim_frames=24
    # One path per step (the step limits hold 4 levels of one path, not 3 paths interleaved): the default
    # stream transport in one process, then the same spread over 16 processes (up to 1024 streams: the one simulator
    # process holds at most 1024 slots, and its own pace is the limit long before that).
    ms_sizes=(--paths stream --cpu-streams 256 --levels 128,256,512,1024 --duration-s 6 --breakdown 256)
    proc_sizes=(--paths streamx16 --cpu-streams '' --levels 256,512,1024 --duration-s 6 --breakdown 0)
fi

# shellcheck disable=SC2086  # the *_ARGS variables are word lists on purpose
run_step decode_throughput 90 "$py" benchmarks/decode_throughput.py --device "$device" --streams "$streams" \
    --max-batch 32 --max-wait-ms 2 "${decode_sizes[@]}" ${DECODE_ARGS:-}
# shellcheck disable=SC2086
run_step decode_batches 90 "$py" benchmarks/gpu_decode_batches.py --device "$device" --streams "$streams" \
    --batches "$batches" "${batch_sizes[@]}" ${BATCH_ARGS:-}

# The simulator paces every stream at real time (85 tokens/s, no slowdown with load): the client is what is tested.
port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$py" -m orpheus_bench.cli simulate --port "$port" --slots 64 --ctx-size 131072 --token-ms 11.765 --busy-alpha 0 \
    --audio-frames "$sim_frames" > "$out/logs/simulator.txt" 2>&1 &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true' EXIT
sim_url="http://127.0.0.1:$port"
if "$py" - "$sim_url" <<'EOF'
import sys
import time
import urllib.request

for _ in range(150):
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(sys.argv[1] + "/health", timeout=1):
            sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
EOF
then
    for mode in reference chunked; do
        # shellcheck disable=SC2086
        run_step "sim_$mode" 70 "$py" -m orpheus_bench.cli run --host "$sim_url" --decode "$mode" \
            --device "$device" --concurrency "$levels" "${sim_load[@]}" --out "$out/runs/sim-$mode" --force \
            --quiet ${SIM_ARGS:-}
    done
else
    echo "==== simulator did not answer /health at $sim_url; log:"
    cat "$out/logs/simulator.txt"
    steps+=("sim_reference, sim_chunked: not run (simulator did not start)")
    failed=1
fi
kill "$sim_pid" 2>/dev/null || true
wait "$sim_pid" 2>/dev/null || true

# shellcheck disable=SC2086
run_step max_streams 80 "$py" benchmarks/max_streams.py "${ms_sizes[@]}" ${MAX_STREAMS_ARGS:-}
# shellcheck disable=SC2086
run_step max_streams_processes 80 "$py" benchmarks/max_streams.py "${proc_sizes[@]}" ${PROCESSES_ARGS:-}

echo
echo "==== summary ($((SECONDS - start_all)) s in all; device $device, quick $quick)"
printf '  %s\n' "${steps[@]}"
if [[ $bundle -eq 1 ]]; then
    tar czf "$out/gpu_subset.tar.gz" -C "$out" logs runs && rm -rf "$out/logs" "$out/runs"
    echo "  logs/ and runs/ packed into $out/gpu_subset.tar.gz"
fi
exit "$failed"
