"""``<custom_token_N>`` parsing and Orpheus' audio-code arithmetic.

Text arrives in arbitrary pieces: one event may hold several tokens, and one token may be split across events.
`CustomTokenParser` keeps only the tail that could still become a token. `AudioCodeMapper` turns the i-th audio
token into a SNAC code ``N - 10 - 4096 * (i % 7)``.

A code outside [0, 4095] is *counted* for its slot position and passed on as ``None`` so the frame it belongs to
is dropped while later frames keep their alignment. Code 0 is a valid code: the public Orpheus clients filter
with ``token > 0``, which drops a real 0, shifts every later frame and lets 4096 through; we do neither.

Non-audio tokens: ``<custom_token_2>`` is end of speech (later audio tokens are ignored and counted); the other
``<custom_token_0..9>`` are counted as specials, never as codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from orpheus_bench.core.frames import CODEBOOK_SIZE, FRAME_TOKENS

AUDIO_TOKEN_OFFSET = 10  # <custom_token_10> is code 0 at position 0
END_OF_SPEECH_TOKEN = 2
ORPHEUS_CUSTOM_TOKEN_BASE_ID = 128256  # token id of <custom_token_0> in Orpheus' Llama-3 vocabulary

_TOKEN_RE = re.compile(r"<custom_token_(\d+)>")
_PREFIX = "<custom_token_"
_PREFIX_LEN = len(_PREFIX)
_MAX_TOKEN_LEN = len(_PREFIX) + 12  # digits plus ">": anything longer cannot be a token


@dataclass(slots=True)
class ParsedText:
    """What one piece of text held: custom-token numbers in order and the count of other characters."""

    numbers: list[int] = field(default_factory=list)
    other_chars: int = 0


class CustomTokenParser:
    """Incremental ``<custom_token_N>`` extraction from streamed text."""

    def __init__(self) -> None:
        self._tail = ""

    def whole_token(self, text: str) -> int | None:
        """N when `text` is exactly one whole ``<custom_token_N>`` and nothing is held, else None (use `feed`).

        The common case (llama-server streams one token per event), without building a `ParsedText`.
        """
        if self._tail or not text.startswith(_PREFIX) or not text.endswith(">"):
            return None
        digits = text[_PREFIX_LEN:-1]
        if digits.isdigit() and digits.isascii():
            return int(digits)
        return None

    def feed(self, text: str) -> ParsedText:
        """Parse a piece of text; a token cut at the end is held until the next piece completes it."""
        whole = self.whole_token(text)
        if whole is not None:
            return ParsedText(numbers=[whole])
        buf = self._tail + text if self._tail else text
        out = ParsedText()
        pos = 0
        for m in _TOKEN_RE.finditer(buf):
            out.other_chars += _visible(buf[pos : m.start()])
            out.numbers.append(int(m.group(1)))
            pos = m.end()
        rest = buf[pos:]
        keep = _possible_token_start(rest)
        out.other_chars += _visible(rest[:keep] if keep >= 0 else rest)
        self._tail = rest[keep:] if keep >= 0 else ""
        return out

    def flush(self) -> ParsedText:
        """End of stream: whatever tail was held is plain text."""
        out = ParsedText(other_chars=_visible(self._tail))
        self._tail = ""
        return out


def _visible(s: str) -> int:
    """Characters that are not whitespace (llama-server may emit spaces or newlines between tokens)."""
    return len(s) - sum(1 for ch in s if ch.isspace()) if s else 0


def _possible_token_start(rest: str) -> int:
    """Index of a trailing fragment that may still grow into a token, or -1."""
    idx = rest.rfind("<")
    if idx < 0:
        return -1
    frag = rest[idx:]
    if len(frag) > _MAX_TOKEN_LEN:
        return -1
    if _PREFIX.startswith(frag):
        return idx
    if frag.startswith(_PREFIX) and frag[len(_PREFIX) :].isdigit():
        return idx
    return -1


class AudioCodeMapper:
    """Maps custom-token numbers to audio codes, counting invalid codes per slot position."""

    def __init__(self) -> None:
        self.audio_tokens = 0
        self.special_tokens = 0
        self.after_end_tokens = 0
        self.end_of_speech = False
        self.invalid_codes = [0] * FRAME_TOKENS

    def feed(self, numbers: list[int]) -> list[int | None]:
        """Codes for the audio tokens among `numbers` (None for an invalid code, position kept)."""
        out: list[int | None] = []
        for n in numbers:
            if self.end_of_speech:
                self.after_end_tokens += 1
                continue
            if n == END_OF_SPEECH_TOKEN:
                self.end_of_speech = True
                continue
            if n < AUDIO_TOKEN_OFFSET:
                self.special_tokens += 1
                continue
            pos = self.audio_tokens % FRAME_TOKENS
            code = n - AUDIO_TOKEN_OFFSET - CODEBOOK_SIZE * pos
            self.audio_tokens += 1
            if 0 <= code < CODEBOOK_SIZE:
                out.append(code)
            else:
                self.invalid_codes[pos] += 1
                out.append(None)
        return out


def numbers_from_token_ids(ids: list[int]) -> list[int] | None:
    """Custom-token numbers from Orpheus token ids, or None when any id is not a custom token."""
    nums = [i - ORPHEUS_CUSTOM_TOKEN_BASE_ID for i in ids]
    return nums if all(n >= 0 for n in nums) else None
