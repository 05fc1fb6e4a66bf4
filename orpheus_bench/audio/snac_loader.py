"""Loading the SNAC 24 kHz decoder: a hub id, a local directory, or the same architecture with random weights.

SNAC 24 kHz has three codebooks of 4096 codes at 12, 23 and 47 Hz (``vq_strides`` 4, 2, 1 over a 512-sample
latent hop), i.e. 1, 2 and 4 codes per 2048-sample Orpheus frame. Decoding sums the three codebooks'
projections (each repeated to the latent rate), then runs a depthwise conv, four upsampling blocks (x8, x8,
x4, x2; each a transposed conv, a noise block and three dilated residual units) and a final conv + tanh.

Inference-time changes, all named in `LoadedSnac.description`:

- Weight norm is folded into plain weights (``remove_parametrizations(..., leave_parametrized=True)``): the
  output is the same (checked in the tests) and each forward skips recomputing ``g * v / ||v||``: a 4-frame
  window went from 46-55 to 34 ms with two torch threads (issue 9); with one thread the gain was within noise.
- On CPU the two weight-heavy transposed convolutions run as one GEMM each (`GemmConvTranspose1d`): torch's
  CPU dispatch picks a slow kernel for them at batch 1 and short inputs (1-frame window 74 -> 35 ms,
  2-frame 88 -> 54 ms; 4 frames unchanged).
- SNAC's ``NoiseBlock`` adds ``randn(B, 1, T) * conv1x1(x)`` on every call, even in eval mode, so the same
  codes never decode twice to the same samples and a batch draws different noise than single windows.
  ``noise="zero"`` (the default) still computes each block's 1x1 projection but adds it times zero: decoding
  is deterministic, batching cannot change a stream's samples, window fidelity can be measured, and the cost
  stays SNAC's (the projections are about 12% of the convolution work: 3.3 vs 2.9 GFLOP per 4-frame window).
  ``noise="off"`` removes the blocks (same samples, that 12% cheaper); ``noise="random"`` keeps SNAC's own
  behaviour.

``backend="onnx"`` (CPU, deterministic noise modes only) hands the ``decode`` call to ONNX Runtime, see
`orpheus_bench.audio.onnx_backend`; the torch model stays loaded (it is exported from, and checked against).

``random`` weights are drawn from torch's default initialisers under a private RNG seeded by ``seed``, so two
loads with one seed are identical and the global RNG is untouched. The audio is noise; the cost and the
receptive field are those of the real model, which is what the harness needs offline.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from snac import SNAC
from snac.layers import NoiseBlock
from torch import nn
from torch.nn.utils import parametrize

from orpheus_bench.core.frames import SAMPLES_PER_FRAME
from orpheus_bench.errors import ConfigError

HUB_SNAC_24KHZ = "hubertsiuzdak/snac_24khz"
SNAC_24KHZ_CONFIG: dict[str, Any] = {
    "sampling_rate": 24000,
    "encoder_dim": 48,
    "encoder_rates": [2, 4, 8, 8],
    "decoder_dim": 1024,
    "decoder_rates": [8, 8, 4, 2],
    "attn_window_size": None,
    "codebook_size": 4096,
    "codebook_dim": 8,
    "vq_strides": [4, 2, 1],
    "noise": True,
    "depthwise": True,
}
NoiseMode = Literal["zero", "off", "random"]
Backend = Literal["torch", "onnx"]
_NOISE_WORDS: dict[str, str] = {
    "zero": "noise blocks add zero (deterministic, same cost)",
    "off": "noise blocks removed (deterministic, ~12% fewer FLOPs)",
    "random": "SNAC noise on (non-deterministic)",
}
_HUB_ID_RE = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True, slots=True)
class LoadedSnac:
    """A ready-to-use SNAC model and how it was obtained."""

    model: Any  # snac.SNAC, eval mode, on `device`
    device: str  # "cpu" or "cuda[:N]"
    spec: str  # what the user asked for: "random", a hub id or a directory
    random_weights: bool
    description: str  # plain words for run.json and reports
    noise: NoiseMode = "zero"
    torch_threads: int = 1  # torch intra-op threads in effect after loading
    seed: int = 0  # the random-weight seed (unused for real weights)
    backend: Backend = "torch"  # what runs `decode`: the torch model or `onnx_session`
    onnx_session: Any = None  # onnxruntime.InferenceSession when backend == "onnx"


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; an explicit CUDA device must exist."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if re.fullmatch(r"cuda(:\d+)?", device):
        if not torch.cuda.is_available():
            raise ConfigError("snac_device", f"{device} requested but torch sees no CUDA device")
        return device
    raise ConfigError("snac_device", f"unknown device {device!r}; use auto, cpu or cuda[:N]")


def default_torch_threads(device: str) -> int | None:
    """Intra-op threads for SNAC on ``device``; None leaves torch's setting alone.

    On CPU we leave one core to the event loop (or gevent hub) that parses SSE and stamps timestamps: a
    decode that takes every core delays those timestamps and makes the harness, not the server, the thing
    measured. Two torch threads on a 2-core box also measured slower than one under load. On CUDA the CPU
    threads only launch kernels.
    """
    if device != "cpu":
        return None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def load_snac(
    spec: str = "random",
    device: str = "auto",
    *,
    seed: int = 0,
    noise: NoiseMode = "zero",
    fold_weight_norm: bool = True,
    gemm_transposed_convs: bool | None = None,
    torch_threads: int | None = None,
    backend: Backend = "torch",
) -> LoadedSnac:
    """Load SNAC 24 kHz for decoding: ``random``, a hub id (needs the hub or its cache) or a local directory.

    ``gemm_transposed_convs`` (default: on for CPU, needs ``fold_weight_norm``) swaps the two weight-heavy
    upsampling convolutions for `GemmConvTranspose1d`. ``torch_threads`` sets torch's process-wide intra-op
    thread count (default: `default_torch_threads`). ``backend="onnx"`` decodes with ONNX Runtime using the
    same thread count (the graph is exported on first use and cached, see `onnx_backend`).
    Raises `ConfigError` (field ``snac_model``) with a plain message when the weights cannot be loaded, and
    (field ``decode.backend``) when the onnx backend cannot serve this device, noise mode or installation.
    """
    if backend not in ("torch", "onnx"):
        raise ConfigError("decode.backend", f"unknown backend {backend!r}; use torch or onnx")
    if backend == "onnx" and device == "auto":
        device = "cpu"  # ORT is a CPU backend here: "auto" must not pick a GPU it cannot use
    dev = device if backend == "onnx" else resolve_device(device)  # onnx: a cuda device is refused below
    if noise not in _NOISE_WORDS:
        raise ConfigError("snac_noise", f"unknown noise mode {noise!r}; use {', '.join(_NOISE_WORDS)}")
    if backend == "onnx":
        from orpheus_bench.audio import onnx_backend

        onnx_backend.check_supported(dev, noise)
    if spec == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = SNAC(**SNAC_24KHZ_CONFIG)
        what = f"random weights (offline, seed {seed}): the audio is noise, the decode cost is real"
        random_weights = True
    elif Path(spec).is_dir():
        model = _load_local(Path(spec))
        what = f"{spec} (local directory)"
        random_weights = False
    elif _HUB_ID_RE.match(spec) and not spec.startswith((".", "/")):
        model = _load_hub(spec)
        what = f"{spec} (Hugging Face hub)"
        random_weights = False
    else:
        raise ConfigError(
            "snac_model",
            f"{spec!r} is neither 'random', an existing directory nor a hub id like {HUB_SNAC_24KHZ}",
        )
    _check_layout(model, spec)
    if noise != "random":
        _replace_noise(model, keep_cost=noise == "zero")
    tricks = []
    if fold_weight_norm:
        fold_weight_norms(model)
        tricks.append("weight norm folded")
        if gemm_transposed_convs if gemm_transposed_convs is not None else dev == "cpu":
            tricks.append(f"{use_gemm_transposed_convs(model)} transposed convs as GEMM")
    model = model.to(dev).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    threads = torch_threads if torch_threads is not None else default_torch_threads(dev)
    if threads is not None:
        torch.set_num_threads(threads)
    steps = "; ".join([_NOISE_WORDS[noise], *tricks])
    session = None
    run_by = ""
    if backend == "onnx":
        from orpheus_bench.audio import onnx_backend

        ort_threads = torch.get_num_threads()
        key = onnx_backend.cache_key(spec=spec, seed=seed, noise=noise, tricks=steps)
        session, path, exported = onnx_backend.load_session(model, key=key, threads=ort_threads)
        ort = onnx_backend.require_onnxruntime()
        run_by = (
            f"; decoded by ONNX Runtime {ort.__version__} ({ort_threads} intra-op thread(s), spinning off, "
            f"graph {'exported to' if exported else 'reused from'} {path})"
        )
    return LoadedSnac(
        model=model,
        device=dev,
        spec=spec,
        random_weights=random_weights,
        description=f"SNAC 24 kHz, {what}; {steps}; on {dev}{run_by}",
        noise=noise,
        torch_threads=torch.get_num_threads(),
        seed=seed,
        backend=backend,
        onnx_session=session,
    )


def fold_weight_norms(model: nn.Module) -> int:
    """Replace every weight-norm parametrization by its current weight; return how many were folded."""
    folded = 0
    for module in model.modules():
        if parametrize.is_parametrized(module):
            parametrizations: Any = module.parametrizations
            for name in list(parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
                folded += 1
    return folded


class GemmConvTranspose1d(nn.Module):
    """A ``ConvTranspose1d`` with kernel = 2 x stride, computed as one GEMM plus an overlap-add.

    Why: at batch 1 and short inputs torch's CPU dispatch picks its slow reference kernel for transposed
    convolutions (oneDNN only above ~20k input elements), so SNAC's first upsampling layer (8.4M of the
    decoder's 13M weights) took ~50 ms for a 1-frame window instead of ~10. One GEMM over the (batch x time)
    columns also reads those weights once per batch rather than once per window. Same sums, other order:
    outputs match torch's to ~1e-6.

    Each input step t yields 2s output samples: the first half lands on [t s, (t+1) s), the second on
    [(t+1) s, (t+2) s); the two halves are summed with a one-step shift, then ``padding`` is cropped.
    """

    weight_t: torch.Tensor
    bias: torch.Tensor

    def __init__(self, conv: nn.ConvTranspose1d) -> None:
        super().__init__()
        c_in, c_out, kernel = conv.weight.shape
        self.stride = int(conv.stride[0])
        self.padding = int(conv.padding[0])
        self.c_out = int(c_out)
        # (c_out * kernel, c_in): row (o, k) is the kernel tap k of output channel o
        self.register_buffer("weight_t", conv.weight.detach().reshape(c_in, c_out * kernel).t().contiguous())
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(c_out)
        self.register_buffer("bias", bias.reshape(1, c_out, 1).clone())

    @staticmethod
    def applies_to(conv: nn.Module) -> bool:
        """Whether `conv` has the shape this module reproduces exactly."""
        return (
            isinstance(conv, nn.ConvTranspose1d)
            and not parametrize.is_parametrized(conv)
            and conv.groups == 1
            and conv.dilation[0] == 1
            and conv.output_padding[0] == 0
            and conv.kernel_size[0] == 2 * conv.stride[0]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c_in, t = x.shape
        s = self.stride
        columns = x.transpose(0, 1).reshape(c_in, b * t)
        taps = torch.mm(self.weight_t, columns).view(self.c_out, 2, s, b, t).permute(3, 0, 1, 4, 2)
        y = nn.functional.pad(taps[:, :, 0], (0, 0, 0, 1)) + nn.functional.pad(taps[:, :, 1], (0, 0, 1, 0))
        y = y.reshape(b, self.c_out, (t + 1) * s)
        return y[..., self.padding : (t + 1) * s - self.padding] + self.bias


def use_gemm_transposed_convs(model: nn.Module, min_weights: int = 1_000_000) -> int:
    """Swap transposed convs with at least ``min_weights`` weights for `GemmConvTranspose1d`; return the count.

    Only the weight-heavy layers: on the long, thin later layers oneDNN's kernel is as fast or faster.
    """
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            heavy = isinstance(child, nn.ConvTranspose1d) and child.weight.numel() >= min_weights
            if heavy and GemmConvTranspose1d.applies_to(child):
                setattr(parent, name, GemmConvTranspose1d(child))  # type: ignore[arg-type]
                replaced += 1
    return replaced


class _ZeroNoise(nn.Module):
    """A NoiseBlock with zero noise: computes the block's projection (its cost) and adds nothing."""

    def __init__(self, block: NoiseBlock) -> None:
        super().__init__()
        self.linear = block.linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(x) * 0.0


