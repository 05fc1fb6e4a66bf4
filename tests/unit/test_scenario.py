"""Scenario validation: defaults are the seed's 'after' client, bad input names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from orpheus_bench.errors import ConfigError
from orpheus_bench.scenario import load_scenario, merge_overrides, scenario_from_dict

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_seed_after() -> None:
    sc = scenario_from_dict({})
    body = sc.sampling.body_params()
    assert body["temperature"] == 0.3 and body["top_k"] == 30 and body["max_tokens"] == 512
    assert body["repeat_penalty"] == 1.1 and body["stop"] == ["<custom_token_2>"]
    assert sc.load.concurrency == [1, 2, 4, 8, 12]
    assert sc.decode.spec().mode == "reference"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"load": {"concurrency": [1, -2]}}, "load.concurrency"),
        ({"load": {"concurrency": []}}, "load.concurrency"),
        ({"sampling": {"temprature": 1}}, "sampling.temprature"),
        ({"sampling": {"max_tokens": 0}}, "sampling.max_tokens"),
        ({"host": "localhost:8080"}, "host"),
        ({"decode": {"preset": "fast"}}, "decode.preset"),
        ({"load": {"rate": [0]}}, "load.rate"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_input_names_the_field(data: dict, field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        scenario_from_dict(data)
    assert exc.value.field == field


def test_blocking_mode_forces_blocking_decode() -> None:
    sc = scenario_from_dict({"mode": "blocking"})
    assert sc.decode.spec().mode == "blocking"


def test_shipped_scenarios_load() -> None:
    files = sorted((REPO / "scenarios").glob("*.yaml"))
    assert files
    for f in files:
        load_scenario(f)


def test_overrides_and_empty_prompt_file(tmp_path: Path) -> None:
    empty = tmp_path / "prompts.txt"
    empty.write_text("# only a comment\n\n")
    y = tmp_path / "s.yaml"
    y.write_text("prompts:\n  file: prompts.txt\n")
    sc = load_scenario(y, {"load.concurrency": [3]})
    assert sc.load.concurrency == [3]
    with pytest.raises(ConfigError) as exc:
        sc.prompts.load()
    assert exc.value.field == "prompts.file"


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    y = tmp_path / "evil.yaml"
    y.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError):
        load_scenario(y)


def test_merge_overrides_nested_and_none_skipped() -> None:
    out = merge_overrides({"load": {"seed": 1}}, {"load.concurrency": [2], "host": None})
    assert out == {"load": {"seed": 1, "concurrency": [2]}}
