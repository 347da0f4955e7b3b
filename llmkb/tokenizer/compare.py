"""Re-measure the notes' six-method tokenizer table on our own corpus.

In: training texts, held-out English texts, held-out non-English texts, a target vocabulary size.
Out: one :class:`MethodResult` per method (vocabulary obtained, bytes per token, tokens per word,
unknown-token rates, training seconds) and :func:`to_markdown` to print them as a page table.

The notes rate the methods with words ("Medium", "Poor (<UNK>)"); here every cell is a number
measured by training each method on the same texts with the same vocabulary budget. The notes'
"Rare words" column becomes the two unknown-token rates, "Vocab size" the vocabulary actually
obtained, and "Complexity" the training time (HF's Unigram trainer is by far the slowest row).



========================  ===================================  =====================================
row                       trained with                         what "unknown" means
========================  ===================================  =====================================
BPE (byte-level)          HF ``tokenizers`` BPE + ByteLevel    nothing: every byte is in the vocab
WordPiece                 HF ``tokenizers`` WordPiece          a word it cannot spell becomes ``[UNK]``
Unigram                   HF ``tokenizers`` Unigram            a character never seen -> ``<unk>``
SentencePiece (BPE)       ``sentencepiece``, BPE               a character outside the coverage
SentencePiece (Unigram)   ``sentencepiece``, Unigram           (same; byte fallback switched off)
Character-level           plain Python                         a character never seen -> unknown
Word-level                HF ``tokenizers`` WordLevel          any word outside the top-N -> ``[UNK]``
========================  ===================================  =====================================

SentencePiece is trained with ``byte_fallback=False`` on purpose: with byte fallback on (as in
LLaMA's tokenizer) it never emits an unknown token either, and the table would hide the difference.

Timing is single-threaded so that rows can be compared with each other and across machines:
Hugging Face ``tokenizers`` runs its rayon loops serially while ``TOKENIZERS_PARALLELISM=false``
(set for the duration of :func:`compare_methods`, then restored), and SentencePiece is given
``num_threads=1``. Set ``OMP_NUM_THREADS=1`` too when torch is loaded in the same process.

Adding a row (for example our from-scratch BPE): pass ``extra={"name": train}`` where
``train(texts, vocab_size)`` returns a :class:`Trained`, a tuple ``(encode, unk_id)`` or
``(encode, unk_id, vocab_size)``, or any tokenizer object with ``encode(text) -> list[int]``
(its size is read from ``len(tok)``, ``tok.vocab_size`` or ``tok.get_vocab_size()``). Wrap the
callable in :class:`MethodSpec` to fill the library / granularity / example-model columns.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from llmkb.tokenizer.hf import hf_threads

# The vocabulary budget every method gets unless the caller picks another.
DEFAULT_VOCAB_SIZE = 4096
# SentencePiece's share of characters that must be covered; the rarest 0.05% become unknown.
CHARACTER_COVERAGE = 0.9995


@dataclass
class MethodResult:
    method: str  # row name, e.g. "WordPiece"
    library: str  # what trained it, with the settings that matter for the numbers
    granularity: str  # byte / subword / character / word
    vocab_size: int | None  # the size actually obtained (None: the method did not say)
    bytes_per_token: float  # UTF-8 bytes of held-out English per token: higher = more compression
    tokens_per_word: float  # tokens per whitespace-separated word of held-out English
    unk_rate_english: float  # share of output tokens that are the unknown token, held-out English
    unk_rate_other: float  # same on held-out non-English text (NaN when none was given)
    train_s: float  # seconds to train, single-threaded
    example_models: str  # models the notes name for this method


@dataclass
class Trained:
    """What a method's ``train(texts, vocab_size)`` hands back."""

    encode: Callable[[str], Sequence[int]]  # text -> token ids, no special tokens added
    vocab_size: int | None  # number of ids the tokenizer can emit
    unk_id: int | None = None  # id of the unknown token; None when the method has none


@dataclass
class MethodSpec:
    """A trainable method plus the descriptive columns of its table row."""

    train: Callable[[list[str], int], object]  # (texts, vocab_size) -> Trained | tuple | tokenizer
    library: str = "-"
    granularity: str = "-"
    example_models: str = "-"


# ---------------------------------------------------------------------------------------------
# The seven built-in methods. Each trains on `texts` and returns a Trained.
# ---------------------------------------------------------------------------------------------


