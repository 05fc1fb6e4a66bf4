"""Interrupting a CLI run mid-level the way a user's Ctrl-C or a CI timeout does: the SIGTERM tests of both
the single-process and the worker-process runner wait for the same evidence (records on disk) first."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path


def records_written(out: Path) -> int:
    """How many records the run directory's requests.jsonl holds now (0 before it exists)."""
    path = out / "requests.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def sigterm_after_records(proc: subprocess.Popen[str], out: Path, records: int, timeout_s: float = 60) -> str:
    """Wait until `records` records are on disk (or `timeout_s`), send SIGTERM, return the process's output."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and records_written(out) < records:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=timeout_s)
    return output
