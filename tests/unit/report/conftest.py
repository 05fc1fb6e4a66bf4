"""Synthetic before/after run directories for the report tests (a hostile prompt included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_runs import SyntheticSpec, synthetic_run

from orpheus_bench.results.compare import Comparison, compare
from orpheus_bench.results.compile import compile_run
from orpheus_bench.results.model import RunResults

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    before = synthetic_run(
        root / "before",
        SyntheticSpec(
            levels=(1, 2),
            requests_per_level=6,
            mode="blocking",
            ttfa_base_s=3.0,
            ttfa_per_worker_s=1.5,
            generation_rtf=2.0,
            fail_every=5,
            prompt=XSS,
        ),
        name="before",
    )
    after = synthetic_run(
        root / "after",
        SyntheticSpec(levels=(1, 2, 4), requests_per_level=8, generation_rtf=1.3, prompt=XSS, invalid_every=4),
        name="after",
    )
    return before, after


@pytest.fixture(scope="session")
def compiled(run_dirs: tuple[Path, Path]) -> tuple[RunResults, RunResults, Comparison]:
    before, after = (compile_run(d) for d in run_dirs)
    return before, after, compare(before, after, n_resamples=200)
