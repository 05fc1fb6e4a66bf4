"""The tiny Orpheus-format GGUF: vocabulary layout, the chain its weights encode, how it ends speech, the file."""

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
    for bad in ({"hidden": 48}, {"hidden": 32}, {"hidden": 96}, {"speech": "never"}, {"frames_per_word": 0}):
        with pytest.raises(ValueError):
            mb.TinyModelSpec(**bad)  # type: ignore[arg-type]
    a, b = mb.TinyModelSpec(), mb.TinyModelSpec(layers=2)
    assert a.cache_key() != b.cache_key()
    assert a.cache_key() == mb.TinyModelSpec().cache_key()
    assert "l2" in b.file_name()
    fixed, slow = mb.TinyModelSpec(speech="fixed"), mb.TinyModelSpec(frames_per_word=1.5)
    assert len({a.file_name(), fixed.file_name(), slow.file_name()}) == 3
    assert "-ends4.7-" in a.file_name() and "-fixed-" in fixed.file_name() and "-ends1.5-" in slow.file_name()


def test_cache_key_changes_with_the_builder_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # Files written by an older builder (a model that never ended speech) must not be picked up again.
    before = mb.TinyModelSpec().file_name()
    monkeypatch.setattr(mb, "BUILDER_VERSION", mb.BUILDER_VERSION + 1)
    assert mb.TinyModelSpec().file_name() != before


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


def test_only_block_zero_writes_and_only_into_spare_dimensions() -> None:
    """Extra blocks cost compute but say nothing; block 0 leaves the state one-hot (dims 0..13) untouched."""
    tensors = mb.build_tensors(mb.TinyModelSpec(layers=3))
    for i in (1, 2):
        assert not tensors[f"blk.{i}.attn_output.weight"].any() and not tensors[f"blk.{i}.ffn_down.weight"].any()
    for name in ("blk.0.attn_output.weight", "blk.0.ffn_down.weight"):
        assert not tensors[name][: mb.N_STATES].any(), name


# ---- a numpy forward pass over the weights as written ------------------------------------------------------
#
# What llama.cpp computes for the llama architecture, with its storage: Q8_0 embedding and output matrices, f16
# block matrices (their inputs rounded to f16, the KV cache f16), f32 norms, and the output matmul's input
# quantized to Q8_0 as ggml does for a Q8_0 weight. RoPE is left out: the test model has one head, and the
# rotation of a zero query is zero, so the counting head's scores are zero with or without it. Attention sums in
# f32 here; the real kernel's f16 sums are exercised by tests/integration/test_tiny_model_speech.py.


def _as_written(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    q8 = GGMLQuantizationType.Q8_0
    out = {}
    for name, data in tensors.items():
        if data.ndim == 1:
            out[name] = data
        elif name in ("token_embd.weight", "output.weight"):
            out[name] = np.asarray(dequantize(quantize(data, q8), q8), dtype=np.float32)
        else:
            out[name] = _f16(data)
    return out


def _f16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


def _q8(x: np.ndarray) -> np.ndarray:
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    q8 = GGMLQuantizationType.Q8_0
    return np.asarray(dequantize(quantize(x.astype(np.float32), q8), q8), dtype=np.float32)


def _rms_norm(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5) * weight


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(np.clip(-x, -60.0, 60.0)))


def _final_hidden(w: dict[str, np.ndarray], spec: mb.TinyModelSpec, tokens: list[int]) -> np.ndarray:
    """(n, hidden): the output matmul's input at every position of `tokens`, causal, one sequence."""
    x = w["token_embd.weight"][tokens]
    n, hd = len(tokens), spec.head_dim
    causal = np.tril(np.ones((n, n), dtype=bool))
    for i in range(spec.layers):
        a = _f16(_rms_norm(x, w[f"blk.{i}.attn_norm.weight"]))
        q, k = a @ w[f"blk.{i}.attn_q.weight"].T, a @ w[f"blk.{i}.attn_k.weight"].T
        v = _f16(a @ w[f"blk.{i}.attn_v.weight"].T)
        heads = []
        for h in range(spec.heads):
            cols = slice(h * hd, (h + 1) * hd)
            scores = np.where(causal, q[:, cols] @ k[:, cols].T / np.sqrt(hd), -np.inf)
            prob = np.exp(scores - scores.max(axis=1, keepdims=True))
            heads.append((prob / prob.sum(axis=1, keepdims=True)) @ v[:, cols])
        x = x + _f16(np.concatenate(heads, axis=1)) @ w[f"blk.{i}.attn_output.weight"].T
        a = _f16(_rms_norm(x, w[f"blk.{i}.ffn_norm.weight"]))
        act = _silu(a @ w[f"blk.{i}.ffn_gate.weight"].T) * (a @ w[f"blk.{i}.ffn_up.weight"].T)
        x = x + _f16(act) @ w[f"blk.{i}.ffn_down.weight"].T
    return _q8(_rms_norm(x, w["output_norm.weight"]))


def _prompt_tokens(vocab: mb.Vocabulary, words: int) -> list[int]:
    """`tara: there there ... there.` in Orpheus' template, with the BOS llama-server prepends: `words` words."""
    ids = {t: i for i, t in enumerate(vocab.tokens[: mb.BOS_ID])}
    text = ["tar", "a", ":"] + ["Ġthe", "re"] * words + ["."]
    return [mb.BOS_ID, CT + 3, mb.BOS_ID, *(ids[t] for t in text), mb.EOT_ID, CT + 4, CT + 5, CT + 1]


def _speech(frames: int) -> list[int]:
    return [mb.audio_token_id(i % 7, (37 * i) % 4096) for i in range(7 * frames)]