def _train_hf(
    model, pre_tokenizer, trainer, texts: list[str], unk_token: str | None = None, normalizer=None, decoder=None
) -> Trained:
    from tokenizers import Tokenizer

    tok = Tokenizer(model)
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    if decoder is not None:
        tok.decoder = decoder
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    # Ask the trained vocabulary, not the model object: HF's Python Unigram does not expose its unk.
    unk = tok.token_to_id(unk_token) if unk_token else None

    def encode(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False).ids

    return Trained(encode, tok.get_vocab_size(), unk)


def train_byte_bpe(texts: list[str], vocab_size: int, progress: bool = False) -> Trained:
    """GPT-2-style byte-level BPE: the 256 byte symbols are the starting alphabet, so no unknowns."""
    from tokenizers import decoders, models, pre_tokenizers, trainers

    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
        show_progress=progress,
    )
    return _train_hf(
        models.BPE(), pre_tokenizers.ByteLevel(add_prefix_space=False), trainer, texts, decoder=decoders.ByteLevel()
    )


def train_wordpiece(texts: list[str], vocab_size: int, progress: bool = False) -> Trained:
    """BERT-style WordPiece (cased: no lowercasing, accents kept), ``[UNK]`` for unspellable words."""
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[UNK]"], show_progress=progress)
    # BertNormalizer puts spaces around CJK characters, as BERT does, so each becomes its own word.
    norm = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    return _train_hf(
        models.WordPiece(unk_token="[UNK]"),
        pre_tokenizers.BertPreTokenizer(),
        trainer,
        texts,
        unk_token="[UNK]",
        normalizer=norm,
    )


def train_unigram(texts: list[str], vocab_size: int, progress: bool = False) -> Trained:
    """Unigram language model (as in T5/ALBERT tokenizer.json files), on Metaspace-marked words."""
    from tokenizers import models, pre_tokenizers, trainers

    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<unk>"], unk_token="<unk>", show_progress=progress
    )
    return _train_hf(models.Unigram(), pre_tokenizers.Metaspace(), trainer, texts, unk_token="<unk>")


def _sentencepiece_lines(texts: Sequence[str]) -> Iterator[str]:
    """SentencePiece trains on sentences: feed it non-empty lines, not whole documents.

    >>> list(_sentencepiece_lines(["a b\\n\\nc", "  "]))
    ['a b', 'c']
    """
    for text in texts:
        for line in text.splitlines():
            if line.strip():
                yield line


def _train_sentencepiece(texts: list[str], vocab_size: int, model_type: str) -> Trained:
    import sentencepiece as spm

    spm.set_random_generator_seed(0)  # it samples sentences; keep runs identical
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=_sentencepiece_lines(texts),
        model_writer=proto,
        model_type=model_type,
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # small corpora cannot always fill the budget; take what there is
        character_coverage=CHARACTER_COVERAGE,
        byte_fallback=False,  # so that unknown characters show up as <unk> and can be counted
        max_sentence_length=1 << 16,  # bytes; the default (4192) silently drops long lines
        num_threads=1,
        minloglevel=2,  # errors only
    )
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    return Trained(lambda text: sp.encode(text), sp.get_piece_size(), sp.unk_id())


def train_sentencepiece_bpe(texts: list[str], vocab_size: int, progress: bool = False) -> Trained:
    return _train_sentencepiece(texts, vocab_size, "bpe")


def train_sentencepiece_unigram(texts: list[str], vocab_size: int, progress: bool = False) -> Trained:
    return _train_sentencepiece(texts, vocab_size, "unigram")


def char_vocab(texts: Sequence[str]) -> dict[str, int]:
    """Character-level vocabulary: id 0 is the unknown token, then every character seen, sorted.

    >>> char_vocab(["abca", "b!"])
    {'<unk>': 0, '!': 1, 'a': 2, 'b': 3, 'c': 4}
    """
    chars = sorted(set().union(*map(set, texts))) if texts else []
    return {"<unk>": 0, **{c: i + 1 for i, c in enumerate(chars)}}


def train_char(texts: list[str], vocab_size: int, progress: bool = False) -> Trained:
    """One token per character seen in training (``vocab_size`` is ignored: the data decides)."""
    vocab = char_vocab(texts)
    return Trained(lambda text: [vocab.get(c, 0) for c in text], len(vocab), 0)


