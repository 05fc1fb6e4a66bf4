"""Pre-flight checks of a llama-server for an Orpheus benchmark: the problems the seed experiment ran into.

`run_checks` reads /health, /props, /slots and /metrics and tokenizes through POST /tokenize, then judges:
is the server up (503 = still loading), will each prompt's utterance fit (the *per-slot* context and
`max_tokens` against the prompt and the speech its text asks for: which prompts get no audio, which will
certainly be cut short, which may be), is `--metrics` on, is this an Orpheus vocabulary (`<custom_token_N>` is
one token), and are there fewer slots than planned concurrency (requests will queue).

Expected speech: Orpheus speaks about 4 to 6 frames (7 audio tokens each) per word of text, roughly 2.5 words a
second. A prompt whose room (the slot's context minus the prompt) or `max_tokens` is below the low end
(`FRAMES_PER_WORD_LOW`) will certainly be cut short: that fails the check, as no audio does. Below the high
end it may be cut short: a warning.
The judging functions are pure and take the fetched JSON, so they are tested on canned answers; `run_checks`
is the thin aiohttp driver. Problems are data (`DoctorCheck`), never exceptions.

Why one module over 400 lines: each check is a small pure judge; reading the server (`run_checks`) and judging are
together so the findings a run stores are exactly what `orpheus-bench doctor` prints.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from orpheus_bench.core.prompt import format_prompt

Level = Literal["ok", "warn", "fail"]
_LEVEL_ORDER: dict[str, int] = {"ok": 0, "warn": 1, "fail": 2}

ORPHEUS_PROBE_TOKEN = 4000
ORPHEUS_CUSTOM_BASE = 128_256
FRAME_TOKENS = 7
ORPHEUS_PROMPT_START = "<custom_token_3>"
_SPECIAL_RE = re.compile(r"<custom_token_\d+>|<\|[a-z_0-9]+\|>")
CHARS_PER_TOKEN_ESTIMATE = 3.5
TOKENIZE_CONCURRENCY = 8  # /tokenize calls in flight: enough to be quick, few enough not to load the server
FRAMES_PER_WORD_LOW = 4.0  # Orpheus speaks about 4-6 frames (~0.34-0.51 s of audio) per word of English text
FRAMES_PER_WORD_HIGH = 6.0
_WORD_RE = re.compile(r"[A-Za-z0-9']+")
Verdict = Literal["fits", "may_be_cut", "cut_short", "no_audio"]


@dataclass(slots=True)
class DoctorCheck:
    """One finding: `name` (stable id), `level`, a sentence for people, and data for machines."""

    name: str
    level: Level
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "level": self.level, "message": self.message, "details": self.details}


@dataclass(slots=True)
class PromptFit:
    """How one prompt's utterance fits: `fits`, `may_be_cut`, `cut_short` (certainly: the slot's room or
    max_tokens is below the shortest speech its words ask for) or `no_audio` (not one frame of room); `limit`
    names what cuts it (``slot_context`` or ``max_tokens``)."""

    prompt_id: str
    excerpt: str
    prompt_tokens: int
    estimated: bool
    n_ctx_slot: int
    max_tokens: int | None
    verdict: Verdict
    room_tokens: int
    words: int = 0
    limit: str | None = None

    @property
    def speech_tokens(self) -> tuple[int, int]:
        """(low, high) audio tokens Orpheus speaks for this prompt's words, end of speech included."""
        return speech_tokens(self.words)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "prompt_id": self.prompt_id,
            "excerpt": self.excerpt,
            "prompt_tokens": self.prompt_tokens,
            "estimated": self.estimated,
            "n_ctx_slot": self.n_ctx_slot,
            "max_tokens": self.max_tokens,
            "verdict": self.verdict,
            "room_tokens": self.room_tokens,
            "words": self.words,
            "speech_tokens": list(self.speech_tokens),
            "limit": self.limit,
        }


