"""How fast is the from-scratch tokenizer next to Hugging Face `tokenizers` and tiktoken?

In: a list of training texts and a vocabulary size. Out: a dict of timings, all measured in one
process on the same texts:

* training seconds for our BPE and for HF's BPE trainer (same pre-split regex, same vocab size),
  HF both on one thread and with its default thread pool, and the ratio ours / HF;
* encoding throughput in MB of UTF-8 text per second for ours (chunk cache warm, and on the first
  pass), HF and tiktoken (the last two running our merges, exported with :mod:`llmkb.tokenizer.hf`).

:func:`to_markdown` turns the result into the table on the tokenization page.

Run it on the embedded corpus (about 10 MB) with::

    OMP_NUM_THREADS=1 llmkb bench tokenizer --megabytes 10 --vocab-size 4096 --repeat 2 --out bench.json
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from llmkb.tokenizer.bpe import BPETokenizer
from llmkb.tokenizer.hf import hf_threads, to_hf_tokenizer, to_tiktoken, train_hf_bpe


def best_time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """The fastest of ``repeat`` runs (the least disturbed by other work on the machine) and its result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run_benchmark(texts: list[str], vocab_size: int = 4096, repeat: int = 1) -> dict:
    """Train and encode with all three implementations; return seconds, ratios and MB/s.

    ``train_ratio`` divides our training time by HF's on one thread: ours is pure Python on one
    core, so that is the like-for-like comparison. ``train_ratio_vs_hf_default`` uses HF with its
    default thread pool (all cores).
    """
    texts = list(texts)
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    if megabytes == 0:
        raise ValueError("run_benchmark needs some text: the texts are empty")

    ours_train, bpe = best_time(lambda: BPETokenizer.train(texts, vocab_size), repeat)
    with hf_threads(False):
        hf_train_1, _ = best_time(lambda: train_hf_bpe(texts, vocab_size), repeat)
    with hf_threads(True):
        hf_train_default, _ = best_time(lambda: train_hf_bpe(texts, vocab_size), repeat)

    # Encoding: every implementation runs *our* merges, so all produce the same ids.
    hf_tok = to_hf_tokenizer(bpe)
    tik = to_tiktoken(bpe)
    bpe._cache.clear()
    ours_cold, _ = best_time(lambda: [bpe.encode_ordinary(t) for t in texts], 1)  # fills the cache
    ours_warm, _ = best_time(lambda: [bpe.encode_ordinary(t) for t in texts], repeat)
    # encode_batch_fast (tokenizers >= 0.20) skips the character offsets, which neither ours nor
    # tiktoken computes; older versions only have encode_batch.
    hf_encode = getattr(hf_tok, "encode_batch_fast", hf_tok.encode_batch)
    with hf_threads(False):
        hf_enc_1, _ = best_time(lambda: hf_encode(texts, add_special_tokens=False), repeat)
    with hf_threads(True):
        hf_enc_default, _ = best_time(lambda: hf_encode(texts, add_special_tokens=False), repeat)
    tik_enc, _ = best_time(lambda: [tik.encode_ordinary(t) for t in texts], repeat)

    return {
        "corpus_mb": round(megabytes, 3),
        "vocab_size": bpe.vocab_size,
        "cpu_count": os.cpu_count(),
        "train_s": {
            "llmkb": round(ours_train, 3),
            "hf_1_thread": round(hf_train_1, 3),
            "hf_default": round(hf_train_default, 3),
        },
        "train_ratio": round(ours_train / hf_train_1, 3),
        "train_ratio_vs_hf_default": round(ours_train / hf_train_default, 3),
        "encode_mb_s": {
            "llmkb": round(megabytes / ours_warm, 3),  # chunk cache warm: the steady state
            "llmkb_cold": round(megabytes / ours_cold, 3),  # every chunk seen for the first time
            "hf_1_thread": round(megabytes / hf_enc_1, 3),
            "hf_default": round(megabytes / hf_enc_default, 3),
            "tiktoken": round(megabytes / tik_enc, 3),
        },
    }


def to_markdown(results: dict) -> str:
    """The benchmark as a Markdown table for the docs page, with the ratios in a line below.

    >>> r = {"corpus_mb": 1.0, "vocab_size": 512, "cpu_count": 2, "train_ratio": 2.0,
    ...      "train_ratio_vs_hf_default": 1.0,
    ...      "train_s": {"llmkb": 2.0, "hf_1_thread": 1.0, "hf_default": 2.0},
    ...      "encode_mb_s": {"llmkb": 8.0, "llmkb_cold": 1.0, "hf_1_thread": 2.0, "hf_default": 3.0,
    ...                      "tiktoken": 10.0}}
    >>> print(to_markdown(r).splitlines()[2])
    | llmkb BPE (pure Python, 1 thread) | 2.00 | 8.00 (first pass: 1.00) |
    """
    train, enc = results["train_s"], results["encode_mb_s"]
    rows = [
        (
            "llmkb BPE (pure Python, 1 thread)",
            f"{train['llmkb']:.2f}",
            f"{enc['llmkb']:.2f} (first pass: {enc['llmkb_cold']:.2f})",
        ),
        ("HF tokenizers (Rust, 1 thread)", f"{train['hf_1_thread']:.2f}", f"{enc['hf_1_thread']:.2f}"),
        (
            f"HF tokenizers (Rust, default threads, {results['cpu_count']} cores)",
            f"{train['hf_default']:.2f}",
            f"{enc['hf_default']:.2f}",
        ),
        ("tiktoken (Rust, 1 thread)", "no trainer", f"{enc['tiktoken']:.2f}"),
    ]
    lines = ["| Implementation | Training (s) | Encoding (MB/s) |", "|---|---:|---:|"]
    lines += [f"| {name} | {t} | {e} |" for name, t, e in rows]
    lines.append("")
    lines.append(
        f"Corpus {results['corpus_mb']:.1f} MB, vocabulary {results['vocab_size']:,}. Training time, ours / "
        f"HF: {results['train_ratio']:.2f}x against HF on one thread, "
        f"{results['train_ratio_vs_hf_default']:.2f}x against HF on all cores."
    )
    return "\n".join(lines) + "\n"
