"""One place that builds a minimal valid `RequestRecord` for tests; keyword arguments override any field."""

from __future__ import annotations

from typing import Any

from orpheus_bench.records import AudioChunk, ErrorClass, RequestRecord, Status


def new_record(**fields: Any) -> RequestRecord:
    """A measured (non-warmup) streaming request of level 1, with nothing observed yet unless given."""
    base: dict[str, Any] = {
        "request_id": "r",
        "level": 1,
        "worker": 0,
        "seq": 0,
        "warmup": False,
        "prompt_id": "p",
        "prompt": "x",
        "voice": None,
        "mode": "stream",
        "protocol": "native",
        "driver": "test",
        "wall_start": 0.0,
        "run_offset_s": 0.0,
    }
    base.update(fields)
    return RequestRecord(**base)


def build_record(
    *,
    level: int = 1,
    seq: int = 0,
    warmup: bool = False,
    start: float = 0.0,
    ttfa: float | None = 0.1,
    total: float | None = 1.0,
    samples: int = 24_000,
    error: ErrorClass | None = None,
    status: Status | None = None,
    chunks: list[AudioChunk] | None = None,
    prompt: str = "Hello.",
    prompt_id: str = "p0",
    driver: str = "aiohttp",
    **extra_fields: Any,
) -> RequestRecord:
    """A record whose TTFA/total/run offset are exactly the given numbers (seconds)."""
    rec = RequestRecord(
        request_id=f"L{level}-{seq:04d}",
        level=level,
        worker=seq % max(level, 1),
        seq=seq,
        warmup=warmup,
        prompt_id=prompt_id,
        prompt=prompt,
        voice="tara",
        mode="stream",
        protocol="native",
        driver=driver,
        wall_start=1_700_000_000.0 + start,
        run_offset_s=start,
        prompt_chars=len(prompt),
    )
    rec.t_end_s = total
    for name, value in extra_fields.items():
        setattr(rec, name, value)
    if error is not None:
        rec.fail(error, f"{error.value} failure", status or Status.ERROR)
        return rec
    if status is not None:
        rec.status = status
        return rec
    rec.t_first_pcm_s = ttfa
    rec.pcm_samples = samples
    if "stop_reason" not in extra_fields:
        rec.stop_reason = "word"  # a complete utterance unless the test says how it ended
    if chunks is None and ttfa is not None:
        chunks = [AudioChunk(t_ready_s=ttfa, samples=samples, t_tokens_s=ttfa - 0.01, window=0)]
    rec.chunks = chunks or []
    return rec
