"""Fixtures for tests against a real llama-server serving the tiny Orpheus-format model.

`tiny_model_path` builds (once, cached) the default test GGUF, which ends speech after about 4.7 frames per word
of the prompt, like Orpheus; `tiny_fixed_model_path` the variant that never ends speech, for tests that count on
exactly `n_predict` tokens. `llama_server_np4` and `llama_server_np1` start one llama-server each per test session
from the `test-np4` / `test-np1` profiles on the default model, `llama_server_fixed_np4` and
`llama_server_fixed_np1` the same on the fixed one, and yield its base URL. When no llama-server is installed the
tests that use them are skipped with the install hint, unless `ORPHEUS_BENCH_REQUIRE_TOOLS=1` (CI sets it),
which turns the skip into a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from needs import missing

from orpheus_bench.errors import LaunchError
from orpheus_bench.server.binary import find_llama_server
from orpheus_bench.server.launcher import LlamaServer
from orpheus_bench.server.model_builder import TinyModelSpec, cached_test_model
from orpheus_bench.server.profiles import resolve_profile


def _require_binary() -> Path:
    try:
        return find_llama_server()
    except LaunchError as exc:
        missing(str(exc))


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    """The default tiny Orpheus-format GGUF, which ends speech (built on first use, then cached)."""
    return cached_test_model()


@pytest.fixture(scope="session")
def tiny_fixed_model_path() -> Path:
    """The tiny model that never ends speech: every request lasts exactly n_predict tokens or fills its slot."""
    return cached_test_model(TinyModelSpec(speech="fixed"))


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    """The llama-server binary the tests use (skips or fails as the module docstring says)."""
    return _require_binary()


def _serve(profile: str, model: Path, tmp: pytest.TempPathFactory) -> Iterator[str]:
    _require_binary()
    log = tmp.mktemp(f"llama-server-{profile}") / "server.log"
    with LlamaServer(resolve_profile(profile), model, log_path=log, ready_timeout_s=60) as server:
        yield server.url


@pytest.fixture(scope="session")
def llama_server_np4(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a 4-slot llama-server (profile test-np4: 1024 tokens per slot) for the whole session."""
    yield from _serve("test-np4", tiny_model_path, tmp_path_factory)


@pytest.fixture(scope="session")
def llama_server_np1(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a 1-slot llama-server (profile test-np1: 2048 tokens) for the whole session."""
    yield from _serve("test-np1", tiny_model_path, tmp_path_factory)


@pytest.fixture(scope="session")
def llama_server_fixed_np4(tiny_fixed_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`llama_server_np4` on the model that never ends speech."""
    yield from _serve("test-np4", tiny_fixed_model_path, tmp_path_factory)


@pytest.fixture(scope="session")
def llama_server_fixed_np1(tiny_fixed_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`llama_server_np1` on the model that never ends speech."""
    yield from _serve("test-np1", tiny_fixed_model_path, tmp_path_factory)
