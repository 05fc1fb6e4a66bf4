"""`orpheus-bench gate` on a real sweep: llama-server (tiny Orpheus-format model, 4 slots), then the gate."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orpheus_bench import cli
from orpheus_bench.client.whole_run import execute_run
from orpheus_bench.gate.decide import Verdict
from orpheus_bench.gate.engine import evaluate
from orpheus_bench.gate.rules import rules_from_dict
from orpheus_bench.scenario import scenario_from_dict

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
MAX_TOKENS = 70  # 10 frames: on the fixed tiny model, which never ends speech by itself


async def test_gate_on_a_real_llama_server_sweep(
    llama_server_fixed_np4: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    sc = scenario_from_dict(
        {
            "host": llama_server_fixed_np4,
            "prompts": {"set": "short"},
            "sampling": {"max_tokens": MAX_TOKENS, "seed": 7},
            "decode": {"preset": "off"},
            "load": {"concurrency": [1, 2], "requests_per_level": 30},
        }
    )
    outcome = await execute_run(sc, run, doctor=False)
    assert outcome.complete
    rules = rules_from_dict(
        {
            # A shared CI machine may flag a level client-bound; this test is about the gate reading the run.
            "settings": {"allow_client_bound": True},
            "absolute": ["success_rate >= 1", "invalid_code_rate == 0", "requests >= 30", "ttfa_ms p50 <= 10000"],
            "relative": ["ttfa_ms p50 regress <= 5%", "throughput_rps regress <= 5%", "success_rate regress <= 0"],
        }
    )
    report = evaluate(rules, run, run)  # the run against itself: every ratio is exactly 1
    assert report.exit_code == 0, [(r.title, c.subject, c.reason) for r in report.rules for c in r.checks]
    ttfa = next(r for r in report.rules if r.title.startswith("ttfa_ms p50 regress"))
    assert [c.subject for c in ttfa.checks] == ["c=1", "c=2"]
    assert all(c.estimate == pytest.approx(1.0) and c.verdict is Verdict.PASS for c in ttfa.checks)

    monkeypatch.setattr(cli, "COMMANDS", ["gate"])
    junit = tmp_path / "gates.xml"
    code = cli.main(
        ["gate", str(run), "--rules", str(REPO / "scenarios/gates/ci.yaml"), "--baseline", str(run),
         "--junit", str(junit)]
    )  # fmt: skip
    assert code in (0, 1)  # 1 only when this machine was client-bound during the sweep
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "0"