@dataclass(slots=True)
class DoctorReport:
    """All checks against one server, the per-prompt fits, and the raw /props for run.json."""

    base_url: str
    reachable: bool
    checks: list[DoctorCheck] = field(default_factory=list)
    prompts: list[PromptFit] = field(default_factory=list)
    props: dict[str, Any] | None = None
    n_ctx_slot: int | None = None
    total_slots: int | None = None

    @property
    def level(self) -> Level:
        """The worst level of any check."""
        worst: Level = "ok"
        for c in self.checks:
            if _LEVEL_ORDER[c.level] > _LEVEL_ORDER[worst]:
                worst = c.level
        return worst

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return self.level != "fail"

    def check(self, name: str) -> DoctorCheck | None:
        """The check with this name, if it ran."""
        return next((c for c in self.checks if c.name == name), None)

    def prompts_with(self, verdict: str) -> list[PromptFit]:
        """Prompts with this verdict."""
        return [p for p in self.prompts if p.verdict == verdict]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form stored in run.json."""
        return {
            "base_url": self.base_url,
            "reachable": self.reachable,
            "level": self.level,
            "n_ctx_slot": self.n_ctx_slot,
            "total_slots": self.total_slots,
            "checks": [c.to_dict() for c in self.checks],
            "prompts": [p.to_dict() for p in self.prompts],
            "props": self.props,
        }

    def lines(self) -> list[str]:
        """Human-readable lines, one per check, worst first."""
        ordered = sorted(self.checks, key=lambda c: -_LEVEL_ORDER[c.level])
        return [f"[{c.level.upper():4}] {c.name}: {c.message}" for c in ordered]


# ---- pure judging --------------------------------------------------------------------------------------


def slot_context(props: Mapping[str, Any] | None, slots: Any) -> tuple[int | None, int | None]:
    """(per-slot n_ctx, number of slots) from /slots (authoritative) or /props."""
    n_ctx: int | None = None
    total: int | None = None
    if isinstance(slots, list) and slots:
        values = [s["n_ctx"] for s in slots if isinstance(s, dict) and isinstance(s.get("n_ctx"), int)]
        n_ctx = min(values) if values else None
        total = len(slots)
    if props:
        dgs = props.get("default_generation_settings")
        if n_ctx is None and isinstance(dgs, dict) and isinstance(dgs.get("n_ctx"), int):
            n_ctx = int(dgs["n_ctx"])
        if total is None and isinstance(props.get("total_slots"), int):
            total = int(props["total_slots"])
    return n_ctx, total


def estimate_tokens(prompt: str) -> int:
    """Rough token count when /tokenize is unavailable: one per special token, ~3.5 characters per rest."""
    specials = _SPECIAL_RE.findall(prompt)
    rest = _SPECIAL_RE.sub("", prompt)
    return len(specials) + max(1, round(len(rest) / CHARS_PER_TOKEN_ESTIMATE)) + 1  # +1: BOS


def as_sent(text: str, voice: str | None) -> str:
    """The prompt as the client sends it: plain text gets Orpheus' markers, a formatted prompt is kept."""
    if ORPHEUS_PROMPT_START in text:
        return text
    return format_prompt(text, voice)


def word_count(text: str) -> int:
    """Words of the text to be spoken (Orpheus' markers and the voice prefix left out)."""
    plain = _SPECIAL_RE.sub(" ", text)
    if ORPHEUS_PROMPT_START in text and ":" in plain:
        plain = plain.split(":", 1)[1]  # "tara: Hello there" -> the voice name is not spoken
    return len(_WORD_RE.findall(plain))


def speech_tokens(words: int) -> tuple[int, int]:
    """(low, high) tokens of the utterance Orpheus speaks for ``words`` words: frames x 7, plus end of speech."""
    low = round(FRAMES_PER_WORD_LOW * words) * FRAME_TOKENS + 1
    high = round(FRAMES_PER_WORD_HIGH * words) * FRAME_TOKENS + 1
    return low, high


