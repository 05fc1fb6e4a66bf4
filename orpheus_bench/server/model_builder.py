"""A tiny, deterministic Orpheus-format GGUF that a real llama-server serves on a CPU in milliseconds a token.

No Orpheus weights exist on the machines that run our tests, so we write a llama-architecture model whose
vocabulary has Orpheus' exact token-id layout (Llama-3 ids below 128256, `<|begin_of_text|>` = 128000,
`<|eot_id|>` = 128009, `<custom_token_i>` = 128256 + i) and whose weights make it speak valid Orpheus audio
tokens and end the utterance on its own, after about as many frames as Orpheus speaks for the prompt's text.
At heart it is a first-order Markov chain built from a transformer:

* every token belongs to a *state* (its audio frame position 0..6, one of the prompt markers, "text", or "word
  start": a text token whose text begins with a space); its embedding is the one-hot vector of that state;
* every RMSNorm weight is sqrt(1/hidden + eps), so RMSNorm maps a unit vector to itself: the one-hot reaches the
  FFN and the output matrix as a unit one-hot, and the logits of state `s` are column `s` of the output matrix:
  every audio token of frame position (p + 1) mod 7 gets a high logit (20 plus a small fixed jitter, so top-k
  sampling picks varied codes) from state p; `<custom_token_1>` (start of speech) leads into position 0; text
  leads through `<custom_token_4>`, `<custom_token_5>`, `<custom_token_1>`; end of speech (`<custom_token_2>`)
  leads to end of AI (`<custom_token_6>`), and that to `<|eot_id|>` (end of generation);
* except for what ends speech (below), attention and FFN outputs are zero, so the residual stream keeps the
  embedding: `--hidden`, `--layers`, `--ffn` raise the per-token cost (the attention and FFN are still computed,
  with random weights) without changing what the model says.

How it decides to stop. Block 0's first attention head has a zero query, so every score is zero and it attends
uniformly over the n tokens of its causal context. Its values are 1/16 on two channels, one for every non-audio
token and one for every word-start token, and its output projection writes the two averages into two spare
residual dimensions: P/16n and W/16n, with P the non-audio (prompt) tokens and W the word starts. Everything the
model generates after `<custom_token_1>` is audio, so the A = n - P audio tokens satisfy

    z = (A - K*W) / n = 1 - P/n - K*W/n,   K = 7 * frames_per_word,

and z crosses zero when the model has spoken frames_per_word frames per word. FFN neuron 0 (llama's SwiGLU:
silu(gate) * up) turns that into the end-of-speech logit: its gate reads the two shares and the "frame position
6" dimension of the state, so gate = 4 + 8.5*z in state 6, and its up projection reads only that dimension, so
the product is zero in every other state; the output matrix scales it to

    logit(<custom_token_2>) = 5.6 * silu(4 + 8.5*z): 17 at z = -0.1, 21 at -0.02, 22 at 0, 27 at +0.1,

against about 21.0 for the 30 best audio codes of the next frame. Because the neuron only fires in state 6, end of
speech can follow only a position-6 token: utterances are whole frames. With the scenario's sampling
(temperature 0.3, top_k 30, llama-server's default top_p 0.95 and min_p 0.05) the end token enters the top 30 at
z ~ -0.02, wins about half the draws at z = 0 and nearly all at z = +0.02. One frame moves z by 7/n, about 1/F
for an F-frame utterance, so a short prompt's utterance ends within a frame or two of frames_per_word * W and a
long one's within a few percent of it; which frame is decided by the request's `seed` (the same seed repeats).
Other samplers move the stop a little: at temperature 0.3 without top_k the end token has to outweigh all 4096
codes, which takes a logit of about 23, a frame or two later.

What "word" means here. This tokenizer spends about two tokens on an English word (its merges stop at letter
triples: " calling" is "Ġcal" + "lin" + "g"), one on a punctuation mark, and the prompt template adds about seven
more: the BOS llama-server prepends, `<custom_token_3>`, `<|begin_of_text|>`, the voice name ("tar" + "a" + ":")
and `<|eot_id|>`. A threshold on the share of all text tokens would make a two-word prompt speak more than twice
as many frames per word as a sixty-word one. So the model counts word starts: a "word" is a token whose
text begins with a space, which is one per word of `"{voice}: {text}"` after the voice name ("customer-facing"
and "don't" count once; without a voice the text's first word is not counted), plus one for a space before a
digit or a second space. tests/integration/test_tiny_model_speech.py holds every built-in prompt to 4-6 frames
per word on a real llama-server and all of them together to 4.4-5.0 for the default 4.7.

Numerics that matter on the real forward pass. (1) With flash attention and an f16 KV cache, ggml's CPU kernel
accumulates the values in half precision, so a sum of 1/16s is exact only up to 2048 terms: the head therefore
counts prompt tokens (audio tokens carry value 0 and add nothing), which keeps its sums exact for any prompt of up
to 2048 tokens. (2) llama.cpp quantizes the input of the Q8_0 output matrix to Q8_0, one scale per 32 values: in
the block of the unit one-hot, a small value is rounded to steps of 1/127, which would move the end logit in
steps of 5.6. The FFN writes its output alone into dimension 32, the first of the second block, so it keeps f16
precision (hence hidden >= 64). (3) The three extra dimensions lengthen the residual vector by at most 0.5%, so
the RMSNorms shrink the audio logits by as much: the chain's codes stay in range and in position order.

`TinyModelSpec(speech="fixed")` builds the same network with the neuron's down projection zeroed: end of speech
is never chosen, so generation lasts exactly `n_predict` tokens (or until the slot's context is full), which
tests that count tokens need. The vocabulary is byte-level BPE ("llama-bpe" pre-tokenizer) with merges for letter
pairs and triples, so an English prompt costs roughly two tokens per word: more than Llama-3's real merges, far
less than one per byte.

Why one module over 400 lines: the vocabulary, the state layout and the weights that realise the Markov chain
depend on each other index by index; split, a change to one would silently break the others.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

# Bump when the file produced for the same knobs changes; it is part of the cache key.
BUILDER_VERSION = 2

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

# States (dimensions 0..N_STATES-1 of the residual stream: the one-hot embedding).
STATE_TEXT = FRAME_POSITIONS  # 7
STATE_SPEECH = 8  # after <custom_token_1>
STATE_START_AI = 9  # after <custom_token_5>
STATE_END_HUMAN = 10  # after <custom_token_4>
STATE_END_SPEECH = 11  # after <custom_token_2>
STATE_END_AI = 12  # after <custom_token_6>
STATE_WORD = 13  # a text token whose text begins with a space: what the model counts as a word
N_STATES = 14

# Spare residual dimensions written by the end-of-speech mechanism (see the module docstring).
DIM_PROMPT_SHARE = N_STATES  # attention: SHARE_VALUE * (non-audio tokens) / n
DIM_WORD_SHARE = N_STATES + 1  # attention: SHARE_VALUE * (word starts) / n
QUANT_BLOCK = 32
DIM_END = QUANT_BLOCK  # FFN neuron 0, alone in its Q8_0 block of the output matmul's input
HEAD_DIM = 64  # like most real models; hidden is a whole number of heads, so at least two Q8_0 blocks

TARGET_LOGIT = 20.0  # margin over every other token: e^(20/0.3) makes the chain effectively deterministic
AUDIO_JITTER = 1.0  # audio logits get U[0, 1) on top, so top-k keeps a spread of codes, not the lowest ids
RMS_EPS = 1e-5

SHARE_VALUE = 1.0 / 16  # a power of two: f16 sums of it are exact up to 2048 terms
END_GATE_OFFSET = 4.0  # gate = 4 + slope * z: silu is nearly linear there and near zero 0.5 below
END_LOGIT_AT_THRESHOLD = 22.0  # wins about half the draws against ~30 audio codes at 21 (temperature 0.3)
END_LOGIT_SLOPE = 50.0  # end logit per unit of z around z = 0
END_DOWN_SCALE = 1.0 / 128  # keeps the end dimension small next to the unit one-hot: RMSNorm divides by both
DEFAULT_FRAMES_PER_WORD = 4.7  # Orpheus: ~2.5 words/s at ~11.7 frames/s (24 kHz / 2048 samples a frame)
MAX_FRAMES_PER_WORD = 50.0  # the word-share gate weight stays inside f16's range

SpeechMode = Literal["ends", "fixed"]

_SPEECH_MODES: tuple[SpeechMode, ...] = ("ends", "fixed")


def _silu(x: float) -> float:
    return x / (1.0 + math.exp(-x))


def _silu_slope(x: float) -> float:
    s = 1.0 / (1.0 + math.exp(-x))
    return s * (1.0 + x * (1.0 - s))


# logit(end) = END_OUT_SCALE * silu(END_GATE_OFFSET + END_GATE_SLOPE * z): END_LOGIT_AT_THRESHOLD at z = 0,
# rising END_LOGIT_SLOPE per unit of z there.
END_OUT_SCALE = END_LOGIT_AT_THRESHOLD / _silu(END_GATE_OFFSET)
END_GATE_SLOPE = END_LOGIT_SLOPE / (END_OUT_SCALE * _silu_slope(END_GATE_OFFSET))


def custom_token_id(n: int) -> int:
    """Token id of `<custom_token_n>` in Orpheus' vocabulary."""
    return CUSTOM_TOKEN_BASE + n


