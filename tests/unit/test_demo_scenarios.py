"""The demo's built-in clients are the shipped seed scenarios (so the README's two descriptions never drift)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from orpheus_bench.commands.demo import demo_scenarios
from orpheus_bench.scenario import load_scenario

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_demo_clients_match_seed_scenarios() -> None:
    args = argparse.Namespace(
        levels=[1, 2], requests_per_level=3, keep_audio=1, device="auto", model="test", utterance_tokens=140
    )
    before, after = demo_scenarios(args)
    for built, name in ((before, "seed-before"), (after, "seed-after")):
        shipped = load_scenario(REPO / "scenarios" / f"{name}.yaml")
        assert built.mode == shipped.mode
        assert built.protocol == shipped.protocol
        # everything but the length cap (the tiny model never ends speech) is the seed's client
        assert built.sampling.model_copy(update={"max_tokens": shipped.sampling.max_tokens}) == shipped.sampling
        assert built.sampling.max_tokens == 140
        assert built.decode.spec() == shipped.decode.spec()
        assert built.prompts == shipped.prompts
        assert built.server.profile == name
        assert built.load.concurrency == [1, 2] and built.load.requests_per_level == 3
    assert before.mode == "blocking" and before.sampling.temperature == 0.8
    assert after.decode.spec().window_frames == 4 and after.sampling.top_k == 30


@pytest.mark.parametrize(
    ("decode", "before_mode", "after_mode"), [("chunked", "blocking", "chunked"), ("off", "off", "off")]
)
def test_demo_decode_choices(decode: str, before_mode: str, after_mode: str) -> None:
    args = argparse.Namespace(
        levels=[1],
        requests_per_level=1,
        keep_audio=1,
        device="auto",
        model="test",
        utterance_tokens=70,
        decode=decode,
    )
    before, after = demo_scenarios(args)
    assert before.decode.spec().mode == before_mode and after.decode.spec().mode == after_mode
    assert before.mode == "blocking" and after.mode == "stream"
