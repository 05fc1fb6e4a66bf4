"""Seven audio codes make one SNAC frame; frames map onto SNAC's three codebook layers.

Orpheus emits codes in frame order p = 0..6. SNAC 24 kHz has three codebooks at 1x, 2x and 4x the frame rate:
layer 0 takes position 0, layer 1 positions 1 and 4, layer 2 positions 2, 3, 5 and 6. One frame decodes to
2048 samples (85.3 ms at 24 kHz).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

FRAME_TOKENS = 7
SAMPLES_PER_FRAME = 2048
CODEBOOK_SIZE = 4096

Frame = tuple[int, int, int, int, int, int, int]


class FrameAssembler:
    """Collects audio codes into frames of seven; the partial tail is reported at `flush`.

    A code of None stands for an invalid one: its frame cannot be decoded, so the whole frame is dropped (and
    counted), while the next frame still starts at position 0.
    """

    def __init__(self) -> None:
        self._pending: list[int | None] = []
        self.frames_out = 0
        self.frames_dropped = 0

    def feed(self, codes: Iterable[int | None]) -> list[Frame]:
        """Add codes in stream order; return every valid frame completed by them."""
        out: list[Frame] = []
        for code in codes:
            self._pending.append(code)
            if len(self._pending) == FRAME_TOKENS:
                p = self._pending
                self._pending = []
                if None in p:
                    self.frames_dropped += 1
                    continue
                out.append((p[0], p[1], p[2], p[3], p[4], p[5], p[6]))  # type: ignore[arg-type]
        self.frames_out += len(out)
        return out

    def flush(self) -> int:
        """End of stream: drop the incomplete frame and return how many codes it held."""
        left = len(self._pending)
        self._pending = []
        return left


def frames_to_layers(frames: Sequence[Frame]) -> tuple[list[int], list[int], list[int]]:
    """Split frames into SNAC's codebook layers (lengths F, 2F, 4F)."""
    l0: list[int] = []
    l1: list[int] = []
    l2: list[int] = []
    for f in frames:
        l0.append(f[0])
        l1.extend((f[1], f[4]))
        l2.extend((f[2], f[3], f[5], f[6]))
    return l0, l1, l2
