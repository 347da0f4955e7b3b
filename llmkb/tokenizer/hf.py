"""The production path: our BPE as a Hugging Face tokenizer and as a tiktoken encoding.

In: a trained :class:`~llmkb.tokenizer.bpe.BPETokenizer` (or training texts, for HF's own trainer).
Out: a ``tokenizers.Tokenizer`` / ``transformers.PreTrainedTokenizerFast`` that gives exactly the
same ids as ``BPETokenizer.encode``, a ``save_pretrained`` folder that ``AutoTokenizer`` loads
offline with a ChatML chat template, and a ``tiktoken.Encoding`` built from the same merges.

Why bother, when the from-scratch tokenizer works? Training libraries (transformers, trl) expect a
Hugging Face tokenizer, and the Rust implementations are one or two orders of magnitude faster.
Exporting the *same* merges, and testing that ids agree, lets the pages teach with the readable
code while the pipeline runs on the fast one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from llmkb.tokenizer.bpe import SPECIAL_TOKENS, SPLIT_PATTERN, BPETokenizer

# ChatML: every message is "<|im_start|>{role}\n{content}<|im_end|>\n".
# The {% generation %} block marks what the assistant wrote; transformers turns it into
# `assistant_masks` (return_assistant_tokens_mask=True) and trl's SFTTrainer(assistant_only_loss=True)
# computes the loss on those tokens only. The closing <|im_end|> is inside the block on purpose:
# the model must learn to *emit* it, or it never learns to stop talking.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte to a printable character (HF's ByteLevel alphabet).

    HF's BPE model stores tokens as strings, and a raw byte such as 0x0A (newline) or 0x20
    (space) would be invisible or ambiguous in vocab.json. Bytes that already print as
    themselves keep their character; the others are moved to code points from 256 upward.

    >>> m = bytes_to_unicode()
    >>> m[ord("a")], m[ord(" ")], m[ord("\\n")], len(set(m.values()))
    ('a', 'Ġ', 'Ċ', 256)
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


def byte_level_string(data: bytes) -> str:
    """A token's bytes written in the ByteLevel alphabet, as they appear in HF's vocab.

    >>> byte_level_string(" the\\n".encode())
    'ĠtheĊ'
    """
    table = bytes_to_unicode()
    return "".join(table[b] for b in data)


def _pre_tokenizer(pattern: str):
    """Our regex pre-split, then bytes -> ByteLevel characters (its own GPT-2 regex switched off)."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def to_hf_tokenizer(bpe: BPETokenizer):
    """The same merges as a ``tokenizers.Tokenizer``: identical ids to ``bpe.encode(text)``.

    Ids carry over unchanged: vocab[string of token i] = i, merges in our merge order (HF applies
    the lowest-ranked merge first, as we do), and each special token keeps its id.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models

    vocab = {byte_level_string(data): i for i, data in bpe.vocab.items()}
    if len(vocab) != len(bpe.vocab):
        raise ValueError("two token ids share the same bytes; HF's string -> id vocabulary cannot hold that")
    for special, i in bpe.special_tokens.items():
        if vocab.setdefault(special, i) != i:
            raise ValueError(f"special token {special!r} has the same text as ordinary token {vocab[special]}")
    merges = [(byte_level_string(bpe.vocab[a]), byte_level_string(bpe.vocab[b])) for a, b in bpe.merges]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = _pre_tokenizer(bpe.pattern)
    tokenizer.decoder = decoders.ByteLevel()
    # special=True: never split, skipped by decode(skip_special_tokens=True); normalized=False:
    # matched on the raw text. They are in the model vocab above, so they keep our ids.
    specials = sorted(bpe.special_tokens, key=bpe.special_tokens.get)
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tokenizer


def train_hf_bpe(
    texts: Iterable[str],
    vocab_size: int,
    special_tokens: Iterable[str] = SPECIAL_TOKENS,
    pattern: str = SPLIT_PATTERN,
):
    """HF's own (Rust) BPE trainer with our pre-split: the speed reference for training.

    Its merges can differ from ours in ties and in its id layout (specials first, then the 256
    byte characters sorted by the ByteLevel alphabet), so compare its speed, not its ids.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if isinstance(texts, str):
        texts = [texts]
    special_tokens = list(special_tokens)
    if vocab_size < 256 + len(special_tokens):
        raise ValueError(f"vocab_size={vocab_size} is too small: it must be at least 256 + {len(special_tokens)}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = _pre_tokenizer(pattern)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def to_pretrained(tok, model_max_length: int = 2048):
    """Wrap a ``tokenizers.Tokenizer`` for transformers/trl: ChatML template, <|endoftext|> as bos/eos/pad."""
    from transformers import PreTrainedTokenizerFast

    missing = [s for s in SPECIAL_TOKENS if tok.token_to_id(s) is None]
    if missing:
        raise ValueError(f"the tokenizer lacks the special tokens {missing}; train or export it with them")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=model_max_length,
        chat_template=CHATML_TEMPLATE,
    )


def load_pretrained(path: str | Path):
    """Load a ``save_pretrained`` folder offline; a missing or damaged folder names itself."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such tokenizer folder")
    file = path / "tokenizer.json"
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing; is {path} a save_pretrained tokenizer folder?")
    try:
        Tokenizer.from_file(str(file))  # the Rust parser gives the most precise message
    except Exception as e:  # tokenizers raises a bare Exception on bad JSON
        raise ValueError(f"{file}: not a valid tokenizer.json ({e})") from e
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # e.g. a damaged tokenizer_config.json
        raise ValueError(f"{path}: could not load the tokenizer folder ({type(e).__name__}: {e})") from e


def to_tiktoken(bpe: BPETokenizer):
    """The same vocabulary as a ``tiktoken.Encoding``, built offline (no download).

    tiktoken has no merge list: it ranks whole tokens by their bytes and, in a chunk, merges the
    adjacent pair whose concatenation has the lowest rank. With rank = our id (ids grow with
    merge order, and every token's bytes are unique) that replays our merges in the same order.
    """
    import tiktoken

    return tiktoken.Encoding(
        name="llmkb-bpe",
        pat_str=bpe.pattern,
        mergeable_ranks={data: i for i, data in bpe.vocab.items()},
        special_tokens=dict(bpe.special_tokens),
    )


@contextmanager
def hf_threads(parallel: bool):
    """Turn HF tokenizers' thread pool on or off for the duration of the block.

    ``TOKENIZERS_PARALLELISM`` is read by the Rust library on every call (not only at import),
    so flipping it here is enough; "false" makes training and ``encode_batch`` run serially.
    """
    old = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if parallel else "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = old
