"""A Hugging Face tokenizer directory that counts tokens the way a GGUF model's own vocabulary does (offline).

AIPerf counts input and output tokens with a Hugging Face tokenizer, and the one it would fetch by default
needs the network. `benchmarks/peer_check.py` therefore runs this script, with the Python of the AIPerf
virtualenv (which has `tokenizers`, `transformers` and `gguf`, and not orpheus-bench), to turn the vocabulary
stored in the served GGUF file (``tokenizer.ggml.*``: token texts, types and BPE merges) into a
``PreTrainedTokenizerFast`` saved with ``save_pretrained``:

* a byte-level BPE over the file's tokens and merges, with Llama-3's pre-tokenizer split (the file says
  ``llama-bpe``) and ``ignore_merges`` as llama.cpp sets it for that pre-tokenizer;
* every control token (``<|begin_of_text|>``...) and user-defined token (Orpheus' ``<custom_token_N>``) as an
  added token, so text holding them splits on them as llama-server does with ``parse_special``;
* a BOS post-processor for ``add_special_tokens=True``, because the file says ``add_bos_token``. AIPerf encodes
  with ``add_special_tokens=False``, so its prompt counts are one lower than llama-server's ``prompt_n``.

Usage: ``.venv/peer/bin/python benchmarks/peer_tokenizer.py MODEL.gguf OUT_DIR``; prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

# Llama-3's pre-tokenizer split (llama.cpp's LLAMA_VOCAB_PRE_TYPE_LLAMA3 regex, as in its tokenizer.json).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
CONTROL, USER_DEFINED = 3, 4  # gguf TokenType values
HELPER_VERSION = 1  # bump when the directory written for the same model changes


def _strings(reader: object, key: str) -> list[str]:
    field = reader.fields[key]  # type: ignore[attr-defined]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def _ints(reader: object, key: str) -> list[int]:
    field = reader.fields[key]  # type: ignore[attr-defined]
    return [int(field.parts[i][0]) for i in field.data]


def _scalar(reader: object, key: str, default: object = None) -> object:
    field = reader.fields.get(key)  # type: ignore[attr-defined]
    if field is None:
        return default
    value = field.parts[field.data[0]]
    if len(field.types) == 1 and field.types[0].name == "STRING":
        return bytes(value).decode("utf-8")
    return value[0].item() if hasattr(value[0], "item") else value[0]


def build(model: Path, out: Path) -> dict[str, object]:
    """Write the tokenizer directory for `model` into `out`; return what was built."""
    import gguf
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    t0 = time.perf_counter()
    reader = gguf.GGUFReader(str(model))
    kind = _scalar(reader, "tokenizer.ggml.model")
    pre = _scalar(reader, "tokenizer.ggml.pre")
    if kind != "gpt2":
        raise SystemExit(f"peer_tokenizer: {model} has a {kind!r} tokenizer; only byte-level BPE (gpt2) is handled")
    tokens = _strings(reader, "tokenizer.ggml.tokens")
    types = _ints(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in _strings(reader, "tokenizer.ggml.merges")]
    bos_id = int(_scalar(reader, "tokenizer.ggml.bos_token_id"))  # type: ignore[arg-type]
    eos_id = int(_scalar(reader, "tokenizer.ggml.eos_token_id"))  # type: ignore[arg-type]
    add_bos = bool(_scalar(reader, "tokenizer.ggml.add_bos_token", False))

    vocab = {text: i for i, text in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=merges, ignore_merges=(pre == "llama-bpe"), byte_fallback=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    added = [
        AddedToken(text, special=(kind_ == CONTROL), normalized=False)
        for text, kind_ in zip(tokens, types, strict=True)
        if kind_ in (CONTROL, USER_DEFINED)
    ]
    tok.add_tokens(added)
    bos = tokens[bos_id]
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=tokens[eos_id])
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    info = {
        "model": str(model),
        "dir": str(out),
        "helper_version": HELPER_VERSION,
        "vocab": len(tokens),
        "merges": len(merges),
        "added_tokens": len(added),
        "pre_tokenizer": pre,
        "add_bos": add_bos,
        "build_s": round(time.perf_counter() - t0, 2),
    }
    (out / "peer_tokenizer.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return info


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(build(Path(argv[0]), Path(argv[1]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