def audio_token_id(position: int, code: int) -> int:
    """Token id of audio code `code` at frame position `position` (0..6)."""
    return custom_token_id(N_SPECIAL_CUSTOM + position * CODEBOOK_SIZE + code)


@dataclass(frozen=True, slots=True)
class TinyModelSpec:
    """The knobs of the test model. Per-token cost grows with hidden x (vocab + layers x (hidden + 3 ffn)).

    `speech` is "ends" (the model ends speech after about `frames_per_word` frames per word of the prompt) or
    "fixed" (it never ends speech: a request lasts exactly `n_predict` tokens or until its slot is full).
    """

    hidden: int = 64
    layers: int = 1
    ffn: int = 128
    context_length: int = 8192
    seed: int = 0
    speech: SpeechMode = "ends"
    frames_per_word: float = DEFAULT_FRAMES_PER_WORD

    def __post_init__(self) -> None:
        if self.hidden < HEAD_DIM or self.hidden % HEAD_DIM:
            raise ValueError(f"hidden must be a multiple of {HEAD_DIM} (one attention head each), got {self.hidden}")
        if self.layers < 1 or self.ffn < 1 or self.context_length < 256:
            raise ValueError("layers and ffn must be >= 1 and context_length >= 256")
        if self.speech not in _SPEECH_MODES:
            raise ValueError(f"speech must be one of {', '.join(_SPEECH_MODES)}, got {self.speech!r}")
        if not 0 < self.frames_per_word <= MAX_FRAMES_PER_WORD:
            raise ValueError(f"frames_per_word must be in (0, {MAX_FRAMES_PER_WORD:g}], got {self.frames_per_word}")

    @property
    def head_dim(self) -> int:
        """Attention head size."""
        return HEAD_DIM

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
        speech = f"ends{self.frames_per_word:g}" if self.speech == "ends" else "fixed"
        return f"orpheus-tiny-{knobs}-{speech}-{self.cache_key()}.gguf"


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


