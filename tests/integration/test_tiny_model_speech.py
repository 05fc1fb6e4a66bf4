"""The tiny model ends speech like Orpheus, on a real llama-server: whole frames, length from the text, seeded.

The default test model speaks about 4.7 frames per word of the prompt and then `<custom_token_2>` (see
`orpheus_bench.server.model_builder`). These tests stream /completion with the scenario's sampling over the
built-in prompts and check what llama-server reports: the stop word, whole frames, lengths that follow the word
count, the seed's effect, and the three ways a request ends short of its utterance (n_predict, a full slot, a
prompt the slot cannot hold). The fixed variant still runs to n_predict exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orpheus_bench.core.prompt import format_prompt
from orpheus_bench.core.sse import SSEDecoder
from orpheus_bench.prompts import builtin
from orpheus_bench.server.launcher import LlamaServer
from orpheus_bench.server.profiles import resolve_profile

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN_RE = re.compile(r"<custom_token_(\d+)>")
END_OF_SPEECH = "<custom_token_2>"
END_OF_AI = "<custom_token_6>"
SAMPLING: dict[str, Any] = {"temperature": 0.3, "top_k": 30, "repeat_penalty": 1.1}
N_PREDICT = 3000  # above the longest built-in utterance: 65 words x 4.7 frames x 7 tokens ~ 2150 tokens
SPEECH_SLOT_CTX = 4096  # -c 16384 over test-np4's 4 slots: the longest prompt and its utterance fit
SMALL_SLOT_CTX = 256  # -c 1024 over 4 slots
FILLER_WORD = " there"  # "Ġthe" + "re": one word, two tokens


@dataclass(frozen=True, slots=True)
class Reply:
    """One streamed /completion: the custom-token numbers in its text and its final event."""

    numbers: list[int]
    last: dict[str, Any]

    @property
    def audio(self) -> list[int]:
        """The audio codes' custom-token numbers (markers are numbers below 10)."""
        return [n for n in self.numbers if n >= 10]

    @property
    def frames(self) -> float:
        """Audio frames spoken (fractional when the stream stopped mid-frame)."""
        return len(self.audio) / 7


async def _stream(url: str, prompt: str, **body: Any) -> Reply:
    decoder, events = SSEDecoder(), []
    request = {"prompt": prompt, "n_predict": N_PREDICT, "stop": [END_OF_SPEECH], **SAMPLING, **body, "stream": True}
    async with (
        aiohttp.ClientSession(trust_env=False) as s,
        s.post(f"{url}/completion", json=request) as resp,
    ):
        assert resp.status == 200, await resp.text()
        async for chunk in resp.content.iter_any():
            events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    data = [json.loads(e.data) for e in events if e.data and e.data != "[DONE]"]
    text = "".join(d.get("content", "") for d in data)
    return Reply(numbers=[int(n) for n in TOKEN_RE.findall(text)], last=data[-1])


async def _post(url: str, prompt: str, **body: Any) -> tuple[int, dict[str, Any]]:
    request = {"prompt": prompt, "n_predict": N_PREDICT, "stop": [END_OF_SPEECH], **SAMPLING, **body}
    async with aiohttp.ClientSession(trust_env=False) as s, s.post(f"{url}/completion", json=request) as resp:
        return resp.status, await resp.json(content_type=None)


async def _slot_ctx(url: str) -> set[int]:
    async with aiohttp.ClientSession(trust_env=False) as s, s.get(f"{url}/slots") as resp:
        return {slot["n_ctx"] for slot in await resp.json(content_type=None)}


def _assert_positional_audio(numbers: list[int]) -> None:
    codes = [n - 10 - 4096 * (i % 7) for i, n in enumerate(numbers)]
    assert all(0 <= c < 4096 for c in codes), "an audio code out of range or out of frame position order"