def fit_prompt(
    prompt_id: str,
    prompt: str,
    n_tokens: int,
    estimated: bool,
    n_ctx_slot: int,
    max_tokens: int | None,
    words: int | None = None,
) -> PromptFit:
    """Judge one prompt: no room for a frame is no audio; room or max_tokens below the shortest utterance its
    words ask for is certainly cut short; below the longest, maybe. Without words (unknown text), room below
    max_tokens may cut it."""
    words = word_count(prompt) if words is None else words
    room = n_ctx_slot - n_tokens
    budget = room if max_tokens is None else min(room, max_tokens)
    limit: str | None = "slot_context" if max_tokens is None or room <= max_tokens else "max_tokens"
    low, high = speech_tokens(words)
    verdict: Verdict
    if room < FRAME_TOKENS:
        verdict, limit = "no_audio", "slot_context"
    elif words and budget < low:
        verdict = "cut_short"
    elif (words and budget < high) or (not words and max_tokens is not None and room < max_tokens):
        verdict = "may_be_cut"
    else:
        verdict, limit = "fits", None
    excerpt = _excerpt(prompt)
    return PromptFit(prompt_id, excerpt, n_tokens, estimated, n_ctx_slot, max_tokens, verdict, room, words, limit)


def _excerpt(prompt: str, width: int = 48) -> str:
    text = _SPECIAL_RE.sub("", prompt).strip()
    return text if len(text) <= width else text[: width - 3] + "..."


def context_check(
    fits: Sequence[PromptFit], n_ctx_slot: int | None, total_slots: int | None, max_tokens: int | None = None
) -> DoctorCheck:
    """One check summarising all prompt fits, naming each prompt that gets no audio or is cut short."""
    if n_ctx_slot is None:
        return DoctorCheck("context", "warn", "per-slot context unknown (no /slots or /props n_ctx)")
    details: dict[str, Any] = {"n_ctx_slot": n_ctx_slot, "total_slots": total_slots, "max_tokens": max_tokens}
    if not fits:
        if max_tokens is not None and max_tokens >= n_ctx_slot:
            return DoctorCheck(
                "context",
                "warn",
                f"max_tokens {max_tokens} does not fit the {n_ctx_slot}-token slot{_slot_hint(total_slots)}: any "
                f"utterance longer than the slot's room after its prompt will be cut short (no prompts to check)",
                details,
            )
        return DoctorCheck("context", "ok", f"each slot holds {n_ctx_slot} tokens (no prompts to check)", details)
    longest = max(fits, key=lambda f: f.prompt_tokens)
    details["longest_prompt_tokens"] = longest.prompt_tokens
    by = {v: [f for f in fits if f.verdict == v] for v in ("no_audio", "cut_short", "may_be_cut")}
    details.update({k: [f.prompt_id for f in v] for k, v in by.items()})
    details["truncated"] = details["cut_short"] + details["may_be_cut"]  # older readers
    est = " (token counts estimated)" if any(f.estimated for f in fits) else ""
    problems = []
    if by["no_audio"]:
        names = "; ".join(f"{f.prompt_id} ({f.prompt_tokens} tokens: {f.excerpt!r})" for f in by["no_audio"])
        problems.append(
            f"{len(by['no_audio'])} of {len(fits)} prompts get no audio: each slot holds only {n_ctx_slot} tokens"
            f"{_slot_hint(total_slots)}; {names}"
        )
    if by["cut_short"]:
        worst = min(by["cut_short"], key=lambda f: min(f.room_tokens, f.max_tokens or f.room_tokens))
        low, _ = worst.speech_tokens
        budget = worst.room_tokens if worst.limit == "slot_context" else worst.max_tokens
        what = (
            f"the {n_ctx_slot}-token slot leaves {worst.room_tokens} tokens after the prompt{_slot_hint(total_slots)}"
            if worst.limit == "slot_context"
            else f"max_tokens is {worst.max_tokens}"
        )
        problems.append(
            f"{len(by['cut_short'])} of {len(fits)} prompts will be cut short: {worst.prompt_id} "
            f"({worst.words} words) speaks at least {low} tokens ({low // FRAME_TOKENS} frames) but {what}, so "
            f"at most {budget} tokens ({(budget or 0) // FRAME_TOKENS} frames) of its speech are generated; "
            f"affected: {', '.join(f.prompt_id for f in by['cut_short'])}"
        )
    if problems:
        return DoctorCheck("context", "fail", "; ".join(problems) + est, details)
    if by["may_be_cut"]:
        names = ", ".join(f.prompt_id for f in by["may_be_cut"])
        return DoctorCheck(
            "context",
            "warn",
            f"{len(by['may_be_cut'])} of {len(fits)} prompts may be cut short (a long reading of their words does "
            f"not fit the slot's room or max_tokens {max_tokens}): {names}{est}",
            details,
        )
    return DoctorCheck(
        "context",
        "ok",
        f"every prompt fits: longest {longest.prompt_tokens} tokens + its speech (up to "
        f"{max(f.speech_tokens[1] for f in fits)} tokens) within the {n_ctx_slot}-token slot and max_tokens "
        f"{max_tokens}{est}",
        details,
    )


