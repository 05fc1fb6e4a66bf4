"""``orpheus-bench simulate`` option handling: files, flags, --stamp, errors naming the field."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from orpheus_bench.commands.simulate import add_arguments, banner, config_from_args
from orpheus_bench.errors import ConfigError
from orpheus_bench.sim.config import SimConfig
from orpheus_bench.sim.faults import FaultKind

pytestmark = pytest.mark.unit


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_override_defaults() -> None:
    cfg = config_from_args(parse("--slots", "2", "--token-ms", "3", "--fault", "slow:every=2", "--api-key", "k"))
    assert (cfg.slots, cfg.token_ms) == (2, 3.0)
    assert cfg.faults[0].kind is FaultKind.SLOW and cfg.faults[0].every == 2
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == "k"
    assert cfg.busy_alpha == SimConfig().busy_alpha


def test_config_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("slots: 8\ntoken_ms: 5\nfaults:\n  - {kind: http_error, status: 503, every: 4}\n")
    cfg = config_from_args(parse("--config", str(path), "--token-ms", "7"))
    assert (cfg.slots, cfg.token_ms) == (8, 7.0)
    assert cfg.faults[0].status == 503


def test_stamp_zeroes_unset_delays_only() -> None:
    cfg = config_from_args(parse("--stamp", "--prefill-base-ms", "1"))
    assert cfg.stamp and cfg.token_ms == 0 and cfg.jitter == 0 and cfg.prefill_base_ms == 1.0
    assert SimConfig.stamp_mode().token_ms == 0 and SimConfig.stamp_mode().stamp


def test_config_json_round_trip_keeps_secret() -> None:
    cfg = SimConfig(api_key="s3cret", slots=3)
    assert "s3cret" not in json.dumps(cfg.describe())
    back = config_from_args(parse("--config-json", cfg.to_json_with_secrets()))
    assert back == cfg


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (("--slots", "0"), "slots"),
        (("--jitter", "-1"), "jitter"),
        (("--fault", "nope"), "--fault"),
        (("--config-json", "[1]"), "--config-json"),
        (("--config-json", "{"), "--config-json"),
        (("--config", "/nonexistent/sim.yaml"), "--config"),
        (("--config-json", '{"unknown_key": 1}'), "unknown_key"),
    ],
)
def test_bad_values_raise_config_error_naming_the_field(argv: tuple[str, ...], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_args(parse(*argv))
    assert info.value.field == field


def test_banner_says_simulated_and_hides_key() -> None:
    cfg = SimConfig(api_key="s3cret")
    line = banner(cfg, "http://127.0.0.1:1")
    assert "SIMULATED" in line and "not a measurement" in line and "listening on http://127.0.0.1:1" in line
    assert "s3cret" not in line
