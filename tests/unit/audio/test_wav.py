"""WAV writer: 16-bit mono 24 kHz round trip, clipping, chunked input."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from orpheus_bench.audio.wav import pcm_to_int16, read_wav, write_wav

pytestmark = pytest.mark.unit


def test_round_trip(tmp_path: Path) -> None:
    t = np.arange(2400, dtype=np.float32) / 24000
    pcm = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = tmp_path / "a.wav"
    assert write_wav(path, [pcm[:1000], pcm[1000:]]) == 2400
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 24000, 2400)
    back, rate = read_wav(path)
    assert rate == 24000 and back.dtype == np.float32
    np.testing.assert_allclose(back, pcm, atol=1 / 32767)


def test_out_of_range_samples_clip(tmp_path: Path) -> None:
    assert pcm_to_int16(np.array([-3.0, -1.0, 0.0, 1.0, 2.0])).tolist() == [-32767, -32767, 0, 32767, 32767]
    path = tmp_path / "clip.wav"
    write_wav(path, np.array([1.5, -1.5], dtype=np.float32), sample_rate=16000)
    back, rate = read_wav(path)
    assert rate == 16000 and back.tolist() == [1.0, -1.0]


def test_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    assert write_wav(path, []) == 0
    assert read_wav(path)[0].shape == (0,)


def test_write_wav_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "run" / "audio" / "a.wav"
    assert write_wav(path, np.zeros(480, dtype=np.float32)) == 480
    assert read_wav(path)[1] == 24000
