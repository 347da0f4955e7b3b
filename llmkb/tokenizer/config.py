"""The tokenizer stage's settings: vocabulary size, special tokens, how much text to learn from.

In: nothing. Out: :class:`TokenizerConfig`, a plain dataclass saved as ``config.json`` beside the
stage's artifacts; it checks its fields when built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmkb.checks import positive, require
from llmkb.tokenizer.bpe import MAX_VOCAB, SPECIAL_TOKENS


@dataclass
class TokenizerConfig:
    vocab_size: int = 4096  # 256 bytes + merges + special tokens
    max_train_bytes: int = 12_000_000  # train on at most this much of the corpus (more adds little)
    special_tokens: list[str] = field(default_factory=lambda: list(SPECIAL_TOKENS))
    model_max_length: int = 2048  # written into tokenizer_config.json for later stages
    inputs: list[str] = field(default_factory=list)  # UTF-8 text files to train on instead of the run's corpus

    def __post_init__(self) -> None:
        positive(self, "max_train_bytes", "model_max_length")
        ok = all(isinstance(t, str) and t for t in self.special_tokens)
        require(self, "special_tokens", ok, "a list of non-empty strings")
        smallest = 256 + len(set(self.special_tokens))  # every byte and every special token has an id
        require(
            self,
            "vocab_size",
            smallest <= self.vocab_size <= MAX_VOCAB,
            f"in [{smallest}, {MAX_VOCAB}] (256 bytes + the special tokens, at least)",
        )
