"""Fixtures of the gate tests: crafted runs written under tmp_path (`run_kit`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_kit import Kit


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    """Crafting helpers writing under tmp_path."""
    return Kit(tmp_path)