@functools.cache
def _word_start_ids() -> np.ndarray:
    """Ids of the text tokens whose text begins with a space ("Ġ"): one per word of English text."""
    space = _bytes_to_unicode()[ord(" ")]
    ids = [i for i, text in enumerate(build_vocabulary().tokens[:BOS_ID]) if text.startswith(space)]
    out = np.array(ids, dtype=np.int64)
    out.flags.writeable = False
    return out


def token_states() -> np.ndarray:
    """The state of every token id: what the model 'knows' after reading it."""
    states = np.full(N_VOCAB, STATE_TEXT, dtype=np.int64)
    states[_word_start_ids()] = STATE_WORD
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
    """(N_STATES, N_VOCAB) float32: the logits each state's one-hot produces (the output matrix, transposed).

    End of speech is not among them: its logit comes from the FFN's end dimension (`build_tensors`).
    """
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
    logits[STATE_WORD, custom_token_id(END_OF_HUMAN)] = TARGET_LOGIT
    logits[STATE_END_HUMAN, custom_token_id(START_OF_AI)] = TARGET_LOGIT
    logits[STATE_START_AI, custom_token_id(START_OF_SPEECH)] = TARGET_LOGIT
    logits[STATE_END_SPEECH, custom_token_id(END_OF_AI)] = TARGET_LOGIT
    logits[STATE_END_AI, EOT_ID] = TARGET_LOGIT
    return logits


