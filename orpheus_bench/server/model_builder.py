"""A tiny, deterministic Orpheus-format GGUF that a real llama-server serves on a CPU in milliseconds a token.

No Orpheus weights exist on the machines that run our tests, so we write a llama-architecture model whose
vocabulary has Orpheus' exact token-id layout (Llama-3 ids below 128256, `<|begin_of_text|>` = 128000,
`<|eot_id|>` = 128009, `<custom_token_i>` = 128256 + i) and whose weights make it speak valid Orpheus audio
tokens. It is a first-order Markov chain built from a transformer:

* every token belongs to a *state* (its audio frame position 0..6, or one of the prompt markers, or "text");
  its embedding is the one-hot vector of that state;
* each block has zero attention-output and zero FFN-down weights, so the residual stream still holds the
  embedding after every block (the attention and FFN are still computed: `--hidden`, `--layers`, `--ffn` raise
  the per-token cost without changing what the model says);
* the output norm turns the RMS-normalised one-hot back into a unit one-hot, so the logits of state `s` are
  column `s` of the output matrix: every audio token of frame position (p + 1) mod 7 gets a high logit (plus a
  small fixed jitter, so top-k sampling picks varied codes) from state p; `<custom_token_1>` (start of speech)
  leads into position 0; text leads through `<custom_token_4>`, `<custom_token_5>`, `<custom_token_1>`.

End of speech (`<custom_token_2>`) is never chosen, so generation lasts exactly `n_predict` tokens (or until
the slot's context is full): request length is set by the client, which keeps benchmark runs repeatable.
The vocabulary is byte-level BPE ("llama-bpe" pre-tokenizer) with merges for letter pairs and triples, so an
English prompt costs roughly two tokens per word: more than Llama-3's real merges, far less than one per byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# Bump when the file produced for the same knobs changes; it is part of the cache key.
BUILDER_VERSION = 1

LLAMA3_VOCAB = 128_256
BOS_ID = 128_000
EOT_ID = 128_009
CUSTOM_TOKEN_BASE = LLAMA3_VOCAB
N_SPECIAL_CUSTOM = 10  # <custom_token_0..9>: markers, not audio
FRAME_POSITIONS = 7
CODEBOOK_SIZE = 4096
N_CUSTOM = N_SPECIAL_CUSTOM + FRAME_POSITIONS * CODEBOOK_SIZE
N_VOCAB = LLAMA3_VOCAB + N_CUSTOM

# Orpheus' markers, as custom-token numbers.
START_OF_SPEECH = 1
END_OF_SPEECH = 2
START_OF_HUMAN = 3
END_OF_HUMAN = 4
START_OF_AI = 5
END_OF_AI = 6

# States (dimensions of the residual stream that carry meaning).
STATE_TEXT = FRAME_POSITIONS  # 7
STATE_SPEECH = 8  # after <custom_token_1>
STATE_START_AI = 9  # after <custom_token_5>
STATE_END_HUMAN = 10  # after <custom_token_4>
STATE_END_SPEECH = 11  # after <custom_token_2>
STATE_END_AI = 12  # after <custom_token_6>
N_STATES = 13

TARGET_LOGIT = 20.0  # margin over every other token: e^(20/0.3) makes the chain effectively deterministic
AUDIO_JITTER = 1.0  # audio logits get U[0, 1) on top, so top-k keeps a spread of codes, not the lowest ids
QUANT_BLOCK = 32


def custom_token_id(n: int) -> int:
    """Token id of `<custom_token_n>` in Orpheus' vocabulary."""
    return CUSTOM_TOKEN_BASE + n


def audio_token_id(position: int, code: int) -> int:
    """Token id of audio code `code` at frame position `position` (0..6)."""
    return custom_token_id(N_SPECIAL_CUSTOM + position * CODEBOOK_SIZE + code)