@pytest.fixture(scope="module")
def default_weights() -> dict[str, np.ndarray]:
    return _as_written(mb.build_tensors(mb.TinyModelSpec()))


END = CT + mb.END_OF_SPEECH


def _end_against_audio(w: dict[str, np.ndarray], hidden: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(len(positions), 3): end-of-speech logit, best and 30th best logit of the next frame position's codes.

    `positions[0]` is the start of speech (next: position 0), then one audio token after another.
    """
    out = w["output.weight"]
    rows = []
    for t, next_position in zip(positions, (positions - positions[0]) % 7, strict=True):
        lo = mb.audio_token_id(int(next_position), 0)
        audio = np.sort(out[lo : lo + 4096] @ hidden[t])
        rows.append((out[END] @ hidden[t], audio[-1], audio[-30]))
    return np.array(rows)


@pytest.mark.parametrize(("frames_per_word", "words"), [(4.7, 10), (4.7, 40), (2.0, 12)])
def test_forward_pass_ends_speech_after_frames_per_word(
    vocab: mb.Vocabulary, default_weights: dict[str, np.ndarray], frames_per_word: float, words: int
) -> None:
    """End of speech is out of top-k 30 before ~frames_per_word x words frames and wins after; only at position 6."""
    spec = mb.TinyModelSpec(frames_per_word=frames_per_word)
    w = default_weights if spec == mb.TinyModelSpec() else _as_written(mb.build_tensors(spec))
    prompt = _prompt_tokens(vocab, words)
    target = frames_per_word * words
    frames = int(target * 1.2) + 3
    hidden = _final_hidden(w, spec, prompt + _speech(frames))
    # Positions whose next token is decided: the prompt's last token (start of speech), then every audio token.
    decided = np.arange(len(prompt) - 1, len(hidden))
    logits = _end_against_audio(w, hidden, decided)
    # rows[0] follows <custom_token_1> (next: position 0); row 1 + 7f + p follows frame f's position-p token.
    mid_frame = np.delete(logits, np.arange(7, len(logits), 7), axis=0)
    assert (mid_frame[:, 0] < mid_frame[:, 2] - 10).all(), "end of speech must never compete inside a frame"
    boundary = logits[7::7]  # after the position-6 token of frame 1, 2, ...
    spoken = np.arange(1, frames + 1)
    early, late = spoken <= 0.95 * target - 1, spoken >= 1.05 * target + 1
    assert early.sum() > 5 and late.sum() > 0
    assert (boundary[early, 0] < boundary[early, 2]).all(), "too early: end of speech must not enter the top 30"
    assert (boundary[late, 0] > boundary[late, 1] + 2).all(), "too late: end of speech must win (e^(2/0.3) odds)"
    rising = boundary[np.argmax(boundary[:, 0] > 0) :, 0]
    assert len(rising) > 5 and (np.diff(rising) > 0).all(), "each frame spoken must bring the end closer"


def test_forward_pass_keeps_the_chain_after_the_threshold(
    vocab: mb.Vocabulary, default_weights: dict[str, np.ndarray]
) -> None:
    """Past the threshold, where the extra dimensions are largest, the RMSNorms still leave audio far ahead."""
    spec = mb.TinyModelSpec()
    prompt = _prompt_tokens(vocab, 4)
    frames = int(4.7 * 4 * 2)
    hidden = _final_hidden(default_weights, spec, prompt + _speech(frames))
    audio_start = mb.audio_token_id(0, 0)
    for t in range(len(hidden) - 7, len(hidden)):
        position = (t - len(prompt)) % 7
        logits = default_weights["output.weight"] @ hidden[t]
        logits[END] = -np.inf  # past the threshold end of speech wins at position 6: that is the point
        best = int(np.argmax(logits))
        assert (best - audio_start) // 4096 == (position + 1) % 7
        assert logits[best] - np.sort(logits[:audio_start])[-1] > 15
        assert logits[best] > 20.5  # the best code's logit is ~21 on the bare one-hot: shrunk by under 2.5%


def test_fixed_speech_never_ends(vocab: mb.Vocabulary) -> None:
    spec = mb.TinyModelSpec(speech="fixed")
    w = _as_written(mb.build_tensors(spec))
    prompt = _prompt_tokens(vocab, 3)
    hidden = _final_hidden(w, spec, prompt + _speech(40))
    decided = np.arange(len(prompt) - 1, len(hidden))
    logits = _end_against_audio(w, hidden, decided)
    assert (logits[:, 0] < logits[:, 2] - 10).all()


def test_word_starts_are_the_tokens_after_a_space(vocab: mb.Vocabulary) -> None:
    states = mb.token_states()
    ids = {t: i for i, t in enumerate(vocab.tokens[: mb.BOS_ID])}
    for token in ("Ġ", "Ġa", "ĠHel", "Ġthe", "ĠI"):
        assert states[ids[token]] == mb.STATE_WORD, token
    for token in ("the", "re", ",", ".", "tar", ":", "a"):
        assert states[ids[token]] == mb.STATE_TEXT, token
    assert states[mb.BOS_ID] == states[mb.EOT_ID] == states[CT + 3] == mb.STATE_TEXT


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


def test_make_test_model_command_passes_the_speech_knobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from orpheus_bench.cli import main

    out = tmp_path / "fixed.gguf"
    assert main(["make-test-model", str(out), "--speech", "fixed", "--frames-per-word", "2"]) == 0
    assert str(out) in capsys.readouterr().out
    spec = json.loads(_read_kv(out)["orpheus_bench.spec"])
    assert spec["speech"] == "fixed" and spec["frames_per_word"] == 2.0
    assert main(["make-test-model", str(tmp_path / "bad.gguf"), "--frames-per-word", "0"]) == 2
    assert not (tmp_path / "bad.gguf").exists()
