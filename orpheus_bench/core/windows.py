"""Decode-window planning: which frames each SNAC decode sees and which of its samples become new PCM.

SNAC is a convolutional decoder, so a frame's samples depend on codes a few frames to either side. A streaming
client therefore decodes overlapping *windows* of frames and keeps only the slice it trusts. All sample
offsets below are in samples of one frame = 2048 at 24 kHz; "stream coordinates" count from the first
sample of frame 0.

Modes (``DecodeSpec.mode``):

- ``reference`` -- the Orpheus reference client: once ``window_frames`` (4 = 28 tokens) are in, every
  ``hop_frames``-th frame decodes the last ``window_frames`` frames and keeps ``[keep_start:keep_end]``
  (``[2048:4096]``: the window's second frame, with one frame of left context and two of lookahead). F frames
  give ``(F - 3) * 2048`` samples: frame 0 and the last two frames are never output. With ``flush_tail`` the
  end of stream decodes the last ``window_frames`` frames once more and keeps everything not yet output,
  so the total becomes ``(F - 1) * 2048`` (frame 0 is still never output, exactly like the reference's
  head); for ``F < window_frames`` the flush decodes all F frames and keeps ``[keep_start:]``.
- ``reference-14`` (a preset of ``reference``) -- the seed's experimental 14-token client: a 2-frame window
  decoded every frame, keeping ``[2048:4096]`` = the newest frame with one frame of left context and no
  lookahead. F frames give ``(F - 1) * 2048`` samples and first audio needs 2 frames; the tail is already
  out, so ``flush_tail`` adds nothing.
- ``chunked`` -- every ``chunk_frames`` (K) new frames decode those K frames plus up to ``context_frames`` (C)
  frames of left context and ``lookahead_frames`` (R) of right lookahead, keeping exactly the K new frames'
  samples. A chunk fires once its lookahead has arrived (first audio needs K + R frames). The end of stream
  always flushes the remainder (with whatever lookahead exists), so F frames give ``F * 2048`` samples.
  The preset (K=4, C=2, R=1) was picked with benchmarks/decode_throughput.py on the random-weight SNAC: its
  PCM is 50 dB SNR from a whole-utterance decode (the reference sliding window: 44 dB; C=2, R=2 is exact to
  float rounding, ~88 dB, because SNAC's receptive field is about two frames each side), it costs 0.42x the
  reference's decode time per audio second (444 vs 1053 ms on one core of a 2-core CPU; 1.8-2.7x the
  reference's streams-per-core throughput), and first audio needs 5 frames (35 tokens) instead of 4.
- ``blocking`` -- the seed's "before" client: nothing while streaming; the flush decodes all frames at once
  and keeps everything (``F * 2048``).
- ``off`` -- no windows at all (tokens are counted only); ``expected_samples`` is 0.

The planner is pure (no torch, no clock): `feed` per completed frame, `flush` at end of stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orpheus_bench.core.frames import SAMPLES_PER_FRAME, Frame
from orpheus_bench.errors import ConfigError

DecodeMode = Literal["reference", "chunked", "blocking", "off"]
MODES: tuple[DecodeMode, ...] = ("reference", "chunked", "blocking", "off")
PRESETS = ("reference", "reference-14", "chunked", "blocking", "off")


@dataclass(frozen=True, slots=True)
class DecodeSpec:
    """How a stream of frames is cut into decode windows; see the module docstring for each mode."""

    mode: DecodeMode = "reference"
    window_frames: int = 4  # reference: frames decoded per window (4 frames = 28 tokens)
    hop_frames: int = 1  # reference: a new window every hop frames
    keep_start: int = 2048  # reference: kept slice of each decoded window, in samples
    keep_end: int = 4096
    chunk_frames: int = 4  # chunked: new frames per window (K)
    context_frames: int = 2  # chunked: left context frames (C)
    flush_tail: bool = False  # reference: at end of stream also decode the tail not yet output
    lookahead_frames: int = 1  # chunked: right lookahead frames (R); delays first audio by R frames

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError("decode.mode", f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.mode == "reference":
            if self.window_frames < 1 or self.hop_frames < 1:
                raise ConfigError("decode", "window_frames and hop_frames must be at least 1")
            window_samples = self.window_frames * SAMPLES_PER_FRAME
            if not 0 <= self.keep_start < self.keep_end <= window_samples:
                raise ConfigError(
                    "decode",
                    f"keep slice [{self.keep_start}:{self.keep_end}] must lie inside the "
                    f"{window_samples}-sample window",
                )
            # Windows are hop frames apart; any other kept length would leave gaps or repeat audio.
            if self.keep_end - self.keep_start != self.hop_frames * SAMPLES_PER_FRAME:
                raise ConfigError(
                    "decode",
                    f"keep_end - keep_start must equal hop_frames * {SAMPLES_PER_FRAME} so the kept slices "
                    "join without gaps or overlap",
                )
        if self.mode == "chunked" and (self.chunk_frames < 1 or self.context_frames < 0 or self.lookahead_frames < 0):
            raise ConfigError("decode", "chunk_frames must be >= 1, context and lookahead frames >= 0")

    @classmethod
    def from_preset(cls, name: str) -> DecodeSpec:
        """The named preset: reference (28-token), reference-14, chunked, blocking or off."""
        if name == "reference":
            return cls()
        if name == "reference-14":
            return cls(window_frames=2, keep_start=SAMPLES_PER_FRAME, keep_end=2 * SAMPLES_PER_FRAME)
        if name == "chunked":
            return cls(mode="chunked")
        if name == "blocking":
            return cls(mode="blocking")
        if name == "off":
            return cls(mode="off")
        raise ConfigError("decode", f"unknown decode preset {name!r}; known: {', '.join(PRESETS)}")

    @property
    def first_audio_frames(self) -> int | None:
        """Frames that must arrive before the first window can be decoded (None: only at end of stream)."""
        if self.mode == "reference":
            return self.window_frames
        if self.mode == "chunked":
            return self.chunk_frames + self.lookahead_frames
        return None

    def describe(self) -> str:
        """One line for reports, e.g. ``reference: window 4 frames, hop 1, keep [2048:4096]``."""
        if self.mode == "reference":
            tail = ", flush tail" if self.flush_tail else ""
            return (
                f"reference: window {self.window_frames} frames, hop {self.hop_frames}, "
                f"keep [{self.keep_start}:{self.keep_end}]{tail}"
            )
        if self.mode == "chunked":
            return (
                f"chunked: {self.chunk_frames} new frames + {self.context_frames} left context + "
                f"{self.lookahead_frames} lookahead"
            )
        if self.mode == "blocking":
            return "blocking: one decode of the whole utterance at end of stream"
        return "off: no decoding, tokens counted only"


@dataclass(frozen=True, slots=True)
class DecodeWindow:
    """One decode job: decode ``frames`` (context included) and keep samples ``[keep_start:keep_end]``."""

    index: int  # 0, 1, 2... per request
    first_frame: int  # stream index of frames[0]
    frames: tuple[Frame, ...]
    keep_start: int
    keep_end: int

    @property
    def n_frames(self) -> int:
        """Frames decoded; windows with equal `n_frames` can share one batched forward pass."""
        return len(self.frames)

    @property
    def end_frame(self) -> int:
        """Stream index one past the newest frame the window needs (its last token completed that frame)."""
        return self.first_frame + len(self.frames)

    @property
    def kept_samples(self) -> int:
        """PCM samples this window contributes."""
        return self.keep_end - self.keep_start

    @property
    def stream_start_sample(self) -> int:
        """Where the kept slice begins in stream coordinates."""
        return self.first_frame * SAMPLES_PER_FRAME + self.keep_start


class WindowPlanner:
    """Turns completed frames into `DecodeWindow`s for one request, following a `DecodeSpec`."""

    __slots__ = ("_flushed", "_frames", "_out_end_sample", "_out_frames", "_windows_out", "spec")

    def __init__(self, spec: DecodeSpec) -> None:
        self.spec = spec
        self._frames: list[Frame] = []
        self._windows_out = 0
        self._out_end_sample: int | None = None  # reference: stream sample where output so far ends
        self._out_frames = 0  # chunked: frames already output
        self._flushed = False

    def feed(self, frame: Frame) -> list[DecodeWindow]:
        """Add the next completed frame; return the windows it makes decodable (usually zero or one)."""
        if self._flushed:
            raise RuntimeError("WindowPlanner.feed after flush")
        self._frames.append(frame)
        n = len(self._frames)
        s = self.spec
        if s.mode == "reference":
            if n >= s.window_frames and (n - s.window_frames) % s.hop_frames == 0:
                first = n - s.window_frames
                self._out_end_sample = first * SAMPLES_PER_FRAME + s.keep_end
                return [self._window(first, n, s.keep_start, s.keep_end)]
            return []
        if s.mode == "chunked":
            out: list[DecodeWindow] = []
            while self._out_frames + s.chunk_frames + s.lookahead_frames <= n:
                out.append(self._chunk(self._out_frames + s.chunk_frames, n))
            return out
        return []

    def flush(self) -> list[DecodeWindow]:
        """End of stream: the windows that decode what is not yet output (mode permitting)."""
        if self._flushed:
            return []
        self._flushed = True
        n = len(self._frames)
        s = self.spec
        total = n * SAMPLES_PER_FRAME
        if s.mode == "reference":
            if not s.flush_tail:
                return []
            start = s.keep_start if self._out_end_sample is None else self._out_end_sample
            if start >= total:
                return []
            first = max(0, n - s.window_frames)
            base = first * SAMPLES_PER_FRAME
            return [self._window(first, n, start - base, total - base)]
        if s.mode == "chunked":
            out: list[DecodeWindow] = []
            while self._out_frames < n:
                out.append(self._chunk(min(self._out_frames + s.chunk_frames, n), n))
            return out
        if s.mode == "blocking" and n > 0:
            return [self._window(0, n, 0, total)]
        return []

    def expected_samples(self, n_frames: int, *, flushed: bool = True) -> int:
        """PCM samples a stream of ``n_frames`` frames yields (after `flush` unless ``flushed=False``)."""
        s = self.spec
        f = max(0, n_frames)
        if s.mode == "reference":
            if f >= s.window_frames:
                count = (f - s.window_frames) // s.hop_frames + 1
                streamed = count * (s.keep_end - s.keep_start)
                out_end = (count - 1) * s.hop_frames * SAMPLES_PER_FRAME + s.keep_end
            else:
                streamed, out_end = 0, s.keep_start
            tail = max(0, f * SAMPLES_PER_FRAME - out_end) if (flushed and s.flush_tail) else 0
            return streamed + tail
        if s.mode == "chunked":
            if flushed:
                return f * SAMPLES_PER_FRAME
            return (max(0, f - s.lookahead_frames) // s.chunk_frames) * s.chunk_frames * SAMPLES_PER_FRAME
        if s.mode == "blocking":
            return f * SAMPLES_PER_FRAME if flushed else 0
        return 0

    def _chunk(self, chunk_end: int, n: int) -> DecodeWindow:
        """The window for new frames [out, chunk_end) with left context and the lookahead available."""
        s = self.spec
        start = self._out_frames
        first = max(0, start - s.context_frames)
        last = min(n, chunk_end + s.lookahead_frames)
        self._out_frames = chunk_end
        return self._window(first, last, (start - first) * SAMPLES_PER_FRAME, (chunk_end - first) * SAMPLES_PER_FRAME)

    def _window(self, first: int, end: int, keep_start: int, keep_end: int) -> DecodeWindow:
        w = DecodeWindow(
            index=self._windows_out,
            first_frame=first,
            frames=tuple(self._frames[first:end]),
            keep_start=keep_start,
            keep_end=keep_end,
        )
        self._windows_out += 1
        return w
