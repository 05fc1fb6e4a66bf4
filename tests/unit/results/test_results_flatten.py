"""Flat export rows and the `export` command (Parquet and CSV round trips)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest
from synthetic_runs import write_run_dir

from orpheus_bench.commands import export
from orpheus_bench.errors import ConfigError
from orpheus_bench.records import AudioChunk, ErrorClass, ServerTimings
from orpheus_bench.results.flatten import flatten_record

pytestmark = pytest.mark.unit


def test_flatten_record_derived_columns(make_record) -> None:  # type: ignore[no-untyped-def]
    r = make_record(ttfa=0.2, total=1.5, samples=48_000, invalid_codes=[1, 0, 0, 0, 0, 0, 2], start=3.0)
    r.chunks = [AudioChunk(0.2, 24_000, 0.19), AudioChunk(2.0, 24_000, 1.95)]
    r.timings = ServerTimings(prompt_n=12, prompt_ms=8.0)
    r.extra["audio_file"] = "audio/x.wav"
    row = flatten_record(r, run_name="after")
    assert row["run"] == "after"
    assert row["ttfa_ms"] == pytest.approx(200.0) and row["total_ms"] == pytest.approx(1500.0)
    assert row["audio_seconds"] == pytest.approx(2.0) and row["rtf"] == pytest.approx(0.75)
    assert row["end_run_s"] == pytest.approx(4.5)
    assert row["invalid_code_count"] == 3 and row["invalid_slot_6"] == 2
    assert row["timings_prompt_ms"] == 8.0 and row["timings_predicted_n"] is None
    assert row["n_chunks"] == 2 and row["decode_lag_max_ms"] == pytest.approx(50.0)
    # Chunk 2 is ready 0.8 s after the first second of audio ends: one stall at pre-roll 0, none at 1500.
    assert row["stalls_0ms"] == 1 and row["stall_s_0ms"] == pytest.approx(0.8)
    assert row["stalls_1500ms"] == 0
    assert row["status"] == "ok" and row["error_class"] is None
    assert json.loads(row["extra_json"]) == {"audio_file": "audio/x.wav"}
    assert len(json.loads(row["chunks_json"])) == 2


def test_flatten_record_outcome_columns(make_record) -> None:  # type: ignore[no-untyped-def]
    """The export names how each request ended with the words the reports use."""
    done = flatten_record(make_record(), run_name="r")
    assert (done["outcome"], done["complete"], done["cut_short"], done["cut_limit"]) == ("complete", True, False, None)
    cut = flatten_record(make_record(stop_reason="limit"), run_name="r")
    assert (cut["outcome"], cut["complete"], cut["cut_short"], cut["cut_limit"]) == (
        "cut_short",
        False,
        True,
        "max_tokens",
    )
    failed = flatten_record(make_record(error=ErrorClass.TIMEOUT, ttfa=None, total=None), run_name="r")
    assert failed["outcome"] == "timeout" and failed["complete"] is False and failed["cut_short"] is False
    assert done["client_bound"] is False


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_command_round_trip(tmp_path: Path, make_record, fmt: str) -> None:  # type: ignore[no-untyped-def]
    d = write_run_dir(tmp_path / "run", [make_record(seq=i, start=float(i)) for i in range(3)], {"name": "r1"})
    args = argparse.Namespace(run_dir=str(d), format=fmt, output=None)
    assert export.run(args) == 0
    out = d / f"requests.{fmt}"
    frame = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out)
    assert len(frame) == 3
    assert {"ttfa_ms", "total_ms", "audio_seconds", "rtf", "warmup", "stalls_250ms"} <= set(frame.columns)
    assert list(frame["run"]) == ["r1"] * 3
    assert frame["ttfa_ms"].tolist() == pytest.approx([100.0] * 3)


def test_export_missing_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        export.run(argparse.Namespace(run_dir=str(tmp_path), format="csv", output=None))
