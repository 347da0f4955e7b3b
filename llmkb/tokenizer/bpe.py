"""Byte-level BPE from scratch: train merges on text, encode text to ids, decode ids to text.

In: an iterable of strings (the training corpus) and a vocabulary size.
Out: a :class:`BPETokenizer` (256 byte tokens + learned merges + special tokens) that encodes and
decodes any string, and saves itself as one JSON file.

How it works, top to bottom:

1. **Pre-split.** A regex cuts text into chunks (words with their leading space, single digits,
   runs of punctuation, runs of whitespace). Merges never cross a chunk boundary, so " dog" and
   "dog." can share the token "dog" but no token glues a word to the next one.
2. **Bytes.** Each chunk is UTF-8 encoded; the 256 byte values are the first 256 tokens, so any
   string (Vietnamese, Chinese, emoji) can be encoded and nothing is ever "unknown".
3. **Merges.** Training repeatedly finds the most frequent adjacent pair of tokens and gives it a
   new id. Encoding replays those merges, lowest rank (earliest learned) first.

Two trainers learn the same merges. :func:`train_textbook`, first in this file, is the loop as
textbooks write it: recount every pair in the whole corpus, merge the winner everywhere, repeat.
Each merge rescans the corpus, so it costs O(merges x corpus size) and is only usable on small
texts. :meth:`BPETokenizer.train` is the one the pipeline uses. It counts pairs *incrementally*:
the corpus is reduced once to its unique chunks with their frequencies, pair counts and an index
"pair -> chunks that contain it" are built once, and each merge rewrites only the chunks that
contain the merged pair, adjusting the counts of the pairs next to it. A heap with lazy
invalidation finds the next best pair without scanning all pairs.
"""

from __future__ import annotations

import gc
import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import repeat
from pathlib import Path

import regex

from llmkb.io import read_json, write_json

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# GPT-4's pre-split pattern with one change: `\p{N}` instead of `\p{N}{1,3}`, so every digit is
# its own chunk and therefore its own token. Numbers then look the same to the model whatever
# their length, which helps a small model with arithmetic and counting. The alternatives, in order:
# English contractions ('s 't 're ...), a word with at most one leading non-letter (usually a
# space), one digit, a punctuation run with an optional leading space, newlines, trailing spaces.
# The possessive quantifiers (?+ ++) only make matching faster; they behave the same here in
# Python's `regex`, Hugging Face's Oniguruma and tiktoken's fancy-regex (the tests check it).
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)

FORMAT = "llmkb-bpe/1"  # written into saved files, checked on load
NEVER = 1 << 62  # "this pair is no merge": larger than any token id
MAX_VOCAB = 0x110000  # the trainer stores token ids as characters, chr(id), and chr stops there


# ----------------------------------------------------------------------------------------------
# small pure helpers


