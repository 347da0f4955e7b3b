"""The tokenizer stage: corpus in, a saved tokenizer out.

In: ``runs/<run>/data/train.jsonl`` and ``heldout.jsonl``, the clean corpus (or any UTF-8 text files).
Out: ``runs/<run>/tokenizer/``: ``bpe.json`` (the from-scratch tokenizer) and, beside it, the same
merges as a Hugging Face tokenizer folder (``tokenizer.json``, ``tokenizer_config.json``, with the
ChatML chat template), loadable with ``AutoTokenizer.from_pretrained``.

The from-scratch trainer is the one that learns the merges; the Hugging Face copy is built from
those merges, so both encode every text to the same ids (checked here on the held-out documents).
"""

from __future__ import annotations

import time
from pathlib import Path

from llmkb.stages import RunDir, Stage, register
from llmkb.tokenizer.bpe import BPETokenizer
from llmkb.tokenizer.config import TokenizerConfig


def read_text_files(paths: list[str | Path]) -> list[str]:
    """Read UTF-8 text files; a file that is not UTF-8 raises an error naming it and the bad byte."""
    texts = []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        data = path.read_bytes()
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(
                f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                "convert it first, e.g. iconv -f latin1 -t utf-8"
            ) from e
    return texts


def training_texts(config: TokenizerConfig, run_dir: RunDir) -> tuple[list[str], list[str]]:
    """(train texts, held-out texts) from the config's files or the run's clean corpus."""
    if config.inputs:
        texts = read_text_files(config.inputs)
        return texts, texts[-1:]
    from llmkb.corpus import load_split

    corpus = run_dir.require("data")
    train, budget = [], config.max_train_bytes
    for doc in load_split(corpus, "train"):
        if budget <= 0:
            break
        train.append(doc["text"])
        budget -= len(doc["text"].encode("utf-8"))
    heldout = [doc["text"] for doc in load_split(corpus, "heldout")]
    return train, heldout


def run(config: TokenizerConfig, run_dir: RunDir) -> dict:
    from llmkb.tokenizer.hf import to_hf_tokenizer, to_pretrained

    out = run_dir.stage("tokenizer")
    train, heldout = training_texts(config, run_dir)
    t0 = time.perf_counter()
    bpe = BPETokenizer.train(train, config.vocab_size, special_tokens=config.special_tokens, progress=True)
    train_s = time.perf_counter() - t0
    bpe.save(out / "bpe.json")
    hf = to_pretrained(to_hf_tokenizer(bpe), model_max_length=config.model_max_length)
    hf.save_pretrained(out)

    # The two encoders must agree, and decoding must give back every held-out byte.
    heldout_bytes = sum(len(t.encode("utf-8")) for t in heldout)
    ids = [bpe.encode(t) for t in heldout]
    roundtrip = all(bpe.decode(i) == t for i, t in zip(ids, heldout))
    agree = all(hf(t, add_special_tokens=False, verbose=False)["input_ids"] == i for i, t in zip(ids, heldout))
    if not (roundtrip and agree):
        raise RuntimeError(f"{out}: tokenizer check failed (round trip ok: {roundtrip}, HF ids equal: {agree})")
    return {
        "vocab_size": bpe.vocab_size,
        "train_megabytes": round(sum(len(t.encode("utf-8")) for t in train) / 1e6, 2),
        "train_s": round(train_s, 2),
        "heldout_bytes_per_token": round(heldout_bytes / max(1, sum(map(len, ids))), 3),
        "roundtrip_ok": roundtrip,
        "hf_ids_equal": agree,
    }


register(
    Stage(
        name="tokenizer",
        summary="train a byte-level BPE tokenizer with chat tokens; save it in Hugging Face format",
        config_cls=TokenizerConfig,
        run=run,
        needs=("data",),
        profiles={"quick": {"vocab_size": 1024, "max_train_bytes": 600_000}, "default": {}},
    )
)
