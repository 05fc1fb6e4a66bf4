"""Custom-token parsing across event boundaries and Orpheus' audio-code arithmetic."""

from __future__ import annotations

import pytest

from orpheus_bench.core.frames import FrameAssembler, frames_to_layers
from orpheus_bench.core.tokens import AudioCodeMapper, CustomTokenParser, numbers_from_token_ids

pytestmark = pytest.mark.unit


def tok(n: int) -> str:
    return f"<custom_token_{n}>"


def audio(pos: int, code: int) -> int:
    return 10 + pos * 4096 + code


def test_several_tokens_in_one_piece_and_text_between() -> None:
    p = CustomTokenParser()
    out = p.feed(tok(10) + " " + tok(4200) + "hi" + tok(2))
    assert out.numbers == [10, 4200, 2]
    assert out.other_chars == 2  # "hi"; whitespace is not counted


@pytest.mark.parametrize("split", range(1, len("<custom_token_12345>")))
def test_token_split_across_pieces(split: int) -> None:
    text = "ab" + tok(12345) + tok(11)
    p = CustomTokenParser()
    first = p.feed(text[: 2 + split])
    second = p.feed(text[2 + split :])
    assert first.numbers + second.numbers == [12345, 11]
    assert first.other_chars + second.other_chars + p.flush().other_chars == 2


def test_lone_angle_bracket_is_text_not_held_forever() -> None:
    p = CustomTokenParser()
    out = p.feed("a < b and <|eot_id|>")
    assert out.numbers == []
    assert out.other_chars + p.flush().other_chars == len("a<band<|eot_id|>")


def test_code_zero_is_valid_and_4096_is_invalid() -> None:
    m = AudioCodeMapper()
    # position 0 code 0 (token 10), position 1 code 4096 (out of range: token 10 + 4096 + 4096)
    codes = m.feed([audio(0, 0), 10 + 4096 + 4096])
    assert codes == [0, None]
    assert m.invalid_codes == [0, 1, 0, 0, 0, 0, 0]
    assert m.audio_tokens == 2


def test_code_arithmetic_every_position() -> None:
    m = AudioCodeMapper()
    nums = [audio(p, 100 * p + 1) for p in range(7)] + [audio(0, 4095)]
    assert m.feed(nums) == [1, 101, 201, 301, 401, 501, 601, 4095]


def test_negative_code_counted_for_its_position() -> None:
    m = AudioCodeMapper()
    # position 2 expects tokens from 10 + 8192: token 10 would be code -8192
    codes = m.feed([audio(0, 5), audio(1, 5), 10])
    assert codes == [5, 5, None]
    assert m.invalid_codes[2] == 1


def test_specials_and_end_of_speech() -> None:
    m = AudioCodeMapper()
    codes = m.feed([1, 5, audio(0, 7), 2, audio(1, 7)])
    assert codes == [7]
    assert m.special_tokens == 2
    assert m.end_of_speech
    assert m.after_end_tokens == 1


def test_invalid_code_drops_its_frame_but_keeps_alignment() -> None:
    fa = FrameAssembler()
    frames = fa.feed([1, 2, None, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 20, 21])
    assert frames == [(10, 11, 12, 13, 14, 15, 16)]
    assert fa.frames_dropped == 1
    assert fa.flush() == 2


def test_frames_to_layers_hand_computed() -> None:
    f1 = (0, 1, 2, 3, 4, 5, 6)
    f2 = (10, 11, 12, 13, 14, 15, 16)
    l0, l1, l2 = frames_to_layers([f1, f2])
    assert l0 == [0, 10]
    assert l1 == [1, 4, 11, 14]
    assert l2 == [2, 3, 5, 6, 12, 13, 15, 16]


def test_token_ids() -> None:
    assert numbers_from_token_ids([128256 + 10, 128256 + 4200]) == [10, 4200]
    assert numbers_from_token_ids([128009]) is None
