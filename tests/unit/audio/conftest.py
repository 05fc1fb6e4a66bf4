"""Shared random-weight SNAC for the audio tests: built once per session (about a second on CPU)."""

from __future__ import annotations

import pytest

from orpheus_bench.audio.decoder import SnacDecoder
from orpheus_bench.audio.snac_loader import LoadedSnac, load_snac


@pytest.fixture(scope="session")
def random_snac() -> LoadedSnac:
    return load_snac("random", "cpu", seed=0, torch_threads=1)


@pytest.fixture(scope="session")
def decoder(random_snac: LoadedSnac) -> SnacDecoder:
    return SnacDecoder(random_snac)
