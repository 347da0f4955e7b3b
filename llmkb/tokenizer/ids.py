"""Text -> the tensor of token ids a model reads.

In: a Hugging Face tokenizer (:func:`llmkb.tokenizer.hf.load_pretrained`) and a string. Out: a
(1, T) ``torch.long`` tensor of its ids, with nothing added (no BOS or EOS): generation, chat and
the base-model probes pass text that already holds every special token it needs (ChatML's, say).

A module of its own so that the rest of the tokenizer package, which the tokenizer stage runs
without a model, never imports torch.
"""

from __future__ import annotations

import torch


def encode(tokenizer, text: str) -> torch.Tensor:
    """``text`` as a (1, T) tensor of ids (no special tokens added)."""
    return torch.tensor([tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]], dtype=torch.long)
