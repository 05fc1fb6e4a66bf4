"""Prompt sets: built-in ones (the seed's length buckets) and prompt files (one prompt per line).

The seed measured inputs of about 20, 30, 50 and 70+ tokens and found that 70+ token prompts "sometimes produce
no audio" (the per-slot context was 40 tokens). The ``seed-lengths`` set has prompts in each bucket, so that
effect shows up in a run instead of being discovered by accident. Token counts are approximate (Llama-3 BPE on
English prose averages roughly 4.2 characters per token); the bucket name is kept in each record's prompt id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orpheus_bench.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Prompt:
    """One input text and a stable id (``set/bucket/index``) for grouping."""

    id: str
    text: str


_SHORT = [
    "Hello there, thanks for calling. How can I help you today?",
    "The weather this morning is cool and clear, with light winds.",
    "Your order has shipped and should arrive by Thursday afternoon.",
]
_MEDIUM = [
    "I looked into the issue you reported yesterday, and it turns out the update fixed the problem "
    "for most users already.",
    "Before we begin, please make sure your headphones are connected and the volume is at a comfortable level.",
    "The museum opens at nine in the morning, and guided tours leave from the main hall every half hour.",
]
_LONG = [
    "Thank you for your patience while we reviewed your account. We found two charges from last month that "
    "should not have been applied, and we have already started the refund, which usually takes three to five "
    "business days.",
    "Imagine a quiet beach at sunset, the waves rolling in slowly, the sand still warm from the afternoon sun, "
    "and a light breeze carrying the smell of salt and pine from the hills behind you.",
]
_XLONG = [
    "Welcome to the quarterly update. This quarter we shipped the new onboarding flow, cut the average "
    "support response time in half, opened two regional offices, and hired forty new people across "
    "engineering, design and customer success. In the next quarter we will focus on reliability, with a "
    "goal of four nines of availability for every customer-facing service, and on making our documentation "
    "easier to search.",
]

BUILTIN_SETS: dict[str, dict[str, list[str]]] = {
    # bucket -> prompts; bucket names give the approximate token length
    "seed-lengths": {"t20": _SHORT, "t30": _MEDIUM, "t50": _LONG, "t70plus": _XLONG},
    "short": {"t20": _SHORT},
    "medium": {"t30": _MEDIUM},
}


def builtin(name: str) -> list[Prompt]:
    """A built-in set by name."""
    if name not in BUILTIN_SETS:
        raise ConfigError("prompts.set", f"unknown built-in set {name!r}; choose one of {sorted(BUILTIN_SETS)}")
    return [
        Prompt(id=f"{name}/{bucket}/{i}", text=text)
        for bucket, texts in BUILTIN_SETS[name].items()
        for i, text in enumerate(texts)
    ]


def from_file(path: str | Path) -> list[Prompt]:
    """One prompt per non-empty line; lines starting with ``#`` are comments."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("prompts.file", f"no such file: {p}")
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    texts = [ln for ln in lines if ln and not ln.startswith("#")]
    if not texts:
        raise ConfigError("prompts.file", f"{p} holds no prompt (empty or only comments)")
    return [Prompt(id=f"{p.stem}/{i}", text=t) for i, t in enumerate(texts)]


def from_list(texts: list[str]) -> list[Prompt]:
    """Prompts given inline in a scenario."""
    clean = [t for t in texts if t.strip()]
    if not clean:
        raise ConfigError("prompts.texts", "the list holds no non-empty prompt")
    return [Prompt(id=f"inline/{i}", text=t) for i, t in enumerate(clean)]
