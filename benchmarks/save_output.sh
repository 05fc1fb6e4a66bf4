#!/usr/bin/env bash
# Run one benchmark and commit-ready save its raw output: benchmarks/results/NAME.txt gets the exact command, the
# commit, the date, and the load average and top processes before and after (the machine's state is part of the
# result: these machines are shared). Docs quote figures from these files (scripts/figures.py checks them).
#
#   bash benchmarks/save_output.sh NAME COMMAND...     e.g.
#   bash benchmarks/save_output.sh parse_throughput .venv/bin/python benchmarks/parse_throughput.py
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 NAME COMMAND..." >&2
  exit 2
fi
name=$1
shift
out="benchmarks/results/$name.txt"
mkdir -p benchmarks/results
snapshot() {
  echo "# $1:  $(uptime)"
  echo "# top $1:"
  top -b -n 1 -o %CPU | sed -n '7,13p' | sed 's/^/#  /'
}
{
  echo "# command: $*"
  echo "# git: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- orpheus_bench 'benchmarks/*.py' 'benchmarks/*.sh' || echo ' (code modified)')  date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  snapshot before
} >"$out.partial"
status=0
"$@" >>"$out.partial" 2>&1 || status=$?
snapshot after >>"$out.partial"
if [ "$status" -ne 0 ]; then
  echo "# exit status: $status" >>"$out.partial"
fi
mv "$out.partial" "$out"
echo "wrote $out (exit status $status)"
exit "$status"
