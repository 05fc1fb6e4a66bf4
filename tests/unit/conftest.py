"""Fixtures shared by the unit tests: record builders whose timings are given explicitly."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from record_factory import build_record

from orpheus_bench.records import RequestRecord, ServerTimings

RecordFactory = Callable[..., RequestRecord]


@pytest.fixture
def make_record() -> RecordFactory:
    """`record_factory.build_record`, as a fixture."""
    return build_record


@pytest.fixture
def timings() -> type[ServerTimings]:
    """ServerTimings, for tests that attach server timings."""
    return ServerTimings