def _server(binary: Path, model: Path, tmp: pytest.TempPathFactory, ctx_size: int) -> Iterator[str]:
    log = tmp.mktemp(f"llama-server-c{ctx_size}") / "server.log"
    extra = ["-c", str(ctx_size)]
    with LlamaServer(resolve_profile("test-np4"), model, log_path=log, extra_args=extra, ready_timeout_s=60) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def speech_server(
    llama_server_binary: Path, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """test-np4 on the default (ending) model with 4096-token slots."""
    yield from _server(llama_server_binary, tiny_model_path, tmp_path_factory, 4 * SPEECH_SLOT_CTX)


@pytest.fixture(scope="module")
def small_slot_server(
    llama_server_binary: Path, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """test-np4 on the default model with -c too small for four Orpheus utterances: 256 tokens a slot."""
    yield from _server(llama_server_binary, tiny_model_path, tmp_path_factory, 4 * SMALL_SLOT_CTX)


async def test_utterances_end_by_the_stop_word_in_whole_frames_and_follow_the_word_count(
    speech_server: str,
) -> None:
    prompts = builtin("seed-lengths")
    covered = {p.text for p in prompts}
    assert {p.text for p in builtin("short") + builtin("medium")} <= covered
    assert await _slot_ctx(speech_server) == {SPEECH_SLOT_CTX}
    replies = await asyncio.gather(*(_stream(speech_server, format_prompt(p.text, "tara"), seed=0) for p in prompts))
    by_bucket: dict[str, list[tuple[int, float]]] = {}
    for prompt, reply in zip(prompts, replies, strict=True):
        last = reply.last
        assert last["stop"] is True and last["stop_type"] == "word", (prompt.id, last.get("stop_type"))
        assert last["stopping_word"] == END_OF_SPEECH and last["truncated"] is False
        assert reply.numbers == reply.audio, "only audio codes before the end of speech"
        assert len(reply.audio) % 7 == 0, f"{prompt.id}: {len(reply.audio)} audio tokens is not whole frames"
        _assert_positional_audio(reply.audio)
        words = len(prompt.text.split())
        assert 4.0 <= reply.frames / words <= 6.0, (prompt.id, words, reply.frames)
        by_bucket.setdefault(prompt.id.split("/")[1], []).append((words, reply.frames))
    # Longer prompts speak longer: bucket by bucket, and between any two prompts three or more words apart.
    means = sorted((statistics.mean(w for w, _ in v), statistics.mean(f for _, f in v)) for v in by_bucket.values())
    assert all(f1 < f2 for (_, f1), (_, f2) in itertools.pairwise(means)), means
    pairs = [wf for v in by_bucket.values() for wf in v]
    for w1, f1 in pairs:
        for w2, f2 in pairs:
            if w2 >= w1 + 3:
                assert f2 > f1, (w1, f1, w2, f2)
    total_words = sum(w for w, _ in pairs)
    assert 4.4 <= sum(f for _, f in pairs) / total_words <= 5.0  # the default knob: 4.7 frames per word


async def test_same_seed_repeats_the_length_other_seeds_vary_it_a_little(speech_server: str) -> None:
    prompts = [builtin("short")[0], builtin("medium")[1]]
    seeds = range(6)
    jobs = [(p, seed) for p in prompts for seed in seeds for _ in range(2)]
    replies = await asyncio.gather(*(_stream(speech_server, format_prompt(p.text, "tara"), seed=s) for p, s in jobs))
    for prompt in prompts:
        lengths: dict[int, set[float]] = {}
        for (p, seed), reply in zip(jobs, replies, strict=True):
            if p is prompt:
                assert reply.last["stop_type"] == "word"
                lengths.setdefault(seed, set()).add(reply.frames)
        assert all(len(v) == 1 for v in lengths.values()), f"{prompt.id}: a seed gave two lengths: {lengths}"
        per_seed = [next(iter(v)) for v in lengths.values()]
        assert len(set(per_seed)) >= 2, f"{prompt.id}: six seeds, one length {per_seed}"
        assert max(per_seed) - min(per_seed) <= 0.1 * statistics.median(per_seed), per_seed


async def test_without_the_stop_string_end_of_speech_streams_at_a_frame_boundary_then_eos(
    speech_server: str,
) -> None:
    reply = await _stream(speech_server, format_prompt(builtin("short")[0].text, "tara"), seed=3, stop=[])
    assert reply.last["stop_type"] == "eos" and reply.last["truncated"] is False
    end = reply.numbers.index(2)
    assert reply.numbers[end:] == [2, 6], "end of speech, then end of AI, then <|eot_id|> (not in the text)"
    assert end == len(reply.audio) and end % 7 == 0 and end > 0
    _assert_positional_audio(reply.numbers[:end])
    assert reply.last["tokens_predicted"] == end + 3


async def test_n_predict_below_the_utterance_cuts_it_short(speech_server: str) -> None:
    n_predict = 7 * 20 + 3  # mid-frame, well inside a short prompt's ~50 frames
    reply = await _stream(speech_server, format_prompt(builtin("short")[1].text, "tara"), seed=0, n_predict=n_predict)
    assert reply.last["stop_type"] == "limit" and reply.last["truncated"] is False
    assert len(reply.numbers) == reply.last["tokens_predicted"] == n_predict
    _assert_positional_audio(reply.numbers)


async def test_a_slot_too_small_truncates_the_utterance_or_refuses_the_prompt(small_slot_server: str) -> None:
    assert await _slot_ctx(small_slot_server) == {SMALL_SLOT_CTX}
    near = format_prompt("Hello" + FILLER_WORD * 105, "tara")  # about 225 tokens: room for a few frames
    reply = await _stream(small_slot_server, near, seed=0)
    prompt_tokens = reply.last["tokens_evaluated"]
    assert SMALL_SLOT_CTX - 60 < prompt_tokens < SMALL_SLOT_CTX - 7
    assert reply.last["stop_type"] == "limit" and reply.last["truncated"] is True
    assert len(reply.numbers) == reply.last["tokens_predicted"] == SMALL_SLOT_CTX - prompt_tokens
    assert 2 not in reply.numbers and len(reply.numbers) < N_PREDICT
    _assert_positional_audio(reply.numbers)

    too_long = format_prompt("Hello" + FILLER_WORD * 140, "tara")  # about 295 tokens
    status, body = await _post(small_slot_server, too_long, seed=0)
    assert status == 400 and body["error"]["type"] == "exceed_context_size_error"


async def test_the_fixed_model_runs_exactly_n_predict(llama_server_fixed_np4: str, speech_server: str) -> None:
    prompt = format_prompt(builtin("short")[0].text, "tara")
    n_predict = 7 * 70  # past the ~52 frames the ending model speaks for this prompt
    fixed, ending = await asyncio.gather(
        _stream(llama_server_fixed_np4, prompt, seed=0, n_predict=n_predict),
        _stream(speech_server, prompt, seed=0, n_predict=n_predict),
    )
    assert fixed.last["stop_type"] == "limit" and fixed.last["truncated"] is False
    assert len(fixed.numbers) == fixed.last["tokens_predicted"] == n_predict
    _assert_positional_audio(fixed.numbers)
    assert ending.last["stop_type"] == "word" and len(ending.audio) < n_predict
