"""The onnx decode backend: equal to torch on the same windows, batching-invariant, cached, and refused clearly."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from orpheus_bench.audio import onnx_backend
from orpheus_bench.audio.decoder import SnacDecoder
from orpheus_bench.audio.snac_loader import LoadedSnac, load_snac
from orpheus_bench.core.frames import Frame
from orpheus_bench.core.windows import DecodeSpec, DecodeWindow, WindowPlanner
from orpheus_bench.errors import ConfigError

pytestmark = [pytest.mark.unit, pytest.mark.slow]  # one ~10 s ONNX export per module

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'orpheus-bench[onnx]')")
pytest.importorskip("onnxscript", reason="onnxscript not installed (pip install 'orpheus-bench[onnx]')")


def _frames(n: int, seed: int) -> list[Frame]:
    rng = random.Random(seed)
    return [tuple(rng.randrange(4096) for _ in range(7)) for _ in range(n)]  # type: ignore[misc]


def _windows(n_frames: int, seed: int) -> list[DecodeWindow]:
    planner = WindowPlanner(DecodeSpec.from_preset("chunked"))
    return [w for f in _frames(n_frames, seed) for w in planner.feed(f)] + planner.flush()


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("orpheus-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ORPHEUS_BENCH_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="module")
def onnx_snac(onnx_cache: Path) -> LoadedSnac:
    """The conftest's model (random, seed 0, one thread) with ORT decoding: the module's one export."""
    return load_snac("random", "cpu", seed=0, torch_threads=1, backend="onnx")


@pytest.fixture(scope="module")
def onnx_decoder(onnx_snac: LoadedSnac) -> SnacDecoder:
    return SnacDecoder(onnx_snac)


def test_loaded_onnx_describes_itself_and_caches_the_graph(onnx_snac: LoadedSnac, onnx_cache: Path) -> None:
    assert onnx_snac.backend == "onnx"
    assert onnx_snac.onnx_session is not None
    assert "ONNX Runtime" in onnx_snac.description and "exported to" in onnx_snac.description
    graphs = list((onnx_cache / "snac-onnx").glob("*.onnx"))
    assert len(graphs) == 1, graphs
    assert str(graphs[0]) in onnx_snac.description
    opts = onnx_snac.onnx_session.get_session_options()
    assert opts.intra_op_num_threads == onnx_snac.torch_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL


def test_onnx_equals_torch_on_the_same_windows(onnx_decoder: SnacDecoder, decoder: SnacDecoder) -> None:
    windows = _windows(9, seed=3)
    assert len({w.n_frames for w in windows}) > 1  # several window lengths, i.e. several graph shapes
    got = onnx_decoder.decode_batch(windows)
    want = decoder.decode_batch(windows)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.float32 and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-4)
    assert any(float(np.max(np.abs(w))) > 1e-3 for w in want)  # not comparing silence


def test_onnx_batched_equals_unbatched(onnx_decoder: SnacDecoder) -> None:
    windows = _windows(9, seed=5)
    batched = onnx_decoder.decode_batch(windows)
    for w, b in zip(windows, batched, strict=True):
        np.testing.assert_allclose(onnx_decoder.decode_window(w), b, rtol=0, atol=1e-5)


def test_cached_graph_is_reused(onnx_snac: LoadedSnac, onnx_cache: Path) -> None:
    again = load_snac("random", "cpu", seed=0, torch_threads=1, backend="onnx")
    assert "reused from" in again.description
    assert len(list((onnx_cache / "snac-onnx").glob("*.onnx"))) == 1


def test_cache_key_separates_what_changes_the_graph() -> None:
    base = {"spec": "random", "seed": 0, "noise": "zero", "tricks": "a"}
    key = onnx_backend.cache_key(**base)  # type: ignore[arg-type]
    assert key == onnx_backend.cache_key(**base)  # type: ignore[arg-type]
    for change in ({"seed": 1}, {"noise": "off"}, {"tricks": "b"}, {"spec": "x/y"}):
        assert onnx_backend.cache_key(**{**base, **change}) != key  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("device", "noise", "words"),
    [("cpu", "random", "deterministic"), ("cuda", "zero", "CPU only"), ("cuda:1", "zero", "CPU only")],
)
def test_onnx_refuses_random_noise_and_cuda(device: str, noise: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_snac("random", device, noise=noise, backend="onnx")  # type: ignore[arg-type]
    assert info.value.field == "decode.backend"
    assert words in info.value.message


def test_missing_onnxruntime_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(ConfigError) as info:
        load_snac("random", "cpu", backend="onnx")
    assert info.value.field == "decode.backend"
    assert "pip install 'orpheus-bench[onnx]'" in info.value.message
