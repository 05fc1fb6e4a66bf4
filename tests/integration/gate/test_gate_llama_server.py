"""`orpheus-bench gate` on real sweeps: two llama-server profiles that truly differ, and an A/A pair.

The tiny Orpheus-format model ends each utterance itself (about 4.7 frames per word), so every request is a
complete utterance when max_tokens leaves room for it. At 4 closed-loop workers a 1-slot server queues three of
them behind the one it serves, so its TTFA is several times a 4-slot server's: the gate must fail the 1-slot
candidate against the 4-slot baseline. Two runs of the same 4-slot server must pass the same rules.
"""

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
MAX_TOKENS = 512  # the short prompts' utterances take about 50 frames (350 tokens): they complete
RULES = {
    # A shared CI machine may flag a level client-bound (decoding is off, so it rarely is); the verdicts
    # below are about the server.
    "settings": {"allow_client_bound": True},
    "absolute": ["success_rate >= 1", "cut_short_rate == 0", "invalid_code_rate == 0", "requests >= 30"],
    # 20%: in one CI run two runs of one server on this 2-core machine, the client beside it, differed by 11.6% in
    # TTFA p50 at 30 requests (interval 1.01x-1.21x); the 1-slot server is over twice as slow.
    "relative": ["ttfa_ms p50 regress <= 20%", "throughput_rps regress <= 20%"],
}


async def _sweep(url: str, out: Path) -> Path:
    sc = scenario_from_dict(
        {
            "host": url,
            "prompts": {"set": "short"},
            "sampling": {"max_tokens": MAX_TOKENS, "seed": 7},
            "decode": {"preset": "off"},
            "load": {"concurrency": [4], "requests_per_level": 30},
        }
    )
    outcome = await execute_run(sc, out, doctor=False)
    assert outcome.complete and outcome.records == 34
    return out


async def test_gate_fails_the_slower_server_and_passes_an_a_a_pair(
    llama_server_np1: str, llama_server_np4: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = await _sweep(llama_server_np4, tmp_path / "np4-a")
    again = await _sweep(llama_server_np4, tmp_path / "np4-b")
    slower = await _sweep(llama_server_np1, tmp_path / "np1")
    rules = rules_from_dict(RULES)

    same = evaluate(rules, again, baseline)
    assert same.exit_code == 0, [(r.title, c.subject, c.estimate, c.reason) for r in same.rules for c in r.checks]
    ttfa = next(r for r in same.rules if r.title.startswith("ttfa_ms p50 regress"))
    # Judged at the level (not skipped); an inconclusive drift (WARN) passes the gate, as the exit code says.
    assert [c.subject for c in ttfa.checks] == ["c=4"] and ttfa.checks[0].verdict in (Verdict.PASS, Verdict.WARN)

    worse = evaluate(rules, slower, baseline)
    assert worse.exit_code == 1
    failed = {r.title: r for r in worse.rules if r.verdict is Verdict.FAIL}
    assert "ttfa_ms p50 regress <= 20%" in failed, [(r.title, r.verdict) for r in worse.rules]
    check = failed["ttfa_ms p50 regress <= 20%"].checks[0]
    assert check.decided and check.low is not None and check.low > 2.0  # the whole interval: over twice as slow
    # Every utterance completed on both servers: the absolute rules pass on the slower one too.
    assert all(r.verdict is Verdict.PASS for r in worse.rules if r.kind == "absolute")

    monkeypatch.setattr(cli, "COMMANDS", ["gate"])
    junit = tmp_path / "gates.xml"
    code = cli.main(
        ["gate", str(slower), "--rules", str(REPO / "scenarios/gates/ci.yaml"), "--baseline", str(baseline),
         "--junit", str(junit)]
    )  # fmt: skip
    assert code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "0" and int(suite.get("failures") or 0) >= 1
