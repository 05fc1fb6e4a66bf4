"""The demo's built-in clients are the shipped seed scenarios (so the README's two descriptions never drift)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from orpheus_bench.commands.demo import demo_scenarios, pipeline_scenario, resolve_decode, write_summary
from orpheus_bench.scenario import load_scenario

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _args(**kw: object) -> argparse.Namespace:
    base = {"levels": [1, 2], "requests_per_level": 3, "keep_audio": 1, "device": "cpu", "model": "test",
            "decode": "seed", "pipeline_levels": [1, 2, 4], "pipeline_decode": "reference",
            "pipeline_requests": 4}  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


def test_demo_clients_match_seed_scenarios() -> None:
    before, after = demo_scenarios(_args())
    for built, name in ((before, "seed-before"), (after, "seed-after")):
        shipped = load_scenario(REPO / "scenarios" / f"{name}.yaml")
        assert built.mode == shipped.mode
        assert built.protocol == shipped.protocol
        # the seed's client exactly: the tiny model ends its utterances, so max_tokens is the seed's own
        assert built.sampling == shipped.sampling
        assert built.decode.spec() == shipped.decode.spec()
        assert built.prompts == shipped.prompts
        assert built.server.profile == name
        assert built.load.concurrency == [1, 2] and built.load.requests_per_level == 3
    assert before.mode == "blocking" and before.sampling.temperature == 0.8
    assert after.decode.spec().window_frames == 4 and after.sampling.top_k == 30


@pytest.mark.parametrize(
    ("decode", "before_mode", "after_mode", "pipeline"),
    [
        ("seed", "blocking", "reference", False),
        ("chunked", "blocking", "chunked", False),
        ("off", "off", "off", False),  # asked for the server side only
        ("auto", "off", "off", True),  # a CPU: the headline leaves decoding out, the full pipeline runs apart
    ],
)
def test_demo_decode_choices(decode: str, before_mode: str, after_mode: str, pipeline: bool) -> None:
    args = _args(levels=[1], requests_per_level=1, decode=decode)
    before, after = demo_scenarios(args)
    assert before.decode.spec().mode == before_mode and after.decode.spec().mode == after_mode
    assert before.mode == "blocking" and after.mode == "stream"
    full = pipeline_scenario(args)
    assert (full is not None) is pipeline
    if full is not None:
        assert full.decode.spec().mode == "reference" and full.load.concurrency == [1, 2, 4]
        assert full.server.profile == "seed-after" and full.sampling == after.sampling


def test_auto_runs_the_seeds_full_pipeline_on_a_gpu() -> None:
    assert resolve_decode("auto", "cuda") == "seed"
    assert resolve_decode("auto", "cpu") == "off"


def test_demo_summary_names_what_ran(tmp_path: Path) -> None:
    args = _args(decode="auto")
    before, after = demo_scenarios(args)
    pipeline = pipeline_scenario(args)
    out = tmp_path / "demo.json"
    write_summary(out, args, before, after, pipeline, "the client held 1 worker", 12.34)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["decode"] == "off" and data["duration_s"] == 12.3 and data["machine"]["cpus"] >= 1
    assert data["before"] == {"client": "seed-before", "server_profile": "seed-before", "decode": "off",
                              "levels": [1, 2], "requests_per_level": 3}  # fmt: skip
    assert data["after"]["server_profile"] == "seed-after"
    assert data["pipeline"]["decode"] == "reference" and data["pipeline"]["levels"] == [1, 2, 4]
    assert data["pipeline"]["verdict"] == "the client held 1 worker"
