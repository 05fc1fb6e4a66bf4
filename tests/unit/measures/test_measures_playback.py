"""Playback stall accounting on a fixed chunk timeline, computed by hand.

Every chunk holds 2048 samples = 85.333 ms at 24 kHz. Ready times: 0.50, 0.55, 0.70, 0.80, 1.20 s; TTFA 0.50 s.
"""

from __future__ import annotations

import pytest

from orpheus_bench.measures.playback import simulate_playback, stall_stats
from orpheus_bench.records import AudioChunk

pytestmark = pytest.mark.unit

D = 2048 / 24_000  # seconds per chunk
READY = (0.50, 0.55, 0.70, 0.80, 1.20)


def timeline() -> list[AudioChunk]:
    return [AudioChunk(t_ready_s=t, samples=2048, t_tokens_s=t - 0.01) for t in READY]


def test_preroll_0_stalls_three_times() -> None:
    p = simulate_playback(timeline(), 0.0)
    assert p is not None
    # playhead: 0.5 -> 0.5853 (c1 ready) -> 0.6707; c2 at 0.70: stall 0.0293 -> 0.7853; c3 at 0.80: stall
    # 0.0147 -> 0.8853; c4 at 1.20: stall 0.3147 -> 1.2853
    stalls = [0.70 - (0.50 + 2 * D), 0.80 - (0.70 + D), 1.20 - (0.80 + D)]
    assert p.stalls == 3
    assert p.stall_s == pytest.approx(sum(stalls))
    assert p.max_stall_s == pytest.approx(stalls[2])
    assert p.start_s == 0.5
    assert p.end_s == pytest.approx(1.20 + D)
    assert p.audio_s == pytest.approx(5 * D)


def test_preroll_100ms_stalls_once() -> None:
    p = simulate_playback(timeline(), 0.1)
    assert p is not None
    # start 0.6; playhead before c4 = 0.6 + 4D = 0.9413 < 1.20 -> one stall of 0.2587
    assert p.stalls == 1
    assert p.stall_s == pytest.approx(1.20 - (0.6 + 4 * D))


def test_preroll_500ms_plays_through() -> None:
    p = simulate_playback(timeline(), 0.5)
    assert p is not None
    # start 1.0; playhead before c4 = 1.3413 >= 1.20
    assert p.stalls == 0
    assert p.stall_s == 0.0
    assert p.end_s == pytest.approx(1.0 + 5 * D)


def test_first_audio_defaults_to_first_chunk_and_empty_chunks_are_skipped() -> None:
    chunks = [AudioChunk(0.3, 0, 0.29), *timeline()]
    p = simulate_playback(chunks, 0.0)
    assert p is not None and p.start_s == 0.5 and p.stalls == 3
    assert simulate_playback([], 0.0) is None
    assert simulate_playback([AudioChunk(1.0, 0, 0.9)], 0.0) is None


def test_blocking_single_chunk_never_stalls() -> None:
    p = simulate_playback([AudioChunk(4.0, 24_000 * 3, 3.9)], 0.0)
    assert p is not None and p.stalls == 0 and p.audio_s == pytest.approx(3.0)


def test_ready_exactly_at_playhead_is_not_a_stall() -> None:
    chunks = [AudioChunk(0.0, 2400, 0.0), AudioChunk(0.1, 2400, 0.09)]  # 2400 samples = exactly 0.1 s
    p = simulate_playback(chunks, 0.0)
    assert p is not None and p.stalls == 0


def test_stall_stats_aggregates_streams(make_record) -> None:  # type: ignore[no-untyped-def]
    stalled = make_record(seq=0, ttfa=0.5, total=1.3, samples=5 * 2048, chunks=timeline())
    smooth = make_record(seq=1, ttfa=0.2, total=0.5, samples=2048, chunks=[AudioChunk(0.2, 2048, 0.19)])
    s0 = stall_stats([stalled, smooth], 0)
    assert s0.streams == 2
    assert s0.stalled_streams == 1
    assert s0.continuity_rate == 0.5
    assert s0.stall_rate == 0.5
    assert s0.stalls == 3
    stall_s = 1.20 - (0.50 + 4 * D)  # total stall time equals the last chunk's lateness against 4 chunks played
    assert s0.stall_s == pytest.approx(stall_s)
    assert s0.audio_s == pytest.approx(6 * D)
    assert s0.stall_time_ratio == pytest.approx(stall_s / (6 * D + stall_s))
    s500 = stall_stats([stalled, smooth], 500)
    assert s500.continuity_rate == 1.0 and s500.stalls == 0 and s500.stall_time_ratio == 0.0
    empty = stall_stats([], 250)
    assert empty.streams == 0 and empty.continuity_rate is None and empty.stall_rate is None