def _add_speech_counter(q: np.ndarray, v: np.ndarray, o: np.ndarray, head_dim: int) -> None:
    """Head 0 of block 0: uniform attention whose output is the prompt share and the word share, / 16."""
    q[:head_dim] = 0.0  # zero query: every score is 0, softmax is uniform over the causal context
    v[:head_dim] = 0.0
    v[0, FRAME_POSITIONS:N_STATES] = SHARE_VALUE  # every non-audio state
    v[1, STATE_WORD] = SHARE_VALUE
    o[DIM_PROMPT_SHARE, 0] = 1.0
    o[DIM_WORD_SHARE, 1] = 1.0


def _add_end_neuron(spec: TinyModelSpec, gate: np.ndarray, up: np.ndarray, down: np.ndarray) -> None:
    """FFN neuron 0 of block 0: silu(offset + slope * z) in frame position 6, zero in every other state."""
    last_position = FRAME_POSITIONS - 1
    audio_per_word = FRAME_POSITIONS * spec.frames_per_word
    gate[0] = 0.0
    up[0] = 0.0
    # gate = (offset + slope) * [state 6] - slope * P/n - slope * K * W/n = offset + slope * z in state 6.
    gate[0, last_position] = END_GATE_OFFSET + END_GATE_SLOPE
    gate[0, DIM_PROMPT_SHARE] = -END_GATE_SLOPE / SHARE_VALUE
    gate[0, DIM_WORD_SHARE] = -END_GATE_SLOPE * audio_per_word / SHARE_VALUE
    up[0, last_position] = 1.0
    if spec.speech == "ends":
        down[DIM_END, 0] = END_DOWN_SCALE


def build_tensors(spec: TinyModelSpec) -> dict[str, np.ndarray]:
    """All float32 tensors of the model, numpy-shaped (rows = output features), keyed by GGUF tensor name."""
    rng = np.random.default_rng(spec.seed + 1)
    h, f = spec.hidden, spec.ffn
    # RMSNorm(x) = x / sqrt(mean(x^2) + eps): this weight undoes it for a unit vector, so a one-hot stays one.
    unit_norm = np.full(h, math.sqrt(1.0 / h + RMS_EPS), dtype=np.float32)
    embd = np.zeros((N_VOCAB, h), dtype=np.float32)
    embd[np.arange(N_VOCAB), token_states()] = 1.0
    output = np.zeros((N_VOCAB, h), dtype=np.float32)
    output[:, :N_STATES] = next_token_logits(spec.seed).T
    output[custom_token_id(END_OF_SPEECH), DIM_END] = END_OUT_SCALE / END_DOWN_SCALE
    tensors = {
        "token_embd.weight": embd,
        "output_norm.weight": unit_norm,
        "output.weight": output,
    }
    scale = 1.0 / np.sqrt(h)
    for i in range(spec.layers):
        q, k, v = ((rng.standard_normal((h, h)) * scale).astype(np.float32) for _ in range(3))
        o = np.zeros((h, h), dtype=np.float32)
        gate = (rng.standard_normal((f, h)) * scale).astype(np.float32)
        up = (rng.standard_normal((f, h)) * scale).astype(np.float32)
        down = np.zeros((h, f), dtype=np.float32)
        if i == 0:
            _add_speech_counter(q, v, o, spec.head_dim)
            _add_end_neuron(spec, gate, up, down)
        tensors[f"blk.{i}.attn_norm.weight"] = unit_norm
        tensors[f"blk.{i}.attn_q.weight"] = q
        tensors[f"blk.{i}.attn_k.weight"] = k
        tensors[f"blk.{i}.attn_v.weight"] = v
        tensors[f"blk.{i}.attn_output.weight"] = o
        tensors[f"blk.{i}.ffn_norm.weight"] = unit_norm
        tensors[f"blk.{i}.ffn_gate.weight"] = gate
        tensors[f"blk.{i}.ffn_up.weight"] = up
        tensors[f"blk.{i}.ffn_down.weight"] = down
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
        w.add_layer_norm_rms_eps(RMS_EPS)
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


def cached_test_model(spec: TinyModelSpec | None = None) -> Path:
    """The model for `spec` (default: `TinyModelSpec()`, which ends speech), built on first use, then cached."""
    spec = spec or TinyModelSpec()
    path = cache_dir() / "models" / spec.file_name()
    if not path.exists():
        write_test_model(path, spec)
    return path