def train_word_level(texts: list[str], vocab_size: int, progress: bool = False) -> Trained:
    """word2vec-style vocabulary: the ``vocab_size`` most frequent words (and punctuation runs)."""
    from tokenizers import models, pre_tokenizers, trainers

    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=["[UNK]"], show_progress=progress)
    # Whitespace() splits on \w+|[^\w\s]+ : words and punctuation runs become separate tokens.
    return _train_hf(
        models.WordLevel(unk_token="[UNK]"), pre_tokenizers.Whitespace(), trainer, texts, unk_token="[UNK]"
    )


BUILTIN_METHODS: dict[str, MethodSpec] = {
    "BPE (byte-level)": MethodSpec(train_byte_bpe, "HF tokenizers, ByteLevel", "byte -> subword", "GPT, LLaMA"),
    "WordPiece": MethodSpec(train_wordpiece, "HF tokenizers", "subword", "BERT"),
    "Unigram": MethodSpec(train_unigram, "HF tokenizers, Metaspace", "subword", "T5, ALBERT"),
    "SentencePiece (BPE)": MethodSpec(
        train_sentencepiece_bpe,
        f"sentencepiece, coverage {CHARACTER_COVERAGE}, no byte fallback",
        "subword",
        "T5, XLNet (LLaMA 1-2 with byte fallback)",
    ),
    "SentencePiece (Unigram)": MethodSpec(
        train_sentencepiece_unigram,
        f"sentencepiece, coverage {CHARACTER_COVERAGE}, no byte fallback",
        "subword",
        "T5, XLNet, ALBERT",
    ),
    "Character-level": MethodSpec(train_char, "plain Python", "character", "early models"),
    "Word-level": MethodSpec(train_word_level, "HF tokenizers, WordLevel", "word", "word2vec"),
}


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


def as_trained(obj: object) -> Trained:
    """Accept the few shapes a ``train`` callable may return and turn them into a :class:`Trained`.

    >>> t = as_trained((lambda s: [1, 2], None, 10))
    >>> t.encode("x"), t.vocab_size, t.unk_id
    ([1, 2], 10, None)
    >>> as_trained((lambda s: [], 0)).vocab_size is None
    True
    """
    if isinstance(obj, Trained):
        return obj
    if isinstance(obj, tuple) and len(obj) in (2, 3) and callable(obj[0]):
        return Trained(obj[0], obj[2] if len(obj) == 3 else None, obj[1])
    if hasattr(obj, "encode"):  # a tokenizer object: byte-level, so no unknown token assumed
        return Trained(obj.encode, _vocab_size_of(obj), getattr(obj, "unk_id", None))
    raise TypeError(
        f"a train function returned {type(obj).__name__}; expected Trained, (encode, unk_id[, vocab_size]) "
        "or an object with .encode(text)"
    )


def _vocab_size_of(tok: object) -> int | None:
    for name in ("vocab_size", "get_vocab_size", "__len__"):
        value = getattr(tok, name, None)
        if callable(value):
            try:
                value = value()
            except TypeError:
                continue
        if isinstance(value, int):
            return value
    vocab = getattr(tok, "vocab", None)
    return len(vocab) if vocab is not None and hasattr(vocab, "__len__") else None


def measure(encode: Callable[[str], Sequence[int]], texts: Sequence[str], unk_id: int | None) -> dict:
    """Bytes per token, tokens per whitespace word, and the unknown-token share over ``texts``.

    >>> m = measure(lambda s: [0 if c == "?" else 1 for c in s], ["ab c?"], unk_id=0)
    >>> m["bytes_per_token"], m["tokens_per_word"], m["unk_rate"]
    (1.0, 2.5, 0.2)
    """
    n_bytes = n_words = n_tokens = n_unk = 0
    for text in texts:
        ids = encode(text)
        n_bytes += len(text.encode("utf-8"))
        n_words += len(text.split())
        n_tokens += len(ids)
        if unk_id is not None:
            n_unk += sum(1 for i in ids if i == unk_id)
    nan = float("nan")
    return {
        "bytes_per_token": n_bytes / n_tokens if n_tokens else nan,
        "tokens_per_word": n_tokens / n_words if n_words else nan,
        "unk_rate": n_unk / n_tokens if n_tokens else nan,
    }


