"""The tiny Orpheus-format GGUF: vocabulary layout, the Markov chain its weights encode, the file itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orpheus_bench.server import model_builder as mb

pytestmark = pytest.mark.unit

CT = mb.CUSTOM_TOKEN_BASE


@pytest.fixture(scope="module")
def vocab() -> mb.Vocabulary:
    return mb.build_vocabulary()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mb.write_test_model(tmp_path_factory.mktemp("model") / "tiny.gguf", mb.TinyModelSpec(layers=2))


def _read_kv(path: Path) -> dict[str, Any]:
    """GGUF metadata: scalars as values, arrays as their lengths (gguf's GGUFReader takes seconds here)."""
    import struct

    fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    data = path.read_bytes()
    pos = 0

    def take(f: str) -> Any:
        nonlocal pos
        (v,) = struct.unpack_from("<" + f, data, pos)
        pos += struct.calcsize(f)
        return v

    def string() -> str:
        nonlocal pos
        n = take("Q")
        pos += n
        return data[pos - n : pos].decode()

    def value(t: int) -> Any:
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            for _ in range(n):
                value(et)
            return n
        return take(fmt[t])

    assert data[:4] == b"GGUF"
    pos = 4
    take("I")
    take("Q")
    out: dict[str, Any] = {}
    for _ in range(take("Q")):
        key = string()
        out[key] = value(take("I"))
    return out


def test_vocabulary_has_orpheus_ids(vocab: mb.Vocabulary) -> None:
    from gguf import TokenType

    assert len(vocab.tokens) == len(vocab.types) == mb.N_VOCAB == 128_256 + 10 + 7 * 4096
    assert vocab.tokens[128_000] == "<|begin_of_text|>"
    assert vocab.tokens[128_009] == "<|eot_id|>"
    assert vocab.types[128_000] == vocab.types[128_009] == TokenType.CONTROL
    for i in (0, 1, 2, 5, 10, 4000, 28_681):
        assert vocab.tokens[CT + i] == f"<custom_token_{i}>"
        assert vocab.types[CT + i] == TokenType.USER_DEFINED
    assert vocab.types[CT - 1] == TokenType.CONTROL
    assert len(set(vocab.tokens)) == len(vocab.tokens), "token texts must be unique"


def test_merges_are_nonempty_and_closed(vocab: mb.Vocabulary) -> None:
    # gguf-py drops an empty merges list, and llama.cpp then refuses a BPE vocabulary.
    assert len(vocab.merges) > 1000
    known = set(vocab.tokens[: mb.BOS_ID])
    for merge in vocab.merges[:: max(1, len(vocab.merges) // 500)]:
        left, right = merge.split(" ")
        assert left in known and right in known and left + right in known


def test_audio_token_ids_match_the_client_mapping() -> None:
    # The client maps <custom_token_N> at frame position i to code N - 10 - 4096 * (i % 7).
    for p in range(7):
        for code in (0, 1, 4095):
            n = mb.audio_token_id(p, code) - CT
            assert n - 10 - 4096 * p == code


def test_states_of_tokens() -> None:
    states = mb.token_states()
    assert states[mb.audio_token_id(0, 0)] == 0
    assert states[mb.audio_token_id(6, 4095)] == 6
    assert states[CT + mb.START_OF_SPEECH] == mb.STATE_SPEECH
    assert states[mb.BOS_ID] == states[65] == states[CT + 3] == mb.STATE_TEXT


def _follow(logits: np.ndarray, states: np.ndarray, token: int, steps: int) -> list[int]:
    out = []
    for _ in range(steps):
        token = int(np.argmax(logits[states[token]]))
        out.append(token)
    return out


def test_greedy_chain_from_orpheus_prompt_end_is_positional_audio() -> None:
    logits, states = mb.next_token_logits(), mb.token_states()
    seq = _follow(logits, states, CT + mb.START_OF_SPEECH, 70)
    for i, tok in enumerate(seq):
        code = tok - CT - 10 - 4096 * (i % 7)
        assert 0 <= code < 4096, f"token {i} ({tok}) is not an audio code of position {i % 7}"


def test_text_leads_through_the_markers_into_speech() -> None:
    logits, states = mb.next_token_logits(), mb.token_states()
    seq = _follow(logits, states, ord("a"), 4)
    assert seq[:3] == [CT + 4, CT + 5, CT + 1]
    assert states[seq[3]] == 0  # first audio token is position 0


def test_sampled_chain_stays_valid_with_top_k_and_temperature() -> None:
    logits, states = mb.next_token_logits(), mb.token_states()
    rng = np.random.default_rng(7)
    top = np.argpartition(logits, -30, axis=1)[:, -30:]  # top_k 30 per state
    z = np.take_along_axis(logits, top, axis=1) / 0.3  # temperature 0.3
    prob = np.exp(z - z.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    token, codes = CT + mb.START_OF_SPEECH, set()
    for i in range(700):
        s = states[token]
        token = int(rng.choice(top[s], p=prob[s]))
        code = token - CT - 10 - 4096 * (i % 7)
        assert 0 <= code < 4096
        codes.add(code)
    assert len(codes) > 50, "jitter should spread the sampled codes"


def test_spec_validation_and_cache_key() -> None:
    with pytest.raises(ValueError):
        mb.TinyModelSpec(hidden=48)
    a, b = mb.TinyModelSpec(), mb.TinyModelSpec(layers=2)
    assert a.cache_key() != b.cache_key()
    assert a.cache_key() == mb.TinyModelSpec().cache_key()
    assert "l2" in b.file_name()


def test_file_metadata(written: Path) -> None:
    kv = _read_kv(written)
    assert kv["general.architecture"] == "llama"
    assert kv["llama.context_length"] == 8192
    assert kv["llama.block_count"] == 2
    assert kv["tokenizer.ggml.model"] == "gpt2"
    assert kv["tokenizer.ggml.pre"] == "llama-bpe"
    assert kv["tokenizer.ggml.bos_token_id"] == 128_000
    assert kv["tokenizer.ggml.eos_token_id"] == 128_009
    assert kv["tokenizer.ggml.tokens"] == mb.N_VOCAB
    assert kv["tokenizer.ggml.merges"] > 1000  # an empty list would be dropped and llama.cpp refuses BPE
    assert written.stat().st_size < 40e6


def test_forward_pass_after_quantization_predicts_next_position() -> None:
    """Round-trip the weights through Q8_0 as written, run the residual path: state p favours position p+1."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    q8 = GGMLQuantizationType.Q8_0
    tensors = mb.build_tensors(mb.TinyModelSpec(layers=2))

    def roundtrip(name: str) -> np.ndarray:
        return np.asarray(dequantize(quantize(tensors[name], q8), q8), dtype=np.float32)

    embd, out, norm = roundtrip("token_embd.weight"), roundtrip("output.weight"), tensors["output_norm.weight"]
    assert not tensors["blk.0.attn_output.weight"].any() and not tensors["blk.1.ffn_down.weight"].any()
    for p in range(7):
        x = embd[mb.audio_token_id(p, 123)]
        h = x / np.sqrt(np.mean(x * x) + 1e-5) * norm
        logits = out @ h
        best = int(np.argmax(logits))
        assert (best - CT - 10) // 4096 == (p + 1) % 7
        margin = logits[best] - np.sort(logits[: mb.audio_token_id(0, 0)])[-1]
        assert margin > 15


def test_write_is_deterministic(tmp_path: Path, written: Path) -> None:
    again = mb.write_test_model(tmp_path / "again.gguf", mb.TinyModelSpec(layers=2))
    assert again.read_bytes() == written.read_bytes()


def test_cached_test_model_builds_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORPHEUS_BENCH_CACHE", str(tmp_path))
    first = mb.cached_test_model()
    assert first.is_file() and first.is_relative_to(tmp_path)
    mtime = first.stat().st_mtime_ns
    assert mb.cached_test_model() == first
    assert first.stat().st_mtime_ns == mtime
    assert not list(first.parent.glob("*.tmp"))
