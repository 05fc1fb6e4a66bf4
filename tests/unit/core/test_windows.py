"""Window planning: sample arithmetic of every decode mode, checked against the windows actually planned."""

from __future__ import annotations

import pytest

from orpheus_bench.core.frames import SAMPLES_PER_FRAME, Frame
from orpheus_bench.core.windows import DecodeSpec, DecodeWindow, WindowPlanner
from orpheus_bench.errors import ConfigError

pytestmark = pytest.mark.unit

S = SAMPLES_PER_FRAME


def frame(i: int) -> Frame:
    return (i, i, i, i, i, i, i)


def plan(spec: DecodeSpec, n: int) -> tuple[list[DecodeWindow], list[DecodeWindow]]:
    """Feed n frames; return (windows while streaming, windows at flush)."""
    p = WindowPlanner(spec)
    streamed = [w for i in range(n) for w in p.feed(frame(i))]
    return streamed, p.flush()


def kept(windows: list[DecodeWindow]) -> int:
    return sum(w.kept_samples for w in windows)


def assert_contiguous(windows: list[DecodeWindow], start: int) -> None:
    """Kept slices follow each other in stream coordinates with no gap and no overlap."""
    pos = start
    for i, w in enumerate(windows):
        assert w.index == i
        assert w.frames == tuple(frame(w.first_frame + k) for k in range(w.n_frames))
        assert 0 <= w.keep_start < w.keep_end <= w.n_frames * S
        assert w.stream_start_sample == pos
        pos += w.kept_samples


@pytest.mark.parametrize("n", range(0, 12))
def test_reference_gives_f_minus_3_frames(n: int) -> None:
    spec = DecodeSpec.from_preset("reference")
    streamed, flushed = plan(spec, n)
    assert flushed == []
    assert kept(streamed) == max(0, n - 3) * S
    assert WindowPlanner(spec).expected_samples(n) == max(0, n - 3) * S
    assert all(w.n_frames == 4 and (w.keep_start, w.keep_end) == (2048, 4096) for w in streamed)
    assert_contiguous(streamed, S)  # frame 0 is never output


def test_reference_first_window_needs_28_tokens_and_decodes_last_four() -> None:
    p = WindowPlanner(DecodeSpec.from_preset("reference"))
    assert [p.feed(frame(i)) for i in range(3)] == [[], [], []]
    (w,) = p.feed(frame(3))
    assert (w.first_frame, w.end_frame) == (0, 4)
    (w2,) = p.feed(frame(4))
    assert (w2.index, w2.first_frame, w2.end_frame) == (1, 1, 5)
    assert DecodeSpec().first_audio_frames == 4


@pytest.mark.parametrize("n", range(0, 12))
def test_reference_flush_tail_gives_f_minus_1_frames(n: int) -> None:
    spec = DecodeSpec(flush_tail=True)
    streamed, flushed = plan(spec, n)
    assert kept(streamed) == max(0, n - 3) * S
    assert kept(streamed) + kept(flushed) == max(0, n - 1) * S
    assert WindowPlanner(spec).expected_samples(n) == max(0, n - 1) * S
    assert WindowPlanner(spec).expected_samples(n, flushed=False) == max(0, n - 3) * S
    assert_contiguous(streamed + flushed, S)
    if n >= 2:
        (tail,) = flushed
        assert tail.end_frame == n and tail.n_frames == min(n, 4)


@pytest.mark.parametrize("flush_tail", [False, True])
@pytest.mark.parametrize("n", range(0, 9))
def test_reference_14_gives_f_minus_1_frames_from_two_frame_windows(n: int, flush_tail: bool) -> None:
    spec = DecodeSpec.from_preset("reference-14")
    if flush_tail:
        spec = DecodeSpec(window_frames=2, keep_start=S, keep_end=2 * S, flush_tail=True)
    streamed, flushed = plan(spec, n)
    assert flushed == []  # the newest frame is always output: no tail
    assert kept(streamed) == max(0, n - 1) * S == WindowPlanner(spec).expected_samples(n)
    assert all(w.n_frames == 2 for w in streamed)
    assert spec.first_audio_frames == 2


