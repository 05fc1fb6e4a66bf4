"""Orpheus prompt formatting.

The fine-tuned Orpheus models expect the text wrapped in special tokens: ``<custom_token_3>`` (start of human),
``<|begin_of_text|>``, ``{voice}: {text}``, ``<|eot_id|>``, then ``<custom_token_4>`` (end of human),
``<custom_token_5>`` (start of AI) and ``<custom_token_1>`` (start of speech). The model answers with audio
tokens and ends speech with ``<custom_token_2>``.
"""

from __future__ import annotations

VOICES: tuple[str, ...] = ("tara", "leah", "jess", "leo", "dan", "mia", "zac", "zoe")
END_OF_SPEECH = "<custom_token_2>"

_PREFIX = "<custom_token_3><|begin_of_text|>"
_SUFFIX = "<|eot_id|><custom_token_4><custom_token_5><custom_token_1>"


def format_prompt(text: str, voice: str | None = None) -> str:
    """Wrap `text` (and an optional voice name) in Orpheus' prompt tokens."""
    body = f"{voice}: {text}" if voice else text
    return f"{_PREFIX}{body}{_SUFFIX}"
