"""The web UI's live level numbers: the measures layer's statistics over one level's records, pure."""

from __future__ import annotations

import subprocess
import sys

import pytest
from record_factory import build_record

from orpheus_bench.locust.live import LIVE_PREROLL_MS, LiveRun, level_view
from orpheus_bench.measures.playback import stall_stats
from orpheus_bench.measures.stats import summarize
from orpheus_bench.records import AudioChunk, ErrorClass, Status

pytestmark = pytest.mark.unit


def _level() -> list:
    ok = [
        build_record(level=2, seq=i, ttfa=0.1 * (i + 1), total=1.0 + 0.5 * i, t_first_token_s=0.02 * (i + 1))
        for i in range(7)
    ]
    # A stream whose second chunk is late: 0.4 s of stall with playback starting at TTFA.
    ok.append(
        build_record(
            level=2,
            seq=7,
            ttfa=0.2,
            total=2.0,
            samples=48_000,
            chunks=[
                AudioChunk(t_ready_s=0.2, samples=24_000, t_tokens_s=0.1),
                AudioChunk(t_ready_s=1.6, samples=24_000, t_tokens_s=1.5),
            ],
        )
    )
    warmups = [build_record(level=2, seq=10 + i, warmup=True, ttfa=9.0, total=9.0) for i in range(2)]
    failed = build_record(level=2, seq=20, error=ErrorClass.HTTP)
    cancelled = build_record(level=2, seq=21, error=ErrorClass.CANCELLED, status=Status.CANCELLED)
    return ok + warmups + [failed, cancelled]


def test_level_view_uses_the_measures_layer_on_measured_successes() -> None:
    records = _level()
    ok = [r for r in records if r.ok and not r.warmup]
    view = level_view(records, run="ui", level="c=2", phase="running")
    ttfa = summarize((r.ttfa_s for r in ok), 1000.0)
    assert (view.ok, view.failed, view.cancelled) == (8, 1, 1)  # warmups counted nowhere
    assert view.ttfa_p50_ms == pytest.approx(ttfa.p50) and view.ttfa_p95_ms == pytest.approx(ttfa.p95)
    assert view.total_p50_ms == pytest.approx(summarize((r.total_s for r in ok), 1000.0).p50)
    assert view.first_token_p50_ms == pytest.approx(summarize((r.t_first_token_s for r in ok), 1000.0).p50)
    assert view.rtf_p50 == pytest.approx(summarize(r.rtf for r in ok).p50)
    stalls = stall_stats(ok, LIVE_PREROLL_MS)
    assert stalls.stall_s == pytest.approx(0.4) and view.stall_share == pytest.approx(stalls.stall_time_ratio)
    row = view.row()
    assert row["stall_share_pct"] == pytest.approx(round(stalls.stall_time_ratio * 100.0, 2))
    assert row["ttfa_p95_ms"] == round(ttfa.p95, 1) and "stall_share" not in row


def test_a_level_with_nothing_measured_yet_has_empty_numbers() -> None:
    view = level_view([build_record(level=3, warmup=True)], run="ui", level="c=3", phase="running")
    assert (view.ok, view.failed, view.cancelled) == (0, 0, 0)
    assert view.ttfa_p50_ms is None and view.rtf_p50 is None and view.stall_share is None
    assert view.row()["stall_share_pct"] is None


def test_live_run_keeps_levels_in_order_with_their_phase() -> None:
    live = LiveRun("ui-2")
    live.phase("c=3", "wait")
    assert [(v.level, v.phase, v.ok) for v in live.views()] == [("c=3", "waiting", 0)]
    live.phase("c=3", "run")
    for i in range(3):
        live.record(build_record(level=3, seq=i, level_label="c=3"))
    first = live.views()
    assert first[0].ok == 3 and first[0].run == "ui-2"
    assert live.views()[0] is first[0]  # nothing new: the row is not recomputed
    live.ended("c=3", interrupted=False)
    live.phase("c=6", "run")
    live.record(build_record(level=6, seq=0, level_label="c=6"))
    live.ended("c=6", interrupted=True)
    assert [(v.level, v.phase, v.ok) for v in live.views()] == [("c=3", "done", 3), ("c=6", "cut short", 1)]


def test_the_live_module_imports_neither_gevent_nor_locust() -> None:
    code = (
        "import sys, orpheus_bench.locust.live; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gevent', 'locust', 'flask')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