def _slot_hint(total_slots: int | None) -> str:
    if total_slots and total_slots > 1:
        return f" (-c is split across {total_slots} slots: raise -c, lower -np, or use --kv-unified)"
    return " (raise -c)"


def vocabulary_check(tokens: list[int] | None) -> DoctorCheck:
    """Judge `/tokenize` of `<custom_token_4000>`: one token (at Orpheus' id) means an Orpheus vocabulary."""
    probe = f"<custom_token_{ORPHEUS_PROBE_TOKEN}>"
    if tokens is None:
        return DoctorCheck("vocabulary", "warn", f"could not tokenize {probe} (no /tokenize): vocabulary unchecked")
    expected = ORPHEUS_CUSTOM_BASE + ORPHEUS_PROBE_TOKEN
    details = {"probe": probe, "tokens": tokens[:16], "expected_id": expected}
    if len(tokens) != 1:
        return DoctorCheck(
            "vocabulary",
            "fail",
            f"not an Orpheus model: {probe} is {len(tokens)} tokens, not one; the stream will carry no audio codes",
            details,
        )
    if tokens[0] != expected:
        return DoctorCheck(
            "vocabulary",
            "warn",
            f"{probe} is one token but id {tokens[0]}, not Orpheus' {expected}: text parsing works, token ids differ",
            details,
        )
    return DoctorCheck("vocabulary", "ok", f"Orpheus vocabulary: {probe} = token {expected}", details)


def concurrency_check(total_slots: int | None, concurrency: int | None) -> DoctorCheck | None:
    """Warn when the planned concurrency exceeds the slots: the rest wait in llama-server's queue."""
    if concurrency is None:
        return None
    if total_slots is None:
        return DoctorCheck("slots", "warn", f"slot count unknown; planned concurrency {concurrency}")
    details = {"total_slots": total_slots, "concurrency": concurrency}
    if total_slots < concurrency:
        return DoctorCheck(
            "slots",
            "warn",
            f"{total_slots} slots for concurrency {concurrency}: {concurrency - total_slots} requests at a "
            "time will queue (requests_deferred) and their TTFA includes the wait; raise -np to serve them "
            "in parallel",
            details,
        )
    return DoctorCheck("slots", "ok", f"{total_slots} slots for concurrency {concurrency}", details)


def health_check(status: int | None, error: str | None = None) -> DoctorCheck:
    """Judge GET /health: 200 ready, 503 loading, anything else broken."""
    if status == 200:
        return DoctorCheck("health", "ok", "server is up and the model is loaded")
    if status == 503:
        return DoctorCheck("health", "fail", "server is still loading the model (/health 503); retry in a moment")
    if status is None:
        return DoctorCheck("health", "fail", f"cannot reach the server: {error}")
    return DoctorCheck("health", "fail", f"/health answered HTTP {status}")


def metrics_check(status: int | None) -> DoctorCheck:
    """Judge GET /metrics: 200 means `--metrics` is on."""
    if status == 200:
        return DoctorCheck("metrics", "ok", "/metrics enabled: the server timeline will be recorded")
    return DoctorCheck(
        "metrics",
        "warn",
        f"/metrics unavailable (HTTP {status}): start llama-server with --metrics to record the server timeline",
    )


# ---- the driver ----------------------------------------------------------------------------------------


