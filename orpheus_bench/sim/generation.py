"""What a simulated Orpheus generation emits, token by token, and why it stops. Pure: no clock, no I/O.

The model's token sequence is the audio (the i-th audio token is
``<custom_token_{10 + (i % 7) * 4096 + code}>`` with code in [0, 4095], token id ``128256 + N``), then
``<custom_token_2>`` (end of speech), then EOS (``<|eot_id|>``). llama-server's stopping rules are then
applied step by step, as in its ``process_token``:

* a token whose text is one of the request's ``stop`` strings ends with stop_type ``word``; it is decoded but
  not streamed (so ``["<custom_token_2>"]`` hides end of speech);
* EOS ends with ``eos`` and is not streamed;
* after a streamed token, ``n_decoded >= n_predict`` ends with ``limit``; ``n_predict == 0`` decodes nothing;
* ``prompt + n_decoded >= n_ctx_slot`` ends with ``limit`` and ``truncated``.

Content faults (`FaultKind.INVALID_CODES`, `TEXT_TOKENS`, `PARTIAL_FRAME`, `NO_AUDIO`, `HUGE`) change the
sequence before the rules are applied; ``huge`` also ignores n_predict and the context limit.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from orpheus_bench.sim.faults import FaultKind, FaultSpec

CUSTOM_TOKEN_BASE_ID = 128256  # id of <custom_token_0> in Orpheus' Llama-3 vocabulary
AUDIO_CODE_OFFSET = 10  # <custom_token_0..9> are special; audio starts at 10
CODEBOOK_SIZE = 4096
FRAME_TOKENS = 7
END_OF_SPEECH = "<custom_token_2>"
EOS_TEXT = "<|eot_id|>"
EOS_ID = 128009
TEXT_TOKEN = (" the", 279)  # a plain Llama-3 text token, for the text_tokens fault
INVALID_CODE_BASE = CODEBOOK_SIZE  # invalid codes are 4096 + r: one slot's range past the end


@dataclass(frozen=True)
class Piece:
    """One generated token: the text the server streams for it and its id."""

    text: str
    token_id: int


@dataclass(frozen=True)
class Plan:
    """A generation decided up front: the streamed pieces and how it ends.

    ``n_decoded`` counts decode steps, streamed or not (llama-server's ``tokens_predicted``); ``audio_codes``
    lists the codes behind the streamed audio pieces, in order, for tests and checks.
    """

    pieces: tuple[Piece, ...]
    n_decoded: int
    stop_type: str  # "eos" | "word" | "limit"
    stopping_word: str
    truncated: bool
    audio_codes: tuple[int, ...]

    @property
    def silent_steps(self) -> int:
        """Decode steps after the last streamed piece (a stop word or EOS)."""
        return self.n_decoded - len(self.pieces)


def audio_piece(index: int, code: int) -> Piece:
    """The `index`-th audio token carrying `code` (which may be out of range on purpose)."""
    n = AUDIO_CODE_OFFSET + (index % FRAME_TOKENS) * CODEBOOK_SIZE + code
    return Piece(f"<custom_token_{n}>", CUSTOM_TOKEN_BASE_ID + n)


def custom_piece(n: int) -> Piece:
    """``<custom_token_n>`` with its id."""
    return Piece(f"<custom_token_{n}>", CUSTOM_TOKEN_BASE_ID + n)


def request_rng(request_seed: int | None, prompt: str, server_seed: int, request_number: int) -> random.Random:
    """Generator of a request's audio codes: fixed by the request's seed and prompt when it sends a seed."""
    if request_seed is not None and 0 <= request_seed < 0xFFFFFFFF:
        return random.Random(f"codes:{request_seed}:{prompt}")
    return random.Random(f"codes:server:{server_seed}:{request_number}")


def natural_audio_tokens(audio_frames: int, frames_per_char: float, prompt_text_chars: int) -> int:
    """How many audio tokens the 'model' wants to say for a prompt, before any limit."""
    return FRAME_TOKENS * (audio_frames + int(frames_per_char * prompt_text_chars))


def plan_generation(
    *,
    audio_tokens: int,
    rng: random.Random,
    n_predict: int,
    prompt_tokens: int,
    n_ctx_slot: int,
    stop_words: Sequence[str],
    fault: FaultSpec | None = None,
) -> Plan:
    """Decide every token of one generation and its stop reason (see the module docstring)."""
    kind = fault.kind if fault is not None else None
    ignore_limits = kind is FaultKind.HUGE
    if fault is not None and kind is FaultKind.HUGE:
        audio_tokens = fault.tokens
    elif fault is not None and kind is FaultKind.PARTIAL_FRAME:
        audio_tokens = max(0, audio_tokens - fault.missing)
    elif kind is FaultKind.NO_AUDIO:
        audio_tokens = 0

    sequence: list[tuple[Piece, int | None]] = []  # (piece, audio code or None)
    for i in range(audio_tokens):
        code = rng.randrange(CODEBOOK_SIZE)
        if fault is not None and kind is FaultKind.INVALID_CODES and (i + 1) % fault.interval == 0:
            code = INVALID_CODE_BASE + rng.randrange(64)
        sequence.append((audio_piece(i, code), code))
        if fault is not None and kind is FaultKind.TEXT_TOKENS and (i + 1) % fault.interval == 0:
            sequence.append((Piece(*TEXT_TOKEN), None))
    end_with_eos = fault is not None and kind is FaultKind.NO_AUDIO and fault.variant == "eos"
    if not end_with_eos:
        sequence.append((custom_piece(2), None))
    eos = Piece(EOS_TEXT, EOS_ID)
    sequence.append((eos, None))

    if n_predict == 0 and not ignore_limits:
        return Plan((), 0, "limit", "", False, ())
    stops = set(stop_words)
    pieces: list[Piece] = []
    codes: list[int] = []

    def done(stop_type: str, word: str = "", truncated: bool = False) -> Plan:
        return Plan(tuple(pieces), n_decoded, stop_type, word, truncated, tuple(codes))

    n_decoded = 0
    for piece, audio_code in sequence:
        n_decoded += 1
        if piece is eos:
            return done("eos")
        if piece.text in stops:
            return done("word", piece.text)
        pieces.append(piece)
        if audio_code is not None:
            codes.append(audio_code)
        if ignore_limits:
            continue
        if 0 < n_predict <= n_decoded:
            return done("limit")
        if prompt_tokens + n_decoded >= n_ctx_slot:
            return done("limit", truncated=True)
    raise AssertionError("the sequence always ends with EOS")  # pragma: no cover
