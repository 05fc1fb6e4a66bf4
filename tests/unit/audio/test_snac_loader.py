"""SNAC loading: random weights (deterministic, same architecture), local directories, hub failures offline."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from snac import SNAC
from snac.layers import NoiseBlock
from torch.nn.utils import parametrize
from torch.utils.flop_counter import FlopCounterMode

from orpheus_bench.audio import snac_loader
from orpheus_bench.audio.decoder import SnacDecoder
from orpheus_bench.audio.snac_loader import (
    SNAC_24KHZ_CONFIG,
    GemmConvTranspose1d,
    LoadedSnac,
    default_torch_threads,
    load_snac,
    resolve_device,
)
from orpheus_bench.core.frames import Frame
from orpheus_bench.errors import ConfigError

pytestmark = pytest.mark.unit


def random_frames(n: int, seed: int = 1) -> list[Frame]:
    rng = random.Random(seed)
    return [tuple(rng.randrange(4096) for _ in range(7)) for _ in range(n)]  # type: ignore[misc]


def test_random_snac_is_the_24khz_architecture_prepared_for_inference(random_snac: LoadedSnac) -> None:
    m = random_snac.model
    assert random_snac.random_weights and random_snac.device == "cpu" and random_snac.spec == "random"
    assert "random weights" in random_snac.description and "noise" in random_snac.description
    assert list(m.vq_strides) == [4, 2, 1] and int(m.hop_length) == 512 and m.sampling_rate == 24000
    assert not m.training
    assert not any(isinstance(x, NoiseBlock) for x in m.modules())
    assert not any(parametrize.is_parametrized(x) for x in m.modules())
    assert not any(p.requires_grad for p in m.parameters())
    assert random_snac.torch_threads == torch.get_num_threads() == 1


def test_random_weights_follow_the_seed_and_leave_the_global_rng_alone(random_snac: LoadedSnac) -> None:
    state = torch.random.get_rng_state()
    again = load_snac("random", "cpu", seed=0, torch_threads=1)
    other = load_snac("random", "cpu", seed=1, torch_threads=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    w0 = random_snac.model.quantizer.quantizers[0].codebook.weight
    assert torch.equal(w0, again.model.quantizer.quantizers[0].codebook.weight)
    assert not torch.equal(w0, other.model.quantizer.quantizers[0].codebook.weight)


def test_folding_weight_norm_keeps_the_output(decoder: SnacDecoder) -> None:
    unfolded = SnacDecoder(load_snac("random", "cpu", seed=0, fold_weight_norm=False, torch_threads=1))
    assert any(parametrize.is_parametrized(x) for x in unfolded.loaded.model.modules())
    frames = random_frames(2)
    np.testing.assert_allclose(decoder.decode_frames(frames), unfolded.decode_frames(frames), atol=1e-5)


def test_snac_noise_on_is_not_reproducible_which_is_why_it_is_off_by_default(decoder: SnacDecoder) -> None:
    noisy = SnacDecoder(load_snac("random", "cpu", seed=0, noise="random", torch_threads=1))
    assert "non-deterministic" in noisy.loaded.description
    frames = random_frames(1)
    a, b = noisy.decode_frames(frames), noisy.decode_frames(frames)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(decoder.decode_frames(frames), decoder.decode_frames(frames))


@pytest.mark.parametrize("stride", [2, 4, 8])
@pytest.mark.parametrize("batch", [1, 3])
def test_gemm_transposed_conv_matches_torch(stride: int, batch: int) -> None:
    conv = torch.nn.ConvTranspose1d(16, 8, 2 * stride, stride=stride, padding=(stride + 1) // 2)
    assert GemmConvTranspose1d.applies_to(conv)
    x = torch.randn(batch, 16, 5)
    with torch.inference_mode():
        torch.testing.assert_close(GemmConvTranspose1d(conv)(x), conv(x), atol=1e-5, rtol=1e-5)
    assert not GemmConvTranspose1d.applies_to(torch.nn.ConvTranspose1d(16, 8, 3, stride=2))


def test_cpu_load_uses_gemm_for_the_two_heavy_upsamplers(random_snac: LoadedSnac, decoder: SnacDecoder) -> None:
    assert sum(isinstance(m, GemmConvTranspose1d) for m in random_snac.model.modules()) == 2
    assert "2 transposed convs as GEMM" in random_snac.description
    plain = SnacDecoder(load_snac("random", "cpu", seed=0, gemm_transposed_convs=False, torch_threads=1))
    assert not any(isinstance(m, GemmConvTranspose1d) for m in plain.loaded.model.modules())
    frames = random_frames(2)
    np.testing.assert_allclose(decoder.decode_frames(frames), plain.decode_frames(frames), atol=1e-5)


def test_zero_noise_matches_removed_noise_at_snac_cost(decoder: SnacDecoder) -> None:
    assert decoder.loaded.noise == "zero"
    removed = SnacDecoder(load_snac("random", "cpu", seed=0, noise="off", torch_threads=1))
    frames = random_frames(1)
    np.testing.assert_array_equal(decoder.decode_frames(frames), removed.decode_frames(frames))

    def flops(loaded: LoadedSnac) -> int:
        codes = [torch.zeros(1, k, dtype=torch.int64) for k in (1, 2, 4)]
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            loaded.model.decode(codes)
        return int(counter.get_total_flops())

    snac_own = load_snac("random", "cpu", seed=0, noise="random", torch_threads=1)
    assert flops(decoder.loaded) == flops(snac_own) > flops(removed.loaded)


def test_local_directory_loads_the_saved_weights(tmp_path: Path, decoder: SnacDecoder) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SNAC(**SNAC_24KHZ_CONFIG)
    (tmp_path / "config.json").write_text(json.dumps(SNAC_24KHZ_CONFIG))
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    loaded = load_snac(str(tmp_path), "cpu", torch_threads=1)
    assert not loaded.random_weights and "local directory" in loaded.description
    frames = random_frames(1)
    np.testing.assert_allclose(SnacDecoder(loaded).decode_frames(frames), decoder.decode_frames(frames), atol=1e-5)


def test_directory_without_weights_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(SNAC_24KHZ_CONFIG))
    with pytest.raises(ConfigError, match=r"pytorch_model\.bin") as err:
        load_snac(str(tmp_path), "cpu")
    assert err.value.field == "snac_model"


def test_hub_failure_offline_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(repo_id: str) -> SNAC:
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(snac_loader.SNAC, "from_pretrained", offline)
    with pytest.raises(ConfigError, match="Offline") as err:
        load_snac("hubertsiuzdak/snac_24khz", "cpu")
    assert err.value.field == "snac_model"


def test_non_24khz_snac_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def snac_44khz(repo_id: str) -> SNAC:  # the 44 kHz layout, shrunk so it builds fast
        return SNAC(encoder_dim=4, decoder_dim=64, attn_window_size=None, codebook_size=16)

    monkeypatch.setattr(snac_loader.SNAC, "from_pretrained", snac_44khz)
    with pytest.raises(ConfigError, match="not a SNAC 24 kHz"):
        load_snac("hubertsiuzdak/snac_44khz", "cpu")


@pytest.mark.parametrize("spec", ["", "no such thing", "./missing/dir"])
def test_unknown_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="snac_model"):
        load_snac(spec, "cpu")


def test_devices() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            resolve_device("cuda")
    threads = default_torch_threads("cpu")
    assert threads is not None and threads >= 1
    assert default_torch_threads("cuda") is None
