"""Corpus + tokenizer -> token shards on disk, and random training windows read from them.

In: documents (strings) and a Hugging Face tokenizer. Out: ``<split>_NNNN.bin`` files of raw token
ids (uint16 when the vocabulary fits in 16 bits, else uint32) plus ``shards.json`` describing them.
Every document is followed by ``<|endoftext|>``, so the model sees where one document ends and the
next, unrelated one begins.

Training reads the shards through ``numpy.memmap``: the operating system pages in only the bytes a
batch touches, so a corpus far larger than memory trains the same way as our tiny one. A batch is
``B`` windows of ``T + 1`` tokens at random offsets; inputs are the first ``T``, targets the last
``T`` (the same window shifted by one: every position predicts the next token).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from llmkb.io import atomic_open, read_json, write_json

EOT = "<|endoftext|>"


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id.

    >>> token_dtype(4096), token_dtype(100_000)
    (dtype('uint16'), dtype('uint32'))
    """
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def write_shards(
    texts: Iterable[str], tokenizer, out_dir: str | Path, split: str, shard_tokens: int = 10_000_000
) -> dict:
    """Tokenize ``texts`` into ``out_dir/<split>_NNNN.bin`` files of at most ``shard_tokens`` ids each.

    Returns ``{"files": [...], "tokens": n, "documents": d}``; each file is written atomically.
    """
    out_dir = Path(out_dir)
    eot = tokenizer.convert_tokens_to_ids(EOT)
    if eot is None or eot == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {EOT} token; train it with llmkb's tokenizer stage")
    dtype = token_dtype(len(tokenizer))
    files, buffer, total, documents = [], [], 0, 0

    def flush() -> None:
        path = out_dir / f"{split}_{len(files):04d}.bin"
        with atomic_open(path, "wb") as f:
            np.asarray(buffer, dtype=dtype).tofile(f)
        files.append(path.name)
        buffer.clear()

    batch: list[str] = []
    for text in [*texts, None]:  # None flushes the last batch
        if text is not None:
            batch.append(text)
        if batch and (text is None or len(batch) == 256):  # the fast tokenizer encodes batches in Rust
            for ids in tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]:
                buffer.extend(ids)
                buffer.append(eot)
                documents += 1
                total += len(ids) + 1
                while len(buffer) >= shard_tokens:
                    rest = buffer[shard_tokens:]
                    del buffer[shard_tokens:]
                    flush()
                    buffer.extend(rest)
            batch = []
    if buffer:
        flush()
    return {"files": files, "tokens": total, "documents": documents}


def build_shards(
    splits: dict[str, Iterable[str]], tokenizer, out_dir: str | Path, shard_tokens: int = 10_000_000
) -> dict:
    """Write every split's shards and ``shards.json`` (dtype, vocab size, eot id, files and counts)."""
    out_dir = Path(out_dir)
    meta = {
        "dtype": token_dtype(len(tokenizer)).name,
        "vocab_size": len(tokenizer),
        "eot_id": tokenizer.convert_tokens_to_ids(EOT),
        "splits": {name: write_shards(texts, tokenizer, out_dir, name, shard_tokens) for name, texts in splits.items()},
    }
    write_json(out_dir / "shards.json", meta)
    return meta