def compare_methods(
    train_texts: list[str],
    heldout_english: list[str],
    heldout_other: list[str],
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    extra: dict[str, Callable | MethodSpec] | None = None,
    progress: bool = False,
    methods: Sequence[str] | None = None,
) -> list[MethodResult]:
    """Train every method on ``train_texts`` and measure it on the held-out texts.

    ``methods`` picks a subset of the built-in rows by name (default: all seven, in the notes'
    order); ``extra`` rows come after them. ``progress`` prints one line per method to stderr.
    """
    if not train_texts or not any(t.strip() for t in train_texts):
        raise ValueError("compare_methods: train_texts is empty; nothing to train on")
    if not heldout_english:
        raise ValueError("compare_methods: heldout_english is empty; bytes per token cannot be measured")
    if vocab_size < 300:
        raise ValueError(
            f"compare_methods: vocab_size={vocab_size} is below 300; byte-level BPE needs 256 "
            "ids before its first merge"
        )
    chosen = dict(BUILTIN_METHODS)
    if methods is not None:
        unknown = [m for m in methods if m not in BUILTIN_METHODS]
        if unknown:
            raise ValueError(f"compare_methods: unknown method(s) {unknown}; known: {list(BUILTIN_METHODS)}")
        chosen = {m: BUILTIN_METHODS[m] for m in methods}
    for name, spec in (extra or {}).items():
        chosen[name] = spec if isinstance(spec, MethodSpec) else MethodSpec(spec)

    results = []
    with hf_threads(parallel=False):
        for name, spec in chosen.items():
            start = time.perf_counter()
            if spec.train in _BUILTIN_TRAINERS:
                trained = spec.train(train_texts, vocab_size, progress=progress)
            else:
                trained = spec.train(train_texts, vocab_size)
            train_s = time.perf_counter() - start
            trained = as_trained(trained)
            en = measure(trained.encode, heldout_english, trained.unk_id)
            other = measure(trained.encode, heldout_other, trained.unk_id)
            results.append(
                MethodResult(
                    method=name,
                    library=spec.library,
                    granularity=spec.granularity,
                    vocab_size=trained.vocab_size,
                    bytes_per_token=en["bytes_per_token"],
                    tokens_per_word=en["tokens_per_word"],
                    unk_rate_english=en["unk_rate"],
                    unk_rate_other=other["unk_rate"],
                    train_s=train_s,
                    example_models=spec.example_models,
                )
            )
            if progress:
                print(
                    f"[compare] {name}: vocab {trained.vocab_size}, trained in {train_s:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
    return results


_BUILTIN_TRAINERS = {spec.train for spec in BUILTIN_METHODS.values()}


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def _fmt(value: float | int | None, kind: str) -> str:
    """Format one table cell; missing numbers show as an en dash.

    >>> _fmt(0.01234, "pct"), _fmt(3.14159, "f2"), _fmt(None, "int"), _fmt(float("nan"), "pct")
    ('1.23%', '3.14', '–', '–')
    """
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{value:,}"
    return f"{value:.2f}"


def to_markdown(results: Sequence[MethodResult]) -> str:
    """The results as a Markdown table: one header, one row per method.

    >>> r = MethodResult("Char", "py", "character", 80, 1.0, 5.5, 0.0, 0.25, 0.01, "early models")
    >>> print(to_markdown([r]))  # doctest: +NORMALIZE_WHITESPACE
    | Method | Library | Granularity | Vocab | Bytes/token (en) | Tokens/word (en) | UNK (en) | UNK (other) |
    Train s | Example models |
    |---|---|---|---:|---:|---:|---:|---:|---:|---|
    | Char | py | character | 80 | 1.00 | 5.50 | 0.00% | 25.00% | 0.01 | early models |
    """
    head = (
        "| Method | Library | Granularity | Vocab | Bytes/token (en) | Tokens/word (en) | UNK (en) "
        "| UNK (other) | Train s | Example models |"
    )
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        cells = [
            r.method,
            r.library,
            r.granularity,
            _fmt(r.vocab_size, "int"),
            _fmt(r.bytes_per_token, "f2"),
            _fmt(r.tokens_per_word, "f2"),
            _fmt(r.unk_rate_english, "pct"),
            _fmt(r.unk_rate_other, "pct"),
            _fmt(r.train_s, "f2"),
            r.example_models,
        ]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
