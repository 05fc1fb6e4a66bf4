"""Fault specs: deterministic request selection and the ``--fault KIND:k=v`` parser."""

from __future__ import annotations

import itertools

import pytest

from orpheus_bench.errors import ConfigError
from orpheus_bench.sim.faults import FaultKind, FaultSpec, parse_fault, select_fault

pytestmark = pytest.mark.unit


def hits(spec: FaultSpec, n: int = 20) -> list[int]:
    return [i for i in range(1, n + 1) if spec.selects(i)]


def test_default_selects_every_request() -> None:
    assert hits(FaultSpec(kind=FaultKind.SLOW)) == list(range(1, 21))


def test_every_k_th_request() -> None:
    assert hits(FaultSpec(kind=FaultKind.SLOW, every=3)) == [3, 6, 9, 12, 15, 18]


def test_first_m_requests() -> None:
    assert hits(FaultSpec(kind=FaultKind.SLOW, first=2)) == [1, 2]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.9, 1.0])
def test_fraction_is_exact_and_spread(fraction: float) -> None:
    spec = FaultSpec(kind=FaultKind.SLOW, fraction=fraction)
    for n in (10, 30, 60):
        assert len(hits(spec, n)) == int(n * fraction + 1e-9)
    picked = hits(spec, 60)
    if len(picked) > 2:
        gaps = {b - a for a, b in itertools.pairwise(picked)}
        assert max(gaps) - min(gaps) <= 1  # evenly spread, no bursts


def test_selectors_combine() -> None:
    assert hits(FaultSpec(kind=FaultKind.SLOW, every=2, first=7)) == [2, 4, 6]


def test_first_matching_fault_wins() -> None:
    faults = [FaultSpec(kind=FaultKind.HTTP_ERROR, every=4), FaultSpec(kind=FaultKind.SLOW, every=2)]
    kinds = [(f.kind if (f := select_fault(faults, n)) else None) for n in range(1, 9)]
    assert kinds == [None, FaultKind.SLOW, None, FaultKind.HTTP_ERROR] * 2


def test_parse_fault_reads_kind_and_parameters() -> None:
    spec = parse_fault("disconnect:after_tokens=20, every=3")
    assert spec.kind is FaultKind.DISCONNECT and spec.after_tokens == 20 and spec.every == 3
    assert parse_fault("http_error:status=400,fraction=0.25").status == 400
    assert parse_fault("malformed:variant=partial_json").variant == "partial_json"
    assert parse_fault("no_audio").kind is FaultKind.NO_AUDIO


@pytest.mark.parametrize(
    "text",
    [
        "bogus",
        "disconnect:after_tokens",
        "disconnect:after_tokens=x",
        "disconnect:nonsense=1",
        "http_error:status=200",
        "malformed:variant=weird",
        "slow:fraction=2",
    ],
)
def test_parse_fault_rejects_bad_specs_naming_the_flag(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_fault(text)
    assert info.value.field == "--fault"