async def run_checks(
    base_url: str,
    *,
    prompts: Sequence[str] | Mapping[str, str] | None = None,
    max_tokens: int | None = None,
    concurrency: int | None = None,
    api_key: str | None = None,
    session: aiohttp.ClientSession | None = None,
    voice: str | None = None,
    timeout_s: float = 10.0,
) -> DoctorReport:
    """Query the server and judge it.

    `prompts` are user texts (formatted here with Orpheus' markers and `voice`) or already formatted prompts
    (left as they are); a mapping gives them ids for the messages, a list names them `prompt[i]`.
    """
    base = base_url.rstrip("/")
    report = DoctorReport(base_url=base, reachable=False)
    own = session is None
    if session is None:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s), trust_env=False)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        status, _, err = await _request(session, "GET", f"{base}/health", headers)
        report.reachable = status is not None
        report.checks.append(health_check(status, err))
        if status != 200:
            return report
        _, props, _ = await _request(session, "GET", f"{base}/props", headers)
        slots_status, slots, _ = await _request(session, "GET", f"{base}/slots", headers)
        metrics_status, _, _ = await _request(session, "GET", f"{base}/metrics", headers, as_json=False)
        report.props = props if isinstance(props, dict) else None
        report.n_ctx_slot, report.total_slots = slot_context(report.props, slots)
        report.checks.append(metrics_check(metrics_status))
        if slots_status != 200:
            report.checks.append(
                DoctorCheck(
                    "slots_endpoint",
                    "warn",
                    f"/slots unavailable (HTTP {slots_status}): no busy-slot timeline",
                )
            )
        probe = await _tokenize(session, base, headers, f"<custom_token_{ORPHEUS_PROBE_TOKEN}>", add_special=False)
        report.checks.append(vocabulary_check(probe))
        raw = (
            list(prompts.items())
            if isinstance(prompts, Mapping)
            else [(f"prompt[{i}]", p) for i, p in enumerate(prompts or [])]
        )
        items = [(pid, as_sent(text, voice)) for pid, text in raw]
        if report.n_ctx_slot is not None:
            gate = asyncio.Semaphore(TOKENIZE_CONCURRENCY)

            async def count(text: str) -> list[int] | None:
                async with gate:
                    return await _tokenize(session, base, headers, text, add_special=True)

            counts = await asyncio.gather(*(count(text) for _, text in items))
            for (pid, text), toks, (_, plain) in zip(items, counts, raw, strict=True):
                n, est = (len(toks), False) if toks is not None else (estimate_tokens(text), True)
                words = word_count(plain if ORPHEUS_PROMPT_START not in plain else text)
                report.prompts.append(fit_prompt(pid, text, n, est, report.n_ctx_slot, max_tokens, words))
        report.checks.append(context_check(report.prompts, report.n_ctx_slot, report.total_slots, max_tokens))
        conc = concurrency_check(report.total_slots, concurrency)
        if conc is not None:
            report.checks.append(conc)
        return report
    finally:
        if own:
            await session.close()


async def _request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    *,
    as_json: bool = True,
    json_body: Any = None,
) -> tuple[int | None, Any, str | None]:
    """(status, parsed body or None, error text); never raises for transport errors."""
    try:
        async with session.request(method, url, headers=headers, json=json_body) as resp:
            text = await resp.text()
            body: Any = text
            if as_json:
                try:
                    body = json.loads(text)
                except ValueError:
                    body = None
            return resp.status, body, None
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return None, None, f"{type(exc).__name__}: {exc}"


async def _tokenize(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], text: str, *, add_special: bool
) -> list[int] | None:
    """Token ids from POST /tokenize (special tokens parsed, BOS added when `add_special`), or None."""
    status, body, _ = await _request(
        session,
        "POST",
        f"{base}/tokenize",
        headers,
        json_body={"content": text, "add_special": add_special, "parse_special": True},
    )
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("tokens"), list):
        return None
    out: list[int] = []
    for t in body["tokens"]:
        if isinstance(t, int):
            out.append(t)
        elif isinstance(t, dict) and isinstance(t.get("id"), int):  # with_pieces form
            out.append(t["id"])
    return out
