"""Rules files: shorthand parsing, validation errors naming the field, every field described, examples load."""

from __future__ import annotations

from pathlib import Path

import pytest

from orpheus_bench.errors import ConfigError
from orpheus_bench.gate.rules import (
    AbsoluteRule,
    GateRules,
    GateSettings,
    RelativeRule,
    describe_rule_fields,
    load_rules,
    parse_absolute,
    parse_relative,
    rules_from_dict,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ttfa_ms p50 <= 300 at c=2",
         {"metric": "ttfa_ms", "stat": "p50", "op": "<=", "threshold": 300.0, "level": "c=2"}),
        ("throughput_rps >= 10 at c=12", {"metric": "throughput_rps", "op": ">=", "threshold": 10.0, "level": "c=12"}),
        ("success_rate >= 0.999", {"metric": "success_rate", "op": ">=", "threshold": 0.999}),
        ("invalid_code_rate == 0", {"metric": "invalid_code_rate", "op": "==", "threshold": 0.0}),
        ("stall_rate at preroll 250 ms <= 0.01",
         {"metric": "stall_rate", "preroll_ms": 250, "op": "<=", "threshold": 0.01}),
        ("stall_rate preroll=250ms<=0.01", {"metric": "stall_rate", "preroll_ms": 250, "op": "<=", "threshold": 0.01}),
        ("client_bound == false", {"metric": "client_bound", "op": "==", "threshold": False}),
    ],
)  # fmt: skip
def test_absolute_shorthand_matches_the_issue_examples(text: str, expected: dict[str, object]) -> None:
    assert parse_absolute(text) == expected


def test_relative_shorthand_percent_is_a_ratio_and_a_number_a_difference() -> None:
    assert parse_relative("ttfa_ms p50 regress <= 10%") == {
        "metric": "ttfa_ms", "stat": "p50", "tolerance": pytest.approx(0.10), "compare": "ratio",
    }  # fmt: skip
    assert parse_relative("success_rate regress <= 0.005 at c=4") == {
        "metric": "success_rate", "level": "c=4", "tolerance": 0.005, "compare": "difference",
    }  # fmt: skip


def test_shorthand_and_mapping_give_the_same_rule() -> None:
    a = rules_from_dict({"absolute": ["ttfa_ms p95 <= 500 at c=4"]}).absolute[0]
    b = rules_from_dict(
        {"absolute": [{"metric": "ttfa_ms", "stat": "p95", "op": "<=", "threshold": 500, "level": 4}]}
    ).absolute[0]
    assert a == b
    assert a.level == 4
    assert a.title() == "ttfa_ms p95 at c=4 <= 500"


def test_level_forms() -> None:
    rules = rules_from_dict(
        {"absolute": [
            {"metric": "requests", "op": ">=", "threshold": 1, "level": "all"},
            {"metric": "requests", "op": ">=", "threshold": 1, "level": "top"},
            {"metric": "requests", "op": ">=", "threshold": 1, "level": "rate=2/s"},
        ]}
    )  # fmt: skip
    assert [r.level for r in rules.absolute] == [None, "top", "rate=2/s"]


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"absolute": [{"metric": "ttfa_ms", "stat": "p50", "op": "<=", "threshold": 1, "bogus": 1}]},
         "absolute[0].bogus", "unknown key"),
        ({"settings": {"confidance": 0.9}, "absolute": ["success_rate >= 1"]}, "settings.confidance", "unknown key"),
        ({"absolute": ["foo_ms p50 <= 3"]}, "absolute[0].metric", "unknown metric"),
        ({"absolute": ["ttfa_ms <= 3"]}, "absolute[0]", "name a statistic"),
        ({"absolute": ["success_rate p50 >= 1"]}, "absolute[0]", "takes no statistic"),
        ({"absolute": ["stall_rate <= 0.1"]}, "absolute[0]", "needs preroll_ms"),
        ({"absolute": ["ttfa_ms p50 preroll 250 <= 1"]}, "absolute[0]", "takes no preroll_ms"),
        ({"absolute": ["client_bound <= 1"]}, "absolute[0]", "use == or !="),
        ({"absolute": ["ttfa_ms p50 <= true"]}, "absolute[0]", "compares with a number"),
        ({"absolute": ["ttfa_ms p50 <= abc"]}, "absolute", "not a number"),
        ({"absolute": ["max_concurrency >= 8 at c=4"]}, "absolute[0]", "takes no level"),
        ({"absolute": [{"metric": "requests", "op": ">=", "threshold": 1, "decide": "confident_pass"}]},
         "absolute[0]", "no bootstrap interval"),
        ({"relative": ["client_bound regress <= 10%"]}, "relative[0]", "no better direction"),
        ({"relative": [{"metric": "ttfa_ms", "stat": "p50", "tolerance": -0.1}]}, "relative[0].tolerance", "greater"),
        ({"settings": {"confidence": 1.5}, "absolute": ["success_rate >= 1"]}, "settings.confidence", "less"),
        ({}, "rules", "no rule"),
        ({"absolute": [{"metric": "requests", "op": ">=", "threshold": 1, "level": 0}]},
         "absolute[0].level", "positive"),
    ],
)  # fmt: skip
def test_bad_rules_name_the_field(data: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        rules_from_dict(data)
    assert info.value.field == field
    assert words in info.value.message


def test_load_rules_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_rules(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("absolute: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rules(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_rules(scalar)


def test_every_field_is_described() -> None:
    for model in (GateRules, GateSettings, AbsoluteRule, RelativeRule):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"
    names = [name for name, _, _ in describe_rule_fields()]
    assert "settings.min_requests" in names and "relative[].tolerance" in names


def test_example_rule_files_load() -> None:
    files = sorted((REPO / "scenarios" / "gates").glob("*.yaml"))
    assert {f.name for f in files} >= {"ci.yaml", "seed-after-targets.yaml", "regression.yaml"}
    for f in files:
        rules = load_rules(f)
        assert rules.absolute or rules.relative