@dataclass
class TokenShards:
    """One split's shards, memory-mapped, read as random (or consecutive) windows."""

    arrays: list[np.memmap]
    vocab_size: int
    source: Path  # shards.json, for error messages

    @classmethod
    def open(cls, folder: str | Path, split: str) -> "TokenShards":
        folder = Path(folder)
        meta = read_json(folder / "shards.json")
        if split not in meta["splits"]:
            raise KeyError(f"{folder / 'shards.json'}: no split {split!r} (have {', '.join(meta['splits'])})")
        arrays = [np.memmap(folder / name, dtype=meta["dtype"], mode="r") for name in meta["splits"][split]["files"]]
        return cls(arrays, meta["vocab_size"], folder / "shards.json")

    @property
    def tokens(self) -> int:
        return sum(len(a) for a in self.arrays)

    def check_window(self, context: int) -> None:
        """A clear error when no shard holds one window of ``context + 1`` tokens."""
        longest = max((len(a) for a in self.arrays), default=0)
        if longest < context + 1:
            raise ValueError(
                f"{self.source}: the corpus has {longest} tokens per shard, fewer than one training window "
                f"of {context + 1} (context {context} + 1); use a larger corpus or a shorter context"
            )

    def batch(self, batch_size: int, context: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` windows at random offsets: inputs ``(B, T)`` and next-token targets ``(B, T)``.

        Shards are picked in proportion to their size; ``generator`` alone decides the offsets, so
        the same seed gives the same batch on every run and every process.
        """
        sizes = torch.tensor([len(a) - context for a in self.arrays], dtype=torch.float64).clamp(min=0)
        shard = torch.multinomial(sizes, batch_size, replacement=True, generator=generator)
        rows = []
        for s in shard.tolist():
            start = int(torch.randint(0, int(sizes[s]), (1,), generator=generator))
            rows.append(torch.from_numpy(self.arrays[s][start : start + context + 1].astype(np.int64)))
        window = torch.stack(rows)  # (B, T+1)
        return window[:, :-1], window[:, 1:]

    def sequential(self, batch_size: int, context: int, max_tokens: int):
        """Consecutive non-overlapping windows covering up to ``max_tokens`` tokens (for validation)."""
        rows = []
        budget = max_tokens
        for a in self.arrays:
            for start in range(0, len(a) - context, context):
                if budget < context:
                    break
                rows.append(torch.from_numpy(a[start : start + context + 1].astype(np.int64)))
                budget -= context
        for i in range(0, len(rows), batch_size):
            window = torch.stack(rows[i : i + batch_size])
            yield window[:, :-1], window[:, 1:]

    def unigram_loss(self, other: "TokenShards") -> float:
        """Cross-entropy (nats/token) of ``other``'s tokens under this split's unigram frequencies.

        The baseline a language model must beat: it knows which tokens are common but nothing about
        order. Add-one smoothing keeps unseen tokens finite.
        """
        counts = np.ones(self.vocab_size, dtype=np.float64)
        for a in self.arrays:
            counts += np.bincount(a, minlength=self.vocab_size)[: self.vocab_size]
        logp = np.log(counts / counts.sum())
        seen = np.concatenate([np.asarray(a) for a in other.arrays]).astype(np.int64)
        return float(-logp[seen].mean())


# --8<-- [start:repeat-windows]
def repeat_windows(
    count: int, context: int, low: int, high: int, generator: torch.Generator, periods: tuple[int, int] = (8, 40)
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` synthetic windows: a random run of token ids from ``[low, high)`` repeated to the window's end.

    The run's length is drawn from ``periods`` for each window, so no fixed distance predicts the
    next token: only looking back for the last time the current token appeared, and copying the one
    after it, does (the job of an induction head). The first pass of each run cannot be predicted.
    Inputs and targets as in :meth:`TokenShards.batch`.

    >>> x, y = repeat_windows(2, 16, 256, 300, torch.Generator().manual_seed(0), periods=(5, 5))
    >>> x.shape, bool((x[:, 5:10] == x[:, :5]).all()), bool((y[:, :-1] == x[:, 1:]).all())
    (torch.Size([2, 16]), True, True)
    """
    rows = []
    for _ in range(count):
        period = int(torch.randint(periods[0], periods[1] + 1, (1,), generator=generator))
        run = torch.randint(low, high, (period,), generator=generator)
        rows.append(run.repeat(context // period + 2)[: context + 1])
    window = torch.stack(rows)  # (count, T+1)
    return window[:, :-1], window[:, 1:]
    # --8<-- [end:repeat-windows]
