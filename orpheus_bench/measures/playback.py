"""Playback stall accounting: would a listener have heard gaps, given when each PCM chunk became ready?

The virtual player of one request starts playing at ``TTFA + preroll`` (TTFA = the first chunk's ready time,
``t_first_pcm_s``), plays chunks in the order they were produced at real time (``samples / 24000`` seconds
each), and never plays a chunk before its ``t_ready_s``. When the playhead reaches the end of the buffered
audio and the next chunk is not ready yet, that is a *stall*: playback pauses until the chunk is ready, and
the pause counts as stall time. Ready times within ``STALL_EPSILON_S`` of the playhead are not stalls.

Two rates are reported per level and pre-roll, both documented in reports:

- *continuity rate*: the share of streams that played start to end without a single stall (a listener's view:
  "did this utterance break up?");
- *stall time ratio*: stall seconds / (audio seconds + stall seconds), the share of listening time spent in
  silence that should not be there.

A blocking request delivers one chunk at the end, so it never stalls: its cost is all in TTFA.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orpheus_bench.records import SAMPLE_RATE_HZ, AudioChunk, RequestRecord

PREROLLS_MS: tuple[int, ...] = (0, 100, 250, 500, 1500)
STALL_EPSILON_S = 1e-6


@dataclass(frozen=True, slots=True)
class Playback:
    """One stream played by the virtual player at one pre-roll."""

    preroll_s: float
    start_s: float  # when playback began (request clock): TTFA + preroll
    end_s: float  # when the last sample finished playing
    audio_s: float
    stalls: int
    stall_s: float
    max_stall_s: float


def simulate_playback(
    chunks: Sequence[AudioChunk],
    preroll_s: float,
    *,
    first_audio_s: float | None = None,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> Playback | None:
    """Play ``chunks`` in order; None when they hold no audio.

    ``first_audio_s`` is the TTFA to start from; it defaults to the first non-empty chunk's ready time.
    """
    audible = [c for c in chunks if c.samples > 0]
    if not audible:
        return None
    ttfa = audible[0].t_ready_s if first_audio_s is None else first_audio_s
    start = ttfa + preroll_s
    playhead = start
    stalls = 0
    stall_s = 0.0
    max_stall = 0.0
    audio_s = 0.0
    for chunk in audible:
        if chunk.t_ready_s > playhead + STALL_EPSILON_S:
            gap = chunk.t_ready_s - playhead
            stalls += 1
            stall_s += gap
            max_stall = max(max_stall, gap)
            playhead = chunk.t_ready_s
        duration = chunk.samples / sample_rate_hz
        playhead += duration
        audio_s += duration
    return Playback(preroll_s, start, playhead, audio_s, stalls, stall_s, max_stall)


def record_playback(record: RequestRecord, preroll_s: float) -> Playback | None:
    """The virtual player's account of one request (None when it produced no audio chunk)."""
    return simulate_playback(record.chunks, preroll_s, first_audio_s=record.t_first_pcm_s)


@dataclass(frozen=True, slots=True)
class StallStats:
    """Stall accounting over the streams of one level at one pre-roll."""

    preroll_ms: int
    streams: int  # requests with at least one audio chunk
    stalled_streams: int
    stalls: int
    stall_s: float
    max_stall_s: float
    audio_s: float
    continuity_rate: float | None  # streams with no stall / streams
    stall_time_ratio: float | None  # stall_s / (audio_s + stall_s)

    @property
    def stall_rate(self) -> float | None:
        """Share of streams with at least one stall (1 - continuity rate)."""
        return None if self.continuity_rate is None else 1.0 - self.continuity_rate


def stall_stats(records: Iterable[RequestRecord], preroll_ms: int) -> StallStats:
    """Aggregate the playback stalls of ``records`` at one pre-roll (callers pass measured, ok requests)."""
    plays = [p for r in records if (p := record_playback(r, preroll_ms / 1000.0)) is not None]
    streams = len(plays)
    stalled = sum(1 for p in plays if p.stalls)
    stall_s = sum(p.stall_s for p in plays)
    audio_s = sum(p.audio_s for p in plays)
    listening = audio_s + stall_s
    return StallStats(
        preroll_ms=preroll_ms,
        streams=streams,
        stalled_streams=stalled,
        stalls=sum(p.stalls for p in plays),
        stall_s=stall_s,
        max_stall_s=max((p.max_stall_s for p in plays), default=0.0),
        audio_s=audio_s,
        continuity_rate=(streams - stalled) / streams if streams else None,
        stall_time_ratio=stall_s / listening if listening > 0 else None,
    )
