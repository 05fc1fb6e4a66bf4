"""Frames -> PCM with a loaded SNAC model; windows of equal length decode together in one batched forward.

A frame's seven codes go to SNAC's three codebooks as ``frames_to_layers`` describes (layer 0: position 0;
layer 1: positions 1, 4; layer 2: positions 2, 3, 5, 6), giving code tensors of shape (B, F), (B, 2F) and
(B, 4F) and PCM of shape (B, 1, 2048 F). SNAC has no batch-coupled layers (no batch norm, and the noise blocks
are off by default, see `snac_loader`), so a window decodes to the same samples alone or in a batch, up to
float rounding of the batched kernels. With ``backend="onnx"`` the same code arrays go to an ONNX Runtime
session instead of ``model.decode`` (see `onnx_backend`); everything around that call is shared.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from orpheus_bench.audio.onnx_backend import run_session
from orpheus_bench.audio.snac_loader import LoadedSnac
from orpheus_bench.core.frames import SAMPLES_PER_FRAME, Frame
from orpheus_bench.core.windows import DecodeWindow
from orpheus_bench.errors import DecodeError

_L1 = [1, 4]
_L2 = [2, 3, 5, 6]


class SnacDecoder:
    """Decodes frames, windows and batches of windows; safe to call from several threads at once."""

    def __init__(self, loaded: LoadedSnac) -> None:
        self.loaded = loaded
        self._model = loaded.model
        self._device = torch.device(loaded.device)
        # ONNX Runtime replaces only SNAC's decode call; its session.run is safe from several threads
        self._session = loaded.onnx_session if loaded.backend == "onnx" else None

    @property
    def device(self) -> str:
        """Where the model runs ("cpu" or "cuda[:N]")."""
        return self.loaded.device

    def decode_frames(self, frames: Sequence[Frame]) -> np.ndarray:
        """Decode whole frames to float32 mono PCM at 24 kHz, ``2048 * len(frames)`` samples."""
        if not frames:
            return np.zeros(0, dtype=np.float32)
        return self._forward([frames])[0]

    def decode_window(self, window: DecodeWindow) -> np.ndarray:
        """Decode one window and return only its kept slice."""
        return self.decode_batch([window])[0]

    def decode_batch(self, windows: Sequence[DecodeWindow]) -> list[np.ndarray]:
        """Decode windows, one forward pass per distinct frame count; kept slices in input order."""
        out: list[np.ndarray | None] = [None] * len(windows)
        groups: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            groups.setdefault(w.n_frames, []).append(i)
        for n_frames, idx in groups.items():
            if n_frames == 0:
                for i in idx:
                    out[i] = np.zeros(0, dtype=np.float32)
                continue
            pcm = self._forward([windows[i].frames for i in idx])
            for row, i in enumerate(idx):
                w = windows[i]
                # copy: the slice would otherwise keep the whole decoded window alive
                out[i] = pcm[row, w.keep_start : w.keep_end].copy()
        return [a if a is not None else np.zeros(0, dtype=np.float32) for a in out]

    def _forward(self, batch: Sequence[Sequence[Frame]]) -> np.ndarray:
        """(B frame sequences of equal length F) -> float32 array (B, 2048 F)."""
        try:
            arr = np.asarray(batch, dtype=np.int64)  # (B, F, 7)
            b, f = arr.shape[0], arr.shape[1]
            layers = [
                np.ascontiguousarray(arr[:, :, 0]),
                arr[:, :, _L1].reshape(b, 2 * f),
                arr[:, :, _L2].reshape(b, 4 * f),
            ]
            if self._session is not None:
                pcm = run_session(self._session, layers)[:, 0, :]
            else:
                codes = [torch.from_numpy(layer).to(self._device) for layer in layers]
                with torch.inference_mode():
                    audio = self._model.decode(codes)
                pcm = audio[:, 0, :].float().cpu().numpy()
        except Exception as exc:
            raise DecodeError(f"SNAC decode of {len(batch)} window(s) failed: {type(exc).__name__}: {exc}") from exc
        if pcm.shape[1] != SAMPLES_PER_FRAME * f:
            raise DecodeError(f"SNAC returned {pcm.shape[1]} samples for {f} frames")
        return pcm