def count_pairs(ids: list[int]) -> Counter:
    """How often each adjacent pair occurs (overlapping pairs count: "aaa" has (a, a) twice).

    >>> count_pairs([1, 2, 3, 1, 2])
    Counter({(1, 2): 2, (2, 3): 1, (3, 1): 1})
    """
    return Counter(zip(ids, ids[1:]))


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, scanning left to right.

    >>> merge([97, 97, 97, 98], (97, 97), 256)   # "aaab": the left pair wins, no overlap
    [256, 97, 98]
    """
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def special_split_pattern(specials: Iterable[str]) -> regex.Pattern | None:
    """A regex that splits text around the special tokens, keeping them (longest first).

    >>> special_split_pattern(["<|a|>", "<|ab|>"]).split("x<|ab|>y")
    ['x', '<|ab|>', 'y']
    """
    specials = sorted(specials, key=len, reverse=True)  # so a special that prefixes another loses
    if not specials:
        return None
    return regex.compile("(" + "|".join(regex.escape(s) for s in specials) + ")")


# ----------------------------------------------------------------------------------------------
# training: the textbook loop


# --8<-- [start:textbook]
def train_textbook(
    texts: Iterable[str],
    n_merges: int,
    special_tokens: Iterable[str] = SPECIAL_TOKENS,
    pattern: str = SPLIT_PATTERN,
) -> dict[tuple[int, int], int]:
    """Learn ``n_merges`` merges the slow, obvious way; returns ``{(left id, right id): new id}``.

    Every step recounts all pairs in the whole corpus and merges the most frequent one
    everywhere, so the cost is O(merges x corpus size). It follows the same rules as
    :meth:`BPETokenizer.train` and learns the same merges: special tokens are cut out and not
    trained on, pairs never cross a pre-split chunk, and ties go to the smallest pair.

    >>> train_textbook(["aaabdaaabac"], 3)   # "aa", then "a"+"b" (a tie won by the smaller pair)
    {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    """
    if isinstance(texts, str):
        texts = [texts]
    specials = special_split_pattern(special_tokens)
    chunks = []  # every chunk of the corpus as a list of token ids, starting from its bytes
    for text in texts:
        for part in specials.split(text)[::2] if specials else [text]:  # odd items: specials
            chunks += [list(chunk.encode("utf-8")) for chunk in regex.findall(pattern, part)]
    merges: dict[tuple[int, int], int] = {}
    for new_id in range(256, 256 + n_merges):
        counts: Counter = Counter()
        for ids in chunks:
            counts.update(count_pairs(ids))  # pairs inside one chunk only
        if not counts:
            break  # every chunk is a single token already
        pair = min(counts, key=lambda p: (-counts[p], p))  # the most frequent; ties: smallest pair
        merges[pair] = new_id
        chunks = [merge(ids, pair, new_id) for ids in chunks]
    return merges


# --8<-- [end:textbook]


# ----------------------------------------------------------------------------------------------
# training: the incremental pair counter


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle-finding garbage collector for the block.

    Training creates millions of small objects (strings, lists of ints) and none of them form
    reference cycles, so the collector has nothing to find; yet it keeps rescanning them all,
    which cost about a quarter of the training time here. Reference counting still frees memory.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _count_chunks(texts: Iterable[str], pattern: regex.Pattern, specials: regex.Pattern | None) -> Counter:
    """Unique pre-split chunks of the corpus with their frequencies.

    Special tokens are cut out first and not trained on: they get their own ids, and a merge
    like "<|" + "im" would waste vocabulary on markup the model never sees as plain text.
    """
    chunks: Counter = Counter()
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"training texts must be str, got {type(text).__name__}: {text!r:.60}")
        parts = specials.split(text)[::2] if specials else [text]  # odd items are the specials
        for part in parts:
            chunks.update(pattern.findall(part))  # Counter.update on a list runs in C
    return chunks


class _PairTrainer:
    """The state of an incremental BPE training run.

    Representation, chosen for speed: a word (a unique chunk) is a ``str`` whose characters are
    token ids, ``chr(id)``; a pair of ids is the 2-character string ``chr(a) + chr(b)``. Python's
    C-level ``str.find`` and ``str.replace`` then do the scanning and rewriting that would
    otherwise be slow Python loops, and ``str.replace`` merges left to right without overlap,
    exactly like :func:`merge`. Comparing two pair strings orders them like ``(a, b)`` tuples.

    ``words[i]`` is word i, ``freqs[i]`` how often it occurs in the corpus.
    ``counts[pair]`` is the total frequency of ``pair`` over all words; ``where[pair]`` lists the
    words that contain (or once contained) it; ``heap`` holds ``(-count, pair)`` entries.
    ``where`` may name a word twice or name a word that lost the pair to an earlier merge: such
    entries are skipped when ``str.find`` finds nothing, which is cheaper than keeping sets exact.

    Lazy invalidation: whenever a pair's count changes, a fresh heap entry is pushed and the old
    one is left behind. An entry is trusted only if its count equals the pair's current count;
    stale entries are dropped when they reach the top. Each merge therefore costs work in
    proportion to the words it touches, never a scan over every pair.

    Tie-breaking: among pairs with the same count, the heap's tuple order picks the smallest
    pair string, i.e. the smallest ``(left id, right id)``. Training is therefore deterministic
    whatever the order of the corpus or of Python's hashing; :func:`train_textbook` uses the
    same rule, and the tests check that the two learn identical merges.
    """

    def __init__(self, chunk_counts: Counter):
        self.words: list[str] = []
        self.freqs: list[int] = []
        for chunk, freq in chunk_counts.items():
            # latin-1 maps byte b to chr(b): the UTF-8 bytes as a string of byte-token ids
            word = chunk.encode("utf-8").decode("latin-1")
            if len(word) >= 2:  # a one-byte chunk has no pair and can never change
                self.words.append(word)
                self.freqs.append(freq)
        self.counts: dict[str, int] = defaultdict(int)
        self.where: dict[str, list[int]] = defaultdict(list)
        counts, where = self.counts, self.where
        for i, (word, freq) in enumerate(zip(self.words, self.freqs)):
            for pair in map(str.__add__, word, word[1:]):  # "abc" -> "ab", "bc"
                counts[pair] += freq
                where[pair].append(i)
        self.heap = [(-count, pair) for pair, count in counts.items()]
        heapq.heapify(self.heap)

    def best_pair(self) -> tuple[tuple[int, int], int] | None:
        """Pop the most frequent pair as ``((left id, right id), count)``; None when none is left."""
        while self.heap:
            neg_count, pair = heapq.heappop(self.heap)
            if self.counts.get(pair) == -neg_count:  # otherwise a stale entry: drop it
                return (ord(pair[0]), ord(pair[1])), -neg_count
        return None

    def forget(self, pair: tuple[int, int]) -> None:
        """Never offer ``pair`` again (used for merges whose bytes already have a token)."""
        key = chr(pair[0]) + chr(pair[1])
        self.counts.pop(key, None)
        self.where.pop(key, None)

    def apply(self, pair: tuple[int, int], new_id: int) -> None:
        """Merge ``pair`` into ``new_id`` in every word that has it, updating counts locally.

        For each occurrence ``x a b y`` -> ``x N y`` only four pair counts change: (x, a) and
        (b, y) go down, (x, N) and (N, y) go up. For back-to-back occurrences (``a b a b`` ->
        ``N N``) the left neighbour of the second one is the new ``N``, not the old ``b``: the
        (N, a) counted after the first occurrence is then taken back at the second.
        """
        A, B, N = chr(pair[0]), chr(pair[1]), chr(new_id)
        AB = A + B
        delta: dict[str, int] = defaultdict(int)
        where, words, freqs = self.where, self.words, self.freqs
        for i in where.pop(AB, ()):
            word = words[i]
            k = word.find(AB)
            if k < 0:
                continue  # the index is allowed to be stale: an earlier merge took the pair away
            freq, last = freqs[i], len(word) - 2
            end = -1  # where the previous occurrence ended
            while k >= 0:
                if k > 0:
                    x = N if k == end else word[k - 1]
                    delta[x + A] -= freq
                    xN = x + N
                    delta[xN] += freq
                    where[xN].append(i)
                if k < last:
                    y = word[k + 2]
                    delta[B + y] -= freq
                    Ny = N + y
                    delta[Ny] += freq
                    where[Ny].append(i)
                end = k + 2
                k = word.find(AB, end)
            words[i] = word.replace(AB, N)
        self.counts.pop(AB, None)  # every occurrence is gone
        delta.pop(AB, None)  # "a a a" decrements (a, a) itself; it is already removed
        counts, heap = self.counts, self.heap
        for p, d in delta.items():
            if d:
                c = counts[p] + d
                if c > 0:
                    counts[p] = c
                    heapq.heappush(heap, (-c, p))
                else:
                    del counts[p]


def _learn_merges(trainer: _PairTrainer, n_merges: int, progress: bool = False) -> dict[tuple[int, int], int]:
    """Take the best pair, give it the next id, merge it everywhere; ``n_merges`` times."""
    merges: dict[tuple[int, int], int] = {}
    vocab = {i: bytes([i]) for i in range(256)}
    known = set(vocab.values())
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_merges, desc="BPE merges", unit="merge")
    while len(merges) < n_merges:
        best = trainer.best_pair()
        if best is None:
            break  # every chunk is a single token already
        pair, _count = best
        token = vocab[pair[0]] + vocab[pair[1]]
        # Could two different pairs spell the same bytes ("a"+"bc" and later "ab"+"c")? HF's
        # vocabulary maps strings to ids and cannot hold two ids for one byte string, and tiktoken
        # ranks tokens by their bytes, so the exports need each token's bytes to be unique. With
        # merges learned inside whole chunks it cannot happen: a byte string that no merge has
        # crossed is split the same way wherever it occurs, so its halves merged into the
        # existing token the first time they met. This guard keeps the rule explicit should a
        # change ever break that argument: the pair is not recorded and never offered again, so
        # ids stay 256 + merge rank and the exports stay exact.
        if token in known:
            trainer.forget(pair)
            continue
        new_id = 256 + len(merges)
        merges[pair] = new_id
        vocab[new_id] = token
        known.add(token)
        trainer.apply(pair, new_id)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return merges


# ----------------------------------------------------------------------------------------------
# the tokenizer


class BPETokenizer:
    """A byte-level BPE tokenizer: ``merges`` + ``special_tokens`` + the pre-split ``pattern``."""

    def __init__(
        self,
        merges: dict[tuple[int, int], int] | None = None,
        special_tokens: dict[str, int] | None = None,
        pattern: str = SPLIT_PATTERN,
    ):
        self.pattern = pattern
        self.merges: dict[tuple[int, int], int] = dict(merges or {})  # insertion order = merge order
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self._compiled = regex.compile(pattern)
        self._rebuild()

    def _rebuild(self) -> None:
        """Derive the lookup tables from ``merges`` and ``special_tokens``."""
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        for (left, right), new_id in self.merges.items():
            self.vocab[new_id] = self.vocab[left] + self.vocab[right]
        self.inverse_special = {i: s for s, i in self.special_tokens.items()}
        self._special_split = special_split_pattern(self.special_tokens)
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """256 bytes + one token per merge + the special tokens."""
        return len(self.vocab) + len(self.special_tokens)

    # -- training ----------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        special_tokens: Iterable[str] = SPECIAL_TOKENS,
        pattern: str = SPLIT_PATTERN,
        progress: bool = False,
    ) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``texts``.

        Stops early (with a smaller vocabulary) if the corpus runs out of pairs to merge.
        """
        if isinstance(texts, str):
            texts = [texts]  # a lone string would otherwise be read one character at a time
        special_tokens = list(dict.fromkeys(special_tokens))  # drop duplicates, keep order
        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0:
            raise ValueError(
                f"vocab_size={vocab_size} is too small: it must be at least 256 (bytes) + "
                f"{len(special_tokens)} (special tokens) = {256 + len(special_tokens)}"
            )
        if vocab_size > MAX_VOCAB:
            raise ValueError(f"vocab_size={vocab_size} is too large: the trainer supports at most {MAX_VOCAB}")
        with _cycle_collector_paused():
            chunks = _count_chunks(texts, regex.compile(pattern), special_split_pattern(special_tokens))
            if not chunks:
                raise ValueError("the training corpus is empty: no text to learn merges from")
            merges = _learn_merges(_PairTrainer(chunks), n_merges, progress)
        first_special = 256 + len(merges)
        specials = {s: first_special + k for k, s in enumerate(special_tokens)}
        return cls(merges, specials, pattern)

    # -- encoding ----------------------------------------------------------------------------

    def _encode_chunk(self, data: bytes) -> list[int]:
        """Apply the merges to one chunk's bytes, always the earliest-learned pair present first.

        >>> tok = BPETokenizer({(97, 97): 256, (256, 98): 257})   # "aa", then "aa"+"b"
        >>> tok._encode_chunk(b"aab"), tok._encode_chunk(b"aaab")   # "aa"+"a" is no merge
        ([257], [256, 97, 98])
        """
        ids = list(data)
        new_id_of = self.merges.get
        while len(ids) >= 2:
            # For each adjacent pair, the id it would merge into (NEVER if it is no merge). Ids of
            # merged tokens grow with merge order, so the smallest one is the earliest merge.
            # map/min/index run in C: twice as fast as min(pairs, key=lambda ...).
            new_ids = list(map(new_id_of, zip(ids, ids[1:]), repeat(NEVER)))
            new_id = min(new_ids)
            if new_id == NEVER:
                break  # nothing left to merge
            j = new_ids.index(new_id)
            ids = merge(ids, (ids[j], ids[j + 1]), new_id)
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` ignoring special tokens (they are split like any other text)."""
        ids: list[int] = []
        cache = self._cache
        for chunk in self._compiled.findall(text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = self._encode_chunk(chunk.encode("utf-8"))
                if len(cache) < 500_000:  # bounded, so encoding a huge corpus cannot exhaust memory
                    cache[chunk] = chunk_ids
            ids.extend(chunk_ids)
        return ids

    def encode(self, text: str, allowed_special: str | set = "all") -> list[int]:
        """Encode ``text``. ``allowed_special``: "all", "none", or a set of special-token strings.

        An allowed special token in the text becomes its single id; any other is encoded as the
        ordinary bytes it is made of (so user text cannot smuggle in control tokens unless asked).
        """
        if allowed_special == "all":
            allowed = self.special_tokens
        elif allowed_special == "none":
            allowed = {}
        elif isinstance(allowed_special, (set, frozenset, list, tuple)):
            unknown = set(allowed_special) - set(self.special_tokens)
            if unknown:
                raise ValueError(f"allowed_special names unknown special tokens: {sorted(unknown)}")
            allowed = {s: self.special_tokens[s] for s in allowed_special}
        else:
            raise ValueError(f'allowed_special must be "all", "none" or a set of strings, got {allowed_special!r}')
        if not allowed:
            return self.encode_ordinary(text)
        splitter = self._special_split if len(allowed) == len(self.special_tokens) else special_split_pattern(allowed)
        ids: list[int] = []
        for k, part in enumerate(splitter.split(text)):
            if k % 2:  # split() with a capturing group puts the separators at odd positions
                ids.append(allowed[part])
            elif part:
                ids.extend(self.encode_ordinary(part))
        return ids

    # -- decoding ----------------------------------------------------------------------------

    def token_bytes(self, id: int) -> bytes:
        """The bytes of one token (a special token's UTF-8 text)."""
        if id in self.vocab:
            return self.vocab[id]
        if id in self.inverse_special:
            return self.inverse_special[id].encode("utf-8")
        raise ValueError(f"token id {id} is not in the vocabulary (size {self.vocab_size})")

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text. A token may end halfway through a UTF-8 character; such bytes become U+FFFD."""
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    # -- saving ------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the tokenizer as one JSON file (atomically: a crash leaves the old file)."""
        return write_json(
            path,
            {
                "format": FORMAT,
                "pattern": self.pattern,
                "special_tokens": self.special_tokens,
                # [left, right, new id] in merge order; the vocab is rebuilt from these on load
                "merges": [[left, right, new_id] for (left, right), new_id in self.merges.items()],
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a file written by :meth:`save`; a wrong or damaged file names itself in the error."""
        path = Path(path)
        data = read_json(path)  # FileNotFoundError / ValueError naming the path
        problem = _check_saved(data)
        if problem:
            raise ValueError(f"{path}: not a saved BPETokenizer ({problem})")
        merges = {(left, right): new_id for left, right, new_id in data["merges"]}
        return cls(merges, data["special_tokens"], data["pattern"])


def _check_saved(data) -> str | None:
    """What is wrong with a loaded JSON object, or None if it is a valid saved tokenizer.

    >>> _check_saved({"format": "llmkb-bpe/1", "pattern": " ", "special_tokens": {}, "merges": [[1, 2, 300]]})
    'merge 0 makes id 300, expected 256'
    """
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    if data.get("format") != FORMAT:
        return f"format is {data.get('format')!r}, expected {FORMAT!r}"
    for key, kind in (("pattern", str), ("special_tokens", dict), ("merges", list)):
        if not isinstance(data.get(key), kind):
            return f"{key!r} is missing or not a {kind.__name__}"
    for k, m in enumerate(data["merges"]):
        if not (isinstance(m, list) and len(m) == 3 and all(isinstance(x, int) for x in m)):
            return f"merge {k} is {m!r}, expected [left id, right id, new id]"
        if m[2] != 256 + k:
            return f"merge {k} makes id {m[2]}, expected {256 + k}"
        if not (0 <= m[0] < m[2] and 0 <= m[1] < m[2]):
            return f"merge {k} uses ids {m[0]}, {m[1]} that do not exist before it"
    n = 256 + len(data["merges"])
    for s, i in data["special_tokens"].items():
        if not isinstance(i, int) or i < n:
            return f"special token {s!r} has id {i!r}, expected an int >= {n}"
    try:
        regex.compile(data["pattern"])
    except regex.error as e:
        return f"pattern does not compile: {e}"
    return None
