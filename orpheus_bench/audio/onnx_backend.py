"""ONNX Runtime as an opt-in SNAC decode backend on CPU (``decode.backend: onnx``, issue 9 item 3).

Only SNAC's ``decode`` call (three code layers -> audio) moves to ORT; window planning, batching and the
decode service are unchanged, so the samples equal torch's to float rounding (~5e-7, see
``benchmarks/README.md``, "onnx_decode.py"). With one intra-op thread, the CPU default, ORT measured 1.3-1.8x
faster than torch on the harness's windows; with two threads the two were level at batch 1.

The graph is exported from the loaded model itself (``torch.onnx.export(dynamo=True)``, batch and frame count
dynamic, ~10 s) once and cached as a file under the model builder's cache dir (``$ORPHEUS_BENCH_CACHE`` or
``~/.cache/orpheus-bench``), keyed by everything that decides the weights and the graph: model spec (and, for
a local directory, its weight file's size and mtime), seed, noise mode, the inference tricks, and the torch
and onnxscript versions. Only deterministic models are exported: with SNAC's random noise blocks the graph
would bake in one noise source and differ from torch on every call, so ``noise: random`` is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from orpheus_bench.core.frames import CODEBOOK_SIZE
from orpheus_bench.errors import ConfigError

INPUT_NAMES = ("l0", "l1", "l2")
OUTPUT_NAME = "audio"
INSTALL_HINT = "pip install 'orpheus-bench[onnx]'"
# A cached graph is checked against torch on one small window at load; ORT matched torch to ~5e-7.
_CHECK_TOLERANCE = 1e-4


class CodesToAudio(nn.Module):
    """``model.decode`` with the three code layers as separate inputs (the exporter wants tensors, not a list)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, l0: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor) -> torch.Tensor:
        return self.model.decode([l0, l1, l2])


def example_codes(batch: int, frames: int, seed: int = 1) -> list[torch.Tensor]:
    """Random codes of shapes (B, F), (B, 2F), (B, 4F) from a private generator."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, CODEBOOK_SIZE, (batch, k * frames), generator=g) for k in (1, 2, 4)]


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or `ConfigError` on ``decode.backend`` telling how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigError("decode.backend", f"onnx needs onnxruntime, onnx and onnxscript: {INSTALL_HINT}") from exc
    return onnxruntime


def check_supported(device: str, noise: str) -> None:
    """Raise `ConfigError` (field ``decode.backend``) unless the onnx backend can serve this model.

    Checked before SNAC is loaded, so a bad combination fails in milliseconds rather than after an export.
    """
    if device != "cpu":
        raise ConfigError("decode.backend", f"onnx runs on CPU only (device is {device}); use --device cpu or torch")
    if noise not in ("zero", "off"):
        raise ConfigError(
            "decode.backend",
            f"onnx needs a deterministic model (noise zero or off, not {noise}): an exported graph cannot "
            "reproduce SNAC's random noise",
        )
    require_onnxruntime()
    for module in ("onnx", "onnxscript"):  # the exporter needs both; say so before a 10 s export fails
        try:
            __import__(module)
        except ImportError as exc:
            raise ConfigError("decode.backend", f"exporting SNAC needs {module}: {INSTALL_HINT}") from exc


def cache_key(*, spec: str, seed: int, noise: str, tricks: str) -> str:
    """A short hash of what decides the exported graph: weights, graph rewrites and exporter versions."""
    import onnxscript

    fields: dict[str, Any] = {
        "spec": spec,
        "seed": seed if spec == "random" else None,
        "noise": noise,
        "tricks": tricks,
        "torch": torch.__version__,
        "onnxscript": onnxscript.__version__,
    }
    weights = Path(spec) / "pytorch_model.bin"
    if spec != "random" and weights.is_file():
        st = weights.stat()
        fields["spec"] = str(Path(spec).resolve())
        fields["weights"] = [st.st_size, st.st_mtime_ns]
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def cached_onnx_path(key: str) -> Path:
    """Where the graph for `key` lives: ``<cache_dir>/snac-onnx/snac24-<key>.onnx``."""
    from orpheus_bench.server.model_builder import cache_dir

    return cache_dir() / "snac-onnx" / f"snac24-{key}.onnx"


def export_decode(model: Any, path: Path, *, dynamic: bool = True) -> None:
    """Export ``model.decode`` (codes -> audio) to `path`; batch and frame count dynamic when ``dynamic``.

    Written to a temporary file in the same folder and renamed, so a concurrent reader never sees half a file.
    """
    wrapper = CodesToAudio(model).eval()
    shapes: Any = None
    if dynamic:
        batch = torch.export.Dim("batch", min=1, max=256)
        frames = torch.export.Dim("frames", min=1, max=512)
        shapes = ({0: batch, 1: frames}, {0: batch, 1: 2 * frames}, {0: batch, 1: 4 * frames})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp.onnx")
    os.close(fd)
    tmp = Path(tmp_name)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it logs harmless notes (e.g. "torchvision is not installed") to stderr
    try:
        # the dynamo exporter warns about internals we cannot act on; the project turns warnings into errors
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                tuple(example_codes(2, 3)),
                str(tmp),
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamo=True,
                dynamic_shapes=shapes,
                external_data=False,
                verbose=False,
            )
        os.replace(tmp, path)
    finally:
        exporter_log.setLevel(level)
        tmp.unlink(missing_ok=True)


def ort_session(path: Path, threads: int) -> Any:
    """An ORT CPU session: ``threads`` intra-op threads, spinning off, sequential execution.

    Spinning off because a spinning ORT thread would take the core that the event loop (or gevent hub)
    needs for timestamps, the reason `default_torch_threads` leaves a core free.
    """
    ort = require_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def run_session(session: Any, codes: list[np.ndarray]) -> np.ndarray:
    """Three int64 code arrays (B, F), (B, 2F), (B, 4F) -> audio (B, 1, 2048 F) float32."""
    feed = {name: np.ascontiguousarray(c, dtype=np.int64) for name, c in zip(INPUT_NAMES, codes, strict=True)}
    return np.asarray(session.run([OUTPUT_NAME], feed)[0])


def _matches_torch(session: Any, model: Any) -> bool:
    codes = example_codes(1, 1, seed=7)
    with torch.inference_mode():
        ref = model.decode(codes).float().numpy()
    out = run_session(session, [c.numpy() for c in codes])
    return out.shape == ref.shape and float(np.max(np.abs(out - ref))) <= _CHECK_TOLERANCE


def load_session(model: Any, *, key: str, threads: int) -> tuple[Any, Path, bool]:
    """An ORT session for `model` (a CPU SNAC in eval mode): (session, graph path, whether it was exported now).

    A cached graph is reused when it decodes one window like torch; otherwise (a stale or corrupt file) it is
    exported again.
    """
    path = cached_onnx_path(key)
    if path.is_file():
        try:
            session = ort_session(path, threads)
            if _matches_torch(session, model):
                return session, path, False
        except Exception:  # an unreadable cache file: export a fresh one below
            pass
    try:
        export_decode(model, path)
    except Exception as exc:  # the exporter raises many types; the user needs the gist and a way out
        raise ConfigError(
            "decode.backend", f"exporting SNAC to ONNX failed ({type(exc).__name__}: {exc}); use backend torch"
        ) from exc
    session = ort_session(path, threads)
    if not _matches_torch(session, model):
        raise ConfigError("decode.backend", f"the ONNX export at {path} does not decode like torch; use torch")
    return session, path, True
