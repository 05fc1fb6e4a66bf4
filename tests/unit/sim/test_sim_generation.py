"""The simulator's token plan: valid Orpheus audio tokens, llama-server stop rules, content faults."""

from __future__ import annotations

import random
import re

import pytest

from orpheus_bench.sim.faults import FaultKind, FaultSpec
from orpheus_bench.sim.generation import Plan, plan_generation, request_rng

pytestmark = pytest.mark.unit

TOKEN_RE = re.compile(r"<custom_token_(\d+)>")
STOP = ("<custom_token_2>",)


def plan(
    audio: int = 28,
    n_predict: int = -1,
    prompt: int = 10,
    ctx: int = 4096,
    stop: tuple[str, ...] = STOP,
    fault: FaultSpec | None = None,
) -> Plan:
    return plan_generation(
        audio_tokens=audio,
        rng=random.Random(0),
        n_predict=n_predict,
        prompt_tokens=prompt,
        n_ctx_slot=ctx,
        stop_words=stop,
        fault=fault,
    )


def decode(pieces_text: str) -> tuple[list[int], int, int]:
    """Local decoder: codes by position, invalid count, non-audio count (does not use orpheus_bench.core)."""
    codes: list[int] = []
    invalid = 0
    other = 0
    position = 0
    for match in TOKEN_RE.finditer(pieces_text):
        n = int(match.group(1))
        if n < 10:
            other += 1
            continue
        code = n - 10 - 4096 * (position % 7)
        position += 1
        if 0 <= code < 4096:
            codes.append(code)
        else:
            invalid += 1
    return codes, invalid, other


def test_audio_tokens_are_valid_and_positioned_and_end_with_stop_word() -> None:
    p = plan(audio=70)
    text = "".join(x.text for x in p.pieces)
    codes, invalid, other = decode(text)
    assert len(p.pieces) == 70 and invalid == 0 and other == 0
    assert codes == list(p.audio_codes)
    assert all(x.token_id == 128256 + int(TOKEN_RE.fullmatch(x.text).group(1)) for x in p.pieces)  # type: ignore[union-attr]
    assert (p.stop_type, p.stopping_word, p.truncated) == ("word", "<custom_token_2>", False)
    assert p.n_decoded == 71 and p.silent_steps == 1  # the stop token is decoded, not streamed


def test_without_stop_word_end_of_speech_is_streamed_then_eos() -> None:
    p = plan(audio=14, stop=())
    assert p.pieces[-1].text == "<custom_token_2>"
    assert p.stop_type == "eos" and p.n_decoded == 16 and len(p.pieces) == 15


def test_n_predict_limits_and_zero_generates_nothing() -> None:
    p = plan(audio=70, n_predict=20)
    assert len(p.pieces) == 20 and p.n_decoded == 20 and p.stop_type == "limit" and not p.truncated
    p0 = plan(n_predict=0)
    assert p0.pieces == () and p0.n_decoded == 0 and p0.stop_type == "limit"


def test_slot_context_truncates() -> None:
    p = plan(audio=70, prompt=90, ctx=100)
    assert len(p.pieces) == 10 and p.stop_type == "limit" and p.truncated


def test_request_seed_fixes_codes_else_server_seed_and_request_number_do() -> None:
    def seq(rng: random.Random) -> list[int]:
        return [rng.randrange(4096) for _ in range(10)]

    assert seq(request_rng(42, "hi", 0, 1)) == seq(request_rng(42, "hi", 9, 5))
    assert seq(request_rng(42, "hi", 0, 1)) != seq(request_rng(42, "ho", 0, 1))
    assert seq(request_rng(None, "hi", 0, 1)) != seq(request_rng(None, "hi", 0, 2))
    assert seq(request_rng(None, "hi", 0, 1)) != seq(request_rng(None, "hi", 1, 1))
    assert seq(request_rng(None, "x", 0, 3)) == seq(request_rng(None, "y", 0, 3))
    # llama-server's "random seed" values are not a fixed seed
    assert seq(request_rng(0xFFFFFFFF, "hi", 0, 1)) == seq(request_rng(None, "hi", 0, 1))


def test_invalid_codes_fault_marks_every_nth_audio_token() -> None:
    p = plan(audio=70, fault=FaultSpec(kind=FaultKind.INVALID_CODES, interval=7))
    codes, invalid, _ = decode("".join(x.text for x in p.pieces))
    assert invalid == 10 and len(codes) == 60
    assert [i for i, c in enumerate(p.audio_codes) if c >= 4096] == list(range(6, 70, 7))


def test_text_tokens_fault_inserts_plain_text_without_shifting_positions() -> None:
    p = plan(audio=28, fault=FaultSpec(kind=FaultKind.TEXT_TOKENS, interval=10))
    texts = [x.text for x in p.pieces]
    assert texts.count(" the") == 2
    codes, invalid, _ = decode("".join(texts))
    assert invalid == 0 and len(codes) == 28


def test_partial_frame_fault_drops_codes_from_last_frame() -> None:
    p = plan(audio=28, fault=FaultSpec(kind=FaultKind.PARTIAL_FRAME, missing=3))
    assert len(p.audio_codes) == 25 and p.stop_type == "word"


@pytest.mark.parametrize(("variant", "stop_type"), [("", "word"), ("eos", "eos")])
def test_no_audio_fault_stops_at_once(variant: str, stop_type: str) -> None:
    p = plan(fault=FaultSpec(kind=FaultKind.NO_AUDIO, variant=variant))
    assert p.pieces == () and p.n_decoded == 1 and p.stop_type == stop_type


def test_huge_fault_ignores_n_predict_and_context() -> None:
    p = plan(n_predict=10, prompt=90, ctx=100, fault=FaultSpec(kind=FaultKind.HUGE, tokens=5000))
    assert len(p.pieces) == 5000 and p.stop_type == "word"
