"""Crafted records for the capacity tests (as the `make_stream` fixture: test modules cannot import conftest)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orpheus_bench.records import AudioChunk, ErrorClass, RequestRecord, Status

CHUNK_SAMPLES = 2048  # 85.3 ms of 24 kHz audio
CHUNK_S = CHUNK_SAMPLES / 24_000


def stream(
    ttfa_s: float = 0.1,
    *,
    chunks: int = 6,
    gap_after: int | None = None,
    gap_s: float = 0.0,
    seq: int = 0,
    level: int = 1,
    start_s: float = 0.0,
    warmup: bool = False,
    invalid: int = 0,
    error: ErrorClass | None = None,
    status: Status | None = None,
) -> RequestRecord:
    """A streamed request: chunk i is ready at ``ttfa + i * CHUNK_S`` (just in time for a player with no
    pre-roll), plus ``gap_s`` from chunk ``gap_after`` on; it ends when its last chunk is ready."""
    rec = RequestRecord(
        request_id=f"r{level}-{seq}",
        level=level,
        worker=0,
        seq=seq,
        warmup=warmup,
        prompt_id="p",
        prompt="Hello.",
        voice="tara",
        mode="stream",
        protocol="native",
        driver="aiohttp",
        wall_start=1_700_000_000.0 + start_s,
        run_offset_s=start_s,
    )
    if error is not None:
        rec.t_end_s = ttfa_s
        rec.fail(error, "crafted failure", status or Status.ERROR)
        return rec
    if status is not None:
        rec.status = status
        rec.t_end_s = ttfa_s
        return rec
    ready = [ttfa_s + i * CHUNK_S + (gap_s if gap_after is not None and i >= gap_after else 0.0) for i in range(chunks)]
    rec.chunks = [AudioChunk(t_ready_s=t, samples=CHUNK_SAMPLES, t_tokens_s=t, window=i) for i, t in enumerate(ready)]
    rec.stop_reason = "word"  # a complete utterance: the stop word (end of speech) ended it
    rec.t_first_pcm_s = ready[0]
    rec.pcm_samples = CHUNK_SAMPLES * chunks
    rec.t_end_s = ready[-1]
    rec.audio_tokens = 7 * (chunks + 3)
    rec.frames = chunks + 3
    rec.invalid_codes = [invalid, 0, 0, 0, 0, 0, 0]
    return rec


@pytest.fixture
def make_stream() -> Callable[..., RequestRecord]:
    """The `stream` builder."""
    return stream
