"""SnacDecoder with the random-weight SNAC: lengths, determinism, batching, window modes against a whole decode."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from orpheus_bench.audio.decoder import SnacDecoder
from orpheus_bench.audio.snac_loader import LoadedSnac
from orpheus_bench.core.frames import SAMPLES_PER_FRAME, Frame, frames_to_layers
from orpheus_bench.core.windows import DecodeSpec, DecodeWindow, WindowPlanner
from orpheus_bench.errors import DecodeError

pytestmark = pytest.mark.unit


def random_frames(n: int, seed: int = 1) -> list[Frame]:
    rng = random.Random(seed)
    return [tuple(rng.randrange(4096) for _ in range(7)) for _ in range(n)]  # type: ignore[misc]


S = SAMPLES_PER_FRAME


def stream_windows(spec: DecodeSpec, frames: Sequence[Frame]) -> list[DecodeWindow]:
    p = WindowPlanner(spec)
    return [w for f in frames for w in p.feed(f)] + p.flush()


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    err = float(np.sum((ref.astype(np.float64) - test) ** 2))
    return 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / max(err, 1e-30))


class _CodeRecorder:
    """Stands in for SNAC: records the code tensors and returns silence of the right length."""

    def __init__(self) -> None:
        self.calls: list[list[torch.Tensor]] = []

    def decode(self, codes: list[torch.Tensor]) -> torch.Tensor:
        self.calls.append(codes)
        return torch.zeros(codes[0].shape[0], 1, codes[0].shape[1] * S)


def test_codes_reach_snac_in_the_frame_layer_layout() -> None:
    rec = _CodeRecorder()
    dec = SnacDecoder(LoadedSnac(model=rec, device="cpu", spec="fake", random_weights=True, description=""))
    a, b = random_frames(3, seed=5), random_frames(3, seed=6)
    dec.decode_batch([DecodeWindow(0, 0, tuple(a), 0, S), DecodeWindow(0, 0, tuple(b), 0, S)])
    (codes,) = rec.calls
    for row, frames in enumerate((a, b)):
        assert [c[row].tolist() for c in codes] == list(frames_to_layers(frames))
    assert [c.dtype for c in codes] == [torch.int64] * 3


def test_decode_frames_length_and_content(decoder: SnacDecoder) -> None:
    pcm = decoder.decode_frames(random_frames(3))
    assert pcm.dtype == np.float32 and pcm.shape == (3 * S,)
    assert np.isfinite(pcm).all() and float(pcm.std()) > 1e-3 and float(np.abs(pcm).max()) <= 1.0
    assert decoder.decode_frames([]).shape == (0,)


def test_decoding_is_deterministic(decoder: SnacDecoder) -> None:
    frames = random_frames(2)
    np.testing.assert_array_equal(decoder.decode_frames(frames), decoder.decode_frames(frames))


@pytest.mark.parametrize("flush_tail", [False, True])
def test_reference_stream_gives_f_minus_3_frames_and_tail_on_flush(decoder: SnacDecoder, flush_tail: bool) -> None:
    n = 6
    frames = random_frames(n, seed=2)
    windows = stream_windows(DecodeSpec(flush_tail=flush_tail), frames)
    pcm = np.concatenate([decoder.decode_window(w) for w in windows])
    assert pcm.shape == ((n - 1 if flush_tail else n - 3) * S,)
    # each kept slice is [2048:4096] of decoding the last four frames
    np.testing.assert_array_equal(pcm[:S], decoder.decode_frames(frames[0:4])[S : 2 * S])
    np.testing.assert_array_equal(pcm[2 * S : 3 * S], decoder.decode_frames(frames[2:6])[S : 2 * S])


def test_batched_equals_unbatched(decoder: SnacDecoder) -> None:
    frames = random_frames(7, seed=4)
    windows = stream_windows(DecodeSpec(), frames)  # four same-shape windows
    batched = decoder.decode_batch(windows)
    for w, got in zip(windows, batched, strict=True):
        np.testing.assert_allclose(got, decoder.decode_window(w), atol=1e-5, rtol=0)


def test_mixed_shapes_come_back_in_input_order(decoder: SnacDecoder) -> None:
    frames = random_frames(5, seed=7)
    windows = stream_windows(DecodeSpec(mode="chunked", chunk_frames=2, context_frames=2, lookahead_frames=1), frames)
    assert len({w.n_frames for w in windows}) > 1
    out = decoder.decode_batch(windows)
    assert [a.shape[0] for a in out] == [w.kept_samples for w in windows]
    for w, got in zip(windows, out, strict=True):
        np.testing.assert_allclose(got, decoder.decode_window(w), atol=1e-5, rtol=0)


def test_window_modes_against_whole_utterance(decoder: SnacDecoder) -> None:
    n = 7
    frames = random_frames(n, seed=9)
    whole = decoder.decode_frames(frames)

    def decoded(spec: DecodeSpec) -> tuple[np.ndarray, int]:
        ws = stream_windows(spec, frames)
        return np.concatenate([decoder.decode_window(w) for w in ws]), ws[0].stream_start_sample

    chunked, start = decoded(DecodeSpec(mode="chunked", chunk_frames=2, context_frames=2, lookahead_frames=2))
    assert start == 0 and chunked.shape == whole.shape
    # two frames of context each side cover SNAC's receptive field: equal up to float rounding
    assert snr_db(whole, chunked) > 60
    blocking, _ = decoded(DecodeSpec.from_preset("blocking"))
    np.testing.assert_array_equal(blocking, whole)
    no_lookahead, _ = decoded(DecodeSpec.from_preset("reference-14"))
    assert snr_db(whole[S:], no_lookahead) < 40  # the metric does see missing right context


def test_out_of_range_code_is_a_decode_error(decoder: SnacDecoder) -> None:
    with pytest.raises(DecodeError, match="1 window"):
        decoder.decode_frames([(0, 0, 0, 0, 0, 0, 4096)])
