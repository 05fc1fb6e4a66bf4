"""Every outcome of a request on a real llama-server: complete, cut short (and by which limit), no audio.

The tiny Orpheus-format model ends each utterance itself after about 4.7 frames per word, so a request whose
max_tokens and slot leave room for its speech completes; otherwise a length limit cuts it short, and a prompt
longer than the slot gets no audio at all. The seed's "after" profile (-c 2048 over 30 slots: 256 tokens a slot
on this build, which pads) cuts every utterance of the seed's prompts short, which is how the seed's "100%
success" came about: the console, the report and the gate must say so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from orpheus_bench import cli
from orpheus_bench.client.whole_run import execute_run
from orpheus_bench.gate.decide import Verdict
from orpheus_bench.gate.engine import evaluate
from orpheus_bench.gate.rules import rules_from_dict
from orpheus_bench.records import CUT_MAX_TOKENS, CUT_SLOT_CONTEXT, ErrorClass, read_records
from orpheus_bench.report.console import render_console
from orpheus_bench.report.markdown import render_markdown
from orpheus_bench.results.compile import compile_run
from orpheus_bench.scenario import scenario_from_dict
from orpheus_bench.server.launcher import LlamaServer
from orpheus_bench.server.profiles import resolve_profile

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def np4_c512(
    llama_server_binary: Path, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The issue's server: -np 4 -c 512, which this build pads to 256 tokens a slot."""
    profile = resolve_profile("test-np4").model_copy(update={"ctx_size": 512})
    log = tmp_path_factory.mktemp("llama-server-np4-c512") / "server.log"
    with LlamaServer(profile, tiny_model_path, log_path=log, ready_timeout_s=60) as server:
        yield server.url


def test_doctor_exits_non_zero_when_every_utterance_will_be_cut(
    np4_c512: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # No --prompts: the doctor checks the default prompt set (the seed's lengths) against max_tokens and the slot.
    code = cli.main(["doctor", "--host", np4_c512, "--max-tokens", "512", "--json"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    context = next(c for c in report["checks"] if c["name"] == "context")
    assert context["level"] == "fail" and report["n_ctx_slot"] == 256
    # Even the shortest prompt (10 words, at least 40 frames of speech) has room for fewer than 230 tokens.
    assert context["message"].startswith("9 of 9 prompts will be cut short")
    assert len(context["details"]["cut_short"]) == len(report["prompts"]) == 9


async def test_outcomes_complete_cut_by_max_tokens_and_by_the_slot(
    llama_server_np4: str, np4_c512: str, tmp_path: Path
) -> None:
    def scenario(host: str, max_tokens: int, prompts: dict[str, object]) -> object:
        return scenario_from_dict(
            {"host": host, "prompts": prompts, "sampling": {"max_tokens": max_tokens}, "decode": {"preset": "off"},
             "load": {"concurrency": [2], "requests_per_level": 4}}
        )  # fmt: skip

    short = {"set": "short"}  # about 11 words: some 50 frames (350 tokens) of speech
    await execute_run(scenario(llama_server_np4, 512, short), tmp_path / "complete", doctor=False)
    await execute_run(scenario(llama_server_np4, 140, short), tmp_path / "max-tokens", doctor=False)
    long_prompt = " ".join(["Welcome to the quarterly update."] * 60)  # about 300 tokens: longer than the slot
    mixed = {"texts": ["Hello there, thanks for calling. How can I help you today?", long_prompt]}
    await execute_run(scenario(np4_c512, 512, mixed), tmp_path / "slot", doctor=False)

    complete = compile_run(tmp_path / "complete").level(2)
    assert complete.success_rate == 1.0 and complete.cut_short == 0 and complete.ok == 4

    by_tokens = [r for r in read_records(str(tmp_path / "max-tokens" / "requests.jsonl")) if not r.warmup]
    assert all(r.cut_short and r.cut_limit == CUT_MAX_TOKENS and r.tokens_generated == 140 for r in by_tokens)
    level = compile_run(tmp_path / "max-tokens").level(2)
    assert level.success_rate == 0.0 and level.cut_short_rate == 1.0 and level.cut_limits == {CUT_MAX_TOKENS: 4}

    records = [r for r in read_records(str(tmp_path / "slot" / "requests.jsonl")) if not r.warmup]
    fitting = [r for r in records if r.prompt_id == "inline/0"]
    refused = [r for r in records if r.prompt_id == "inline/1"]
    assert fitting and all(r.cut_short and r.cut_limit == CUT_SLOT_CONTEXT and r.pcm_samples > 0 for r in fitting)
    assert refused and all(r.error_class is ErrorClass.NO_AUDIO and r.pcm_samples == 0 for r in refused)


async def test_the_seed_after_profile_reports_its_cut_short_share(tmp_path: Path) -> None:
    # The seed's "after" server and client: 30 slots of 256 tokens, max_tokens 512, the seed's prompt lengths.
    sc = scenario_from_dict(
        {
            "server": {"profile": "seed-after", "model": "test"},
            "prompts": {"set": "seed-lengths"},
            "sampling": {"temperature": 0.3, "top_k": 30, "max_tokens": 512, "repeat_penalty": 1.1},
            "decode": {"preset": "off"},
            "load": {"concurrency": [2], "requests_per_level": 9},
        }
    )
    outcome = await execute_run(sc, tmp_path / "after")
    assert outcome.complete
    results = compile_run(tmp_path / "after")
    level = results.level(2)
    # No prompt's utterance fits a 256-token slot: each is cut short, or refused when the prompt itself is longer.
    assert level.ok == 0 and level.success_rate == 0.0
    assert level.cut_short > 0 and level.cut_limits == {CUT_SLOT_CONTEXT: level.cut_short}
    assert level.cut_short + level.errors.get("no_audio", 0) == level.n

    console = Console(record=True, width=160, color_system=None)
    render_console(results, console)
    text = console.export_text()
    first = text.splitlines()[0]
    assert "cut short by a length limit" in first or "doctor" in first  # what a reader must know comes first
    assert "were cut short" in text and "cut" in text.split("per level")[1]
    md = render_markdown(results)
    assert "| Cut short |" in md and "were cut short by a length limit" in md
    assert "doctor" in md.split("## ")[0]  # the doctor's finding is one of the report's first lines

    gate = evaluate(
        rules_from_dict({"absolute": ["cut_short_rate <= 0.01", "success_rate >= 0.99"]}), tmp_path / "after"
    )
    assert gate.exit_code == 1
    cut_rule = next(r for r in gate.rules if r.metric == "cut_short_rate")
    assert cut_rule.verdict is Verdict.FAIL and cut_rule.checks[0].estimate == pytest.approx(level.cut_short_rate)