@dataclass(frozen=True, slots=True)
class TinyModelSpec:
    """The knobs of the test model. Per-token cost grows with hidden x (vocab + layers x (hidden + 3 ffn))."""

    hidden: int = 64
    layers: int = 1
    ffn: int = 128
    context_length: int = 8192
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden < N_STATES or self.hidden % QUANT_BLOCK:
            raise ValueError(f"hidden must be a multiple of {QUANT_BLOCK} and >= {N_STATES}, got {self.hidden}")
        if self.layers < 1 or self.ffn < 1 or self.context_length < 256:
            raise ValueError("layers and ffn must be >= 1 and context_length >= 256")

    @property
    def head_dim(self) -> int:
        """Attention head size: 64 like most real models, or the whole width when smaller."""
        return min(64, self.hidden)

    @property
    def heads(self) -> int:
        """Number of attention heads (and of KV heads: no grouped-query attention)."""
        return self.hidden // self.head_dim

    def cache_key(self) -> str:
        """A short stable hash of the knobs and the builder version."""
        blob = json.dumps({"v": BUILDER_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def file_name(self) -> str:
        """The cache file name: readable knobs plus the hash."""
        knobs = f"h{self.hidden}-l{self.layers}-f{self.ffn}-c{self.context_length}"
        return f"orpheus-tiny-{knobs}-{self.cache_key()}.gguf"


# ---- vocabulary ------------------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def _llama3_special_names() -> list[str]:
    """The 256 names Llama-3.1 gives ids 128000..128255."""
    named = {
        0: "<|begin_of_text|>",
        1: "<|end_of_text|>",
        4: "<|finetune_right_pad_id|>",
        6: "<|start_header_id|>",
        7: "<|end_header_id|>",
        8: "<|eom_id|>",
        9: "<|eot_id|>",
        10: "<|python_tag|>",
    }
    out: list[str] = []
    reserved = 0
    for i in range(256):
        if i in named:
            out.append(named[i])
        else:
            out.append(f"<|reserved_special_token_{reserved}|>")
            reserved += 1
    return out


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Token texts and types (gguf TokenType values) for ids 0..N_VOCAB-1 and the BPE merges in rank order."""

    tokens: list[str]
    types: list[int]
    merges: list[str]


def _merge_plan() -> Iterator[tuple[str, str]]:
    """Merges in rank order: word starts first (words grow from the left), then inner pairs, then triples."""
    space = _bytes_to_unicode()[ord(" ")]  # "Ġ"
    lower = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    letters = lower + [c.upper() for c in lower]
    for x in letters:
        yield space, x
    for x in letters:
        for y in lower:
            yield space + x, y
    for x in letters:
        for y in lower:
            for z in lower:
                yield space + x + y, z
    for x in letters:
        for y in lower:
            yield x, y
    for x in letters:
        for y in lower:
            for z in lower:
                yield x + y, z


def build_vocabulary() -> Vocabulary:
    """Orpheus' id layout over a small byte-level BPE: bytes, letter n-grams, filler, specials, custom."""
    from gguf import TokenType

    tokens: list[str] = []
    seen: set[str] = set()
    for b in range(256):
        tokens.append(_bytes_to_unicode()[b])
    seen.update(tokens)
    merges: list[str] = []
    for left, right in _merge_plan():
        merged = left + right
        merges.append(f"{left} {right}")
        if merged not in seen:
            seen.add(merged)
            tokens.append(merged)
    n_normal = len(tokens)
    # Ids nobody's text reaches: keeps 128000+ where Llama-3 has them.
    tokens.extend(f"<orpheus_bench_filler_{i}>" for i in range(n_normal, BOS_ID))
    types = [int(TokenType.NORMAL)] * BOS_ID
    tokens.extend(_llama3_special_names())
    types.extend([int(TokenType.CONTROL)] * 256)
    tokens.extend(f"<custom_token_{i}>" for i in range(N_CUSTOM))
    types.extend([int(TokenType.USER_DEFINED)] * N_CUSTOM)
    assert len(tokens) == N_VOCAB == len(types)
    return Vocabulary(tokens=tokens, types=types, merges=merges)


# ---- weights ---------------------------------------------------------------------------------------------


def token_states() -> np.ndarray:
    """The state of every token id: what the model 'knows' after reading it."""
    states = np.full(N_VOCAB, STATE_TEXT, dtype=np.int64)
    audio_start = custom_token_id(N_SPECIAL_CUSTOM)
    for p in range(FRAME_POSITIONS):
        lo = audio_start + p * CODEBOOK_SIZE
        states[lo : lo + CODEBOOK_SIZE] = p
    states[custom_token_id(START_OF_SPEECH)] = STATE_SPEECH
    states[custom_token_id(START_OF_AI)] = STATE_START_AI
    states[custom_token_id(END_OF_HUMAN)] = STATE_END_HUMAN
    states[custom_token_id(END_OF_SPEECH)] = STATE_END_SPEECH
    states[custom_token_id(END_OF_AI)] = STATE_END_AI
    return states


def next_token_logits(seed: int = 0) -> np.ndarray:
    """(N_STATES, N_VOCAB) float32: the logits each state produces (the output matrix, transposed)."""
    rng = np.random.default_rng(seed)
    logits = np.zeros((N_STATES, N_VOCAB), dtype=np.float32)
    audio_start = custom_token_id(N_SPECIAL_CUSTOM)
    jitter = rng.random((FRAME_POSITIONS, CODEBOOK_SIZE), dtype=np.float32) * AUDIO_JITTER
    for p in range(FRAME_POSITIONS):
        q = (p + 1) % FRAME_POSITIONS
        lo = audio_start + q * CODEBOOK_SIZE
        logits[p, lo : lo + CODEBOOK_SIZE] = TARGET_LOGIT + jitter[q]
    lo = audio_start
    logits[STATE_SPEECH, lo : lo + CODEBOOK_SIZE] = TARGET_LOGIT + jitter[0]
    logits[STATE_TEXT, custom_token_id(END_OF_HUMAN)] = TARGET_LOGIT
    logits[STATE_END_HUMAN, custom_token_id(START_OF_AI)] = TARGET_LOGIT
    logits[STATE_START_AI, custom_token_id(START_OF_SPEECH)] = TARGET_LOGIT
    logits[STATE_END_SPEECH, custom_token_id(END_OF_AI)] = TARGET_LOGIT
    logits[STATE_END_AI, EOT_ID] = TARGET_LOGIT
    return logits


def build_tensors(spec: TinyModelSpec) -> dict[str, np.ndarray]:
    """All float32 tensors of the model, numpy-shaped (rows = output features), keyed by GGUF tensor name."""
    rng = np.random.default_rng(spec.seed + 1)
    h, f = spec.hidden, spec.ffn
    embd = np.zeros((N_VOCAB, h), dtype=np.float32)
    embd[np.arange(N_VOCAB), token_states()] = 1.0
    output = np.zeros((N_VOCAB, h), dtype=np.float32)
    output[:, :N_STATES] = next_token_logits(spec.seed).T
    tensors = {
        "token_embd.weight": embd,
        # RMSNorm of a unit one-hot is sqrt(h) at its dimension; scale it back to 1 so logits = output[:, s].
        "output_norm.weight": np.full(h, 1.0 / np.sqrt(h), dtype=np.float32),
        "output.weight": output,
    }
    scale = 1.0 / np.sqrt(h)
    for i in range(spec.layers):
        tensors[f"blk.{i}.attn_norm.weight"] = np.ones(h, dtype=np.float32)
        for name in ("attn_q", "attn_k", "attn_v"):
            tensors[f"blk.{i}.{name}.weight"] = (rng.standard_normal((h, h)) * scale).astype(np.float32)
        tensors[f"blk.{i}.attn_output.weight"] = np.zeros((h, h), dtype=np.float32)
        tensors[f"blk.{i}.ffn_norm.weight"] = np.ones(h, dtype=np.float32)
        tensors[f"blk.{i}.ffn_gate.weight"] = (rng.standard_normal((f, h)) * scale).astype(np.float32)
        tensors[f"blk.{i}.ffn_up.weight"] = (rng.standard_normal((f, h)) * scale).astype(np.float32)
        tensors[f"blk.{i}.ffn_down.weight"] = np.zeros((h, f), dtype=np.float32)
    return tensors


# ---- writing ---------------------------------------------------------------------------------------------


def write_test_model(path: str | os.PathLike[str], spec: TinyModelSpec | None = None) -> Path:
    """Write the model to `path` (atomically: a temporary file renamed into place) and return the path."""
    import gguf

    spec = spec or TinyModelSpec()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    vocab = build_vocabulary()
    fd, tmp_name = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        w = gguf.GGUFWriter(tmp_name, "llama")
        w.add_name("orpheus-bench tiny test model")
        w.add_string("orpheus_bench.builder", f"orpheus-bench model_builder v{BUILDER_VERSION}")
        w.add_string("orpheus_bench.spec", json.dumps(asdict(spec), sort_keys=True))
        w.add_context_length(spec.context_length)
        w.add_embedding_length(spec.hidden)
        w.add_block_count(spec.layers)
        w.add_feed_forward_length(spec.ffn)
        w.add_head_count(spec.heads)
        w.add_head_count_kv(spec.heads)
        w.add_rope_dimension_count(spec.head_dim)
        w.add_rope_freq_base(500_000.0)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_vocab_size(N_VOCAB)
        w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("llama-bpe")
        w.add_token_list(vocab.tokens)
        w.add_token_types(vocab.types)
        w.add_token_merges(vocab.merges)
        w.add_bos_token_id(BOS_ID)
        w.add_eos_token_id(EOT_ID)
        w.add_add_bos_token(True)
        for name, data in build_tensors(spec).items():
            if data.ndim == 1:
                w.add_tensor(name, data)
            elif name in ("token_embd.weight", "output.weight"):
                # The two vocabulary matrices are most of the file; Q8_0 stores their values exactly enough.
                q = gguf.GGMLQuantizationType.Q8_0
                w.add_tensor(name, gguf.quants.quantize(data, q), raw_dtype=q)
            else:
                w.add_tensor(name, data.astype(np.float16))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(tmp_name, out)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return out


def cache_dir() -> Path:
    """`$ORPHEUS_BENCH_CACHE`, else `~/.cache/orpheus-bench`."""
    env = os.environ.get("ORPHEUS_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "orpheus-bench"


def cached_test_model(**knobs: int) -> Path:
    """The model for these knobs (see `TinyModelSpec`), built on first use and reused from the cache after."""
    spec = TinyModelSpec(**knobs)
    path = cache_dir() / "models" / spec.file_name()
    if not path.exists():
        write_test_model(path, spec)
    return path
