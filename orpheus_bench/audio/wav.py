"""16-bit mono WAV files at 24 kHz with the stdlib ``wave`` module (kept sample audio, listening checks)."""

from __future__ import annotations

import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from orpheus_bench.records import SAMPLE_RATE_HZ

_INT16_MAX = 32767


def pcm_to_int16(pcm: np.ndarray) -> np.ndarray:
    """Float PCM in [-1, 1] -> little-endian int16; out-of-range samples are clipped, not wrapped."""
    clipped = np.clip(np.asarray(pcm, dtype=np.float32), -1.0, 1.0)
    return np.round(clipped * _INT16_MAX).astype("<i2")


def write_wav(path: str | Path, pcm: np.ndarray | Iterable[np.ndarray], sample_rate: int = SAMPLE_RATE_HZ) -> int:
    """Write float PCM (one array or chunks in order) as a 16-bit mono WAV; return the samples written."""
    chunks = [pcm] if isinstance(pcm, np.ndarray) else list(pcm)
    data = np.concatenate([np.ravel(c) for c in chunks]) if chunks else np.zeros(0, dtype=np.float32)
    ints = pcm_to_int16(data)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(ints.tobytes())
    return int(ints.size)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit mono WAV back as float32 in [-1, 1] and its sample rate."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit mono, got {w.getnchannels()} ch x {w.getsampwidth()} B")
        rate = w.getframerate()
        raw = w.readframes(w.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / _INT16_MAX, rate