@pytest.mark.parametrize("n", range(0, 15))
def test_reference_with_hop_two(n: int) -> None:
    spec = DecodeSpec(window_frames=4, hop_frames=2, keep_start=S, keep_end=3 * S, flush_tail=True)
    streamed, flushed = plan(spec, n)
    p = WindowPlanner(spec)
    assert kept(streamed) == p.expected_samples(n, flushed=False)
    assert kept(streamed) + kept(flushed) == p.expected_samples(n) == max(0, n - 1) * S
    assert_contiguous(streamed + flushed, S)


@pytest.mark.parametrize("k,c,r", [(4, 2, 1), (1, 0, 0), (2, 3, 2), (8, 2, 0), (3, 1, 4)])
@pytest.mark.parametrize("n", range(0, 20))
def test_chunked_outputs_every_frame_once(n: int, k: int, c: int, r: int) -> None:
    spec = DecodeSpec(mode="chunked", chunk_frames=k, context_frames=c, lookahead_frames=r)
    streamed, flushed = plan(spec, n)
    p = WindowPlanner(spec)
    assert kept(streamed) == p.expected_samples(n, flushed=False)
    assert kept(streamed) + kept(flushed) == n * S == p.expected_samples(n)
    assert_contiguous(streamed + flushed, 0)
    for w in streamed:
        new_first = w.stream_start_sample // S
        assert w.kept_samples == k * S
        assert new_first - w.first_frame == min(c, new_first)  # left context as far as it exists
        assert w.end_frame == new_first + k + r  # full lookahead while streaming


def test_chunked_fires_after_k_plus_r_frames() -> None:
    spec = DecodeSpec(mode="chunked", chunk_frames=4, context_frames=2, lookahead_frames=1)
    p = WindowPlanner(spec)
    assert [p.feed(frame(i)) for i in range(4)] == [[], [], [], []]
    (w,) = p.feed(frame(4))
    assert (w.first_frame, w.n_frames, w.keep_start, w.keep_end) == (0, 5, 0, 4 * S)
    assert [p.feed(frame(i)) for i in range(5, 8)] == [[], [], []]
    (w,) = p.feed(frame(8))
    assert (w.first_frame, w.n_frames, w.keep_start, w.keep_end) == (2, 7, 2 * S, 6 * S)
    assert spec.first_audio_frames == 5


@pytest.mark.parametrize("n", [0, 1, 5])
def test_blocking_decodes_once_at_flush(n: int) -> None:
    spec = DecodeSpec.from_preset("blocking")
    streamed, flushed = plan(spec, n)
    assert streamed == []
    assert kept(flushed) == n * S == WindowPlanner(spec).expected_samples(n)
    assert len(flushed) == (1 if n else 0)
    if n:
        assert flushed[0].n_frames == n and (flushed[0].keep_start, flushed[0].keep_end) == (0, n * S)
    assert spec.first_audio_frames is None


def test_off_plans_nothing() -> None:
    spec = DecodeSpec.from_preset("off")
    assert plan(spec, 9) == ([], [])
    assert WindowPlanner(spec).expected_samples(9) == 0


def test_feed_after_flush_is_a_bug_and_flush_is_idempotent() -> None:
    p = WindowPlanner(DecodeSpec(flush_tail=True))
    for i in range(5):
        p.feed(frame(i))
    assert len(p.flush()) == 1
    assert p.flush() == []
    with pytest.raises(RuntimeError):
        p.feed(frame(5))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"keep_start": 0, "keep_end": 4096},  # 2 frames kept per 1-frame hop: repeats audio
        {"keep_start": 4096, "keep_end": 10240},  # outside the window
        {"window_frames": 0},
        {"hop_frames": 0},
        {"mode": "chunked", "chunk_frames": 0},
        {"mode": "chunked", "lookahead_frames": -1},
        {"mode": "sliding"},
    ],
)
def test_invalid_specs_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        DecodeSpec(**kwargs)  # type: ignore[arg-type]


def test_unknown_preset() -> None:
    with pytest.raises(ConfigError, match="reference-14"):
        DecodeSpec.from_preset("fast")


def test_describe_names_the_mode() -> None:
    for name in ("reference", "reference-14", "chunked", "blocking", "off"):
        assert DecodeSpec.from_preset(name).describe().startswith(name.split("-")[0])