def _replace_noise(model: nn.Module, *, keep_cost: bool) -> int:
    """Swap each `NoiseBlock` for `_ZeroNoise` (keep_cost) or an identity; return how many were replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, NoiseBlock):
                setattr(parent, name, _ZeroNoise(child) if keep_cost else nn.Identity())
                replaced += 1
    return replaced


def _load_local(path: Path) -> Any:
    config_path = path / "config.json"
    weights_path = path / "pytorch_model.bin"
    for p in (config_path, weights_path):
        if not p.is_file():
            raise ConfigError(
                "snac_model",
                f"{path} has no {p.name}; a SNAC directory needs config.json and pytorch_model.bin",
            )
    try:
        config = json.loads(config_path.read_text())
        model = SNAC(**config)
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        raise ConfigError("snac_model", f"could not load SNAC from {path}: {exc}") from exc
    return model


def _load_hub(repo_id: str) -> Any:
    try:
        return SNAC.from_pretrained(repo_id)
    except Exception as exc:  # huggingface_hub raises many types: offline, 404, auth, corrupt cache
        raise ConfigError(
            "snac_model",
            f"could not load {repo_id} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            "Offline? Use --snac-model random (same cost, noise audio) or a local directory with "
            "config.json + pytorch_model.bin.",
        ) from exc


def _check_layout(model: Any, spec: str) -> None:
    """Orpheus frames assume SNAC 24 kHz: three codebooks, strides 4/2/1, 2048 samples per frame."""
    hop = int(model.hop_length)
    strides = list(model.vq_strides)
    if strides != [4, 2, 1] or hop * strides[0] != SAMPLES_PER_FRAME or model.sampling_rate != 24000:
        raise ConfigError(
            "snac_model",
            f"{spec} is not a SNAC 24 kHz model (vq_strides {strides}, hop {hop}, "
            f"rate {model.sampling_rate}); Orpheus uses {HUB_SNAC_24KHZ}",
        )
