"""Documents -> documents without copies: exact dedup, then MinHash near-dedup as FineWeb ran it.

In: a list of document dicts (text under ``key``, an identifier under ``"id"``). Out: ``(kept,
dropped)``, both in input order; each dropped document is a copy of the input with
``duplicate_of`` set to the id of the kept document it duplicates. The first occurrence wins,
so callers who want a stable choice sort their documents first (the data stage sorts by URL).

Exact dedup hashes the text after normalising Unicode (NFC) and whitespace.

Near dedup follows FineWeb's datatrove ``MinhashConfig`` defaults:

1. simplify the text (lowercase, every number -> ``0``, punctuation -> space, accents dropped,
   whitespace collapsed), split it into words and take the set of word 5-grams (shingles);
2. hash every shingle once with a fast 64-bit hash (xxh64, as datatrove; blake2b if the
   ``xxhash`` package is missing);
3. push those hashes through 112 random affine maps ``(a*x + b) mod (2**61 - 1)`` and keep each
   map's minimum: the 112-number signature. Two documents agree on one minimum with probability
   (close to) the Jaccard similarity of their shingle sets;
4. cut the signature into 14 bands of 8 numbers; documents equal on a whole band share an LSH
   bucket and are a candidate pair, with probability ``1 - (1 - s**8)**14`` (the S-curve of
   :func:`candidate_probability`: 92% at s = 0.8, 5% at s = 0.5);
5. join candidate pairs into clusters (union-find) and keep one document per cluster.

The arithmetic is datatrove's, number for number (``tests/test_dedup.py`` compares signatures
with datatrove's own ``get_signature``): ``a`` and ``b`` drawn by ``np.random.RandomState(seed)``
below the prime, and ``x * a + b`` computed in uint64, so the 125-bit product silently wraps
modulo 2**64 before ``mod p``. That is not the textbook permutation, but it mixes well: the
candidate rate follows the S-curve (tested). Two "cleaner" variants were measured and rejected:
exact 128-bit ``mod p`` arithmetic built from 32-bit halves costs about 1 ms per document in
numpy (6x slower), and keeping ``a``, ``x``, ``b`` below 2**32 so nothing overflows makes the
112 minima correlated (at Jaccard 0.6 about 41% of pairs became candidates instead of 21%).

Where we differ from datatrove: it splits words with a language-specific tokenizer (spaCy or
NLTK); after punctuation removal, splitting on whitespace gives the same words for English. A
text shorter than 5 words becomes one shingle of all its words (datatrove gives it none). Like
FineWeb, candidate pairs are not re-checked against their true Jaccard similarity.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import sys
import time
import unicodedata

import numpy as np
import regex

try:  # xxhash comes with `datasets`; blake2b is the always-available fallback
    import xxhash

    HASH_NAME = "xxh64"
    hash_bytes = xxhash.xxh64_intdigest  # bytes -> int, datatrove's shingle hash

    def hash64(s: str) -> int:
        """A fast 64-bit hash of a string (xxh64 of its UTF-8 bytes, datatrove's shingle hash)."""
        return xxhash.xxh64_intdigest(s.encode("utf-8"))

except ImportError:  # pragma: no cover - exercised only where xxhash is absent
    HASH_NAME = "blake2b-64"

    def hash_bytes(data: bytes) -> int:
        """A 64-bit hash of bytes (blake2b truncated to 8 bytes)."""
        return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")

    def hash64(s: str) -> int:
        """A 64-bit hash of a string (blake2b truncated to 8 bytes)."""
        return hash_bytes(s.encode("utf-8"))


MERSENNE_61 = np.uint64((1 << 61) - 1)
_WHITESPACE = re.compile(r"\s+")
# datatrove: runs of digits in any script, with at most one decimal separator, become "0"
# (the standard library's \d is Unicode's Nd, like datatrove's \p{Nd}, and is faster)
_NUMBERS = re.compile(r"\d+(?:[.,،٫⎖⎗⎘]\d+)?")
_MARKS = regex.compile(r"\p{Mn}+")


@functools.cache
def _punctuation_to_space() -> dict[int, int]:
    """A str.translate table turning every Unicode punctuation or symbol character into a space.

    datatrove lists its characters by hand; the Unicode categories cover those and also symbols
    such as "¶" or emoji, which datatrove keeps as words (on 1 MB of our corpus the two agree on
    all but one document). Built once, in about 0.1 s.
    """
    return {i: 32 for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i))[0] in "PS"}


# -- exact ----------------------------------------------------------------------------------------


def normalize_for_exact(text: str) -> str:
    """The form two texts must share to count as exact copies: NFC, whitespace collapsed, trimmed.

    >>> normalize_for_exact("  Hello,\\n\\tworld ") == normalize_for_exact("Hello, world")
    True
    >>> normalize_for_exact("Hello") == normalize_for_exact("hello")  # case still matters
    False
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _doc_id(doc: dict, index: int):
    return doc.get("id", index)


def exact_dedup(docs: list[dict], key: str = "text") -> tuple[list[dict], list[dict]]:
    """Drop documents whose normalised text equals an earlier one's; order kept.

    Examples:
        >>> kept, dropped = exact_dedup([{"id": "a", "text": "x  y"}, {"id": "b", "text": "x y"}])
        >>> [d["id"] for d in kept], dropped[0]["duplicate_of"]
        (['a'], 'a')
    """
    first: dict[bytes, object] = {}
    kept, dropped = [], []
    for i, doc in enumerate(docs):
        if key not in doc:
            raise KeyError(f"document {i} (id {_doc_id(doc, i)!r}) has no {key!r} field")
        digest = hashlib.blake2b(normalize_for_exact(doc[key]).encode("utf-8"), digest_size=16).digest()
        if digest in first:
            dropped.append({**doc, "duplicate_of": first[digest]})
        else:
            first[digest] = _doc_id(doc, i)
            kept.append(doc)
    return kept, dropped


# -- near: shingles, signatures, LSH --------------------------------------------------------------


def simplify_text(text: str) -> str:
    """datatrove's ``simplify_text``: lowercase, numbers -> 0, no punctuation or accents.

    >>> simplify_text("Été 2024: the  Price was $1,234.56!")  # "1,234" and "56" are two numbers
    'ete 0 the price was 0 0'
    """
    text = _NUMBERS.sub("0", text.lower()).translate(_punctuation_to_space())
    text = " ".join(text.split())  # str.split() splits on exactly the whitespace that \s matches
    if not text.isascii():  # dropping combining marks after NFD removes accents
        text = _MARKS.sub("", unicodedata.normalize("NFD", text))
    return text


def shingles(text: str, n: int = 5) -> list[str]:
    """The word n-grams of the simplified text (all its words as one, if it has fewer than n).

    >>> shingles("One, two; three four five six!", n=5)
    ['one two three four five', 'two three four five six']
    >>> shingles("Too short", n=5)
    ['too short']
    """
    words = simplify_text(text).split()
    if len(words) < n:
        return [" ".join(words)]
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def jaccard(a: str, b: str, n: int = 5) -> float:
    """Jaccard similarity of two texts' shingle sets: |A & B| / |A | B|.

    >>> jaccard("a b c d e f g", "a b c d e f x")
    0.5
    """
    sa, sb = set(shingles(a, n)), set(shingles(b, n))
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def candidate_probability(s: float, bands: int = 14, rows: int = 8) -> float:
    """Chance that two documents of Jaccard similarity ``s`` share at least one LSH bucket.

    Each band matches with probability ``s**rows`` (all its minima agree); a pair is a candidate
    unless all ``bands`` bands miss.

    >>> round(candidate_probability(0.8), 3), round(candidate_probability(0.5), 3)
    (0.924, 0.053)
    """
    return 1.0 - (1.0 - s**rows) ** bands


class _UnionFind:
    """Disjoint sets over 0..n-1 whose root is always the smallest index (the first document)."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


class MinHasher:
    """MinHash signatures and LSH clustering with FineWeb's settings (14 bands x 8 rows, 5-grams).

    >>> mh = MinHasher()
    >>> a = "the quick brown fox jumps over the lazy dog " * 20
    >>> bool((mh.signature(a) == mh.signature(a.upper())).all())  # case is simplified away
    True
    """

    def __init__(self, num_hashes: int = 112, bands: int = 14, rows: int = 8, ngram: int = 5, seed: int = 1):
        if bands * rows != num_hashes:
            raise ValueError(f"bands x rows must equal num_hashes: {bands} x {rows} != {num_hashes}")
        self.num_hashes, self.bands, self.rows, self.ngram, self.seed = num_hashes, bands, rows, ngram, seed
        # datatrove's draw (same seed -> same 112 maps -> signatures comparable with FineWeb's tools)
        gen = np.random.RandomState(seed)
        self.a = gen.randint(1, MERSENNE_61, dtype=np.uint64, size=num_hashes)  # (H,)
        self.b = gen.randint(0, MERSENNE_61, dtype=np.uint64, size=num_hashes)  # (H,)

    def shingle_hashes(self, text: str) -> np.ndarray:
        """The 64-bit hash of each distinct shingle: uint64 array of shape (S,).

        The same values as ``hash64`` over :func:`shingles`, computed faster: the simplified text
        is encoded once and each shingle is a slice of those bytes (words are separated by one
        space, so a slice from word i to word i+n-1 is exactly their join). Duplicate shingles
        are hashed once: the minimum over a set does not change.
        """
        n = self.ngram
        words = simplify_text(text).split()
        if len(words) < n:
            return np.array([hash64(" ".join(words))], dtype=np.uint64)
        data = " ".join(words).encode("utf-8")
        sizes = (len(w) + 1 for w in words) if data.isascii() else (len(w.encode("utf-8")) + 1 for w in words)
        start = [0, *itertools.accumulate(sizes)]  # byte offset of each word, and one past the end
        pieces = {data[start[i] : start[i + n] - 1] for i in range(len(words) - n + 1)}
        return np.fromiter(map(hash_bytes, pieces), dtype=np.uint64, count=len(pieces))

    def signature_of_hashes(self, hashes: np.ndarray) -> np.ndarray:
        """Minimum of every affine map over the shingle hashes: uint64 array of shape (H,)."""
        if hashes.size == 0:
            raise ValueError("a signature needs at least one shingle hash")
        mapped = np.multiply.outer(hashes, self.a)  # (S, H) a*x, wrapping modulo 2**64 like datatrove
        mapped += self.b  # in place: these three lines are most of the time, so no temporaries
        np.remainder(mapped, MERSENNE_61, out=mapped)
        return mapped.min(axis=0)  # (H,)

    def signature(self, text: str) -> np.ndarray:
        """The text's MinHash signature: uint64 array of shape (num_hashes,), values < 2**61 - 1."""
        return self.signature_of_hashes(self.shingle_hashes(text))

    def signatures(self, texts: list[str]) -> np.ndarray:
        """Signatures of many texts: uint64 array of shape (N, num_hashes)."""
        out = np.empty((len(texts), self.num_hashes), dtype=np.uint64)
        for i, text in enumerate(texts):
            out[i] = self.signature(text)
        return out

    def band_keys(self, sigs: np.ndarray) -> np.ndarray:
        """One bucket label per (document, band): int array of shape (N, bands).

        Two documents get the same label in band ``k`` exactly when their ``rows`` minima in that
        band are all equal.
        """
        n = sigs.shape[0]
        labels = np.empty((n, self.bands), dtype=np.int64)
        for k in range(self.bands):
            band = np.ascontiguousarray(sigs[:, k * self.rows : (k + 1) * self.rows])  # (N, rows)
            rows_as_bytes = band.view(np.dtype((np.void, band.dtype.itemsize * self.rows))).ravel()  # (N,)
            labels[:, k] = np.unique(rows_as_bytes, return_inverse=True)[1].ravel()
        return labels

    def clusters(self, sigs: np.ndarray) -> np.ndarray:
        """For each document, the index of the first document of its cluster: shape (N,)."""
        n = sigs.shape[0]
        uf = _UnionFind(n)
        if n:
            labels = self.band_keys(sigs)
            for k in range(self.bands):
                # first[l] = smallest document index in bucket l of this band
                _, first = np.unique(labels[:, k], return_index=True)
                leaders = first[labels[:, k]]  # (N,)
                for i in np.nonzero(leaders != np.arange(n))[0]:
                    uf.union(int(i), int(leaders[i]))
        return np.array([uf.find(i) for i in range(n)], dtype=np.int64)

    def near_dedup(self, docs: list[dict], key: str = "text") -> tuple[list[dict], list[dict]]:
        """Keep the first document of each MinHash cluster; the rest are dropped (see module doc)."""
        for i, doc in enumerate(docs):
            if key not in doc:
                raise KeyError(f"document {i} (id {_doc_id(doc, i)!r}) has no {key!r} field")
        roots = self.clusters(self.signatures([d[key] for d in docs]))
        kept, dropped = [], []
        for i, (doc, root) in enumerate(zip(docs, roots)):
            if root == i:
                kept.append(doc)
            else:
                dropped.append({**doc, "duplicate_of": _doc_id(docs[root], int(root))})
        return kept, dropped


def near_dedup(docs: list[dict], key: str = "text", hasher: MinHasher | None = None) -> tuple[list[dict], list[dict]]:
    """MinHash near-dedup with FineWeb's settings (or ``hasher``'s): ``(kept, dropped)``.

    >>> text = "It was the best of times, it was the worst of times, it was the age of wisdom. " * 5
    >>> kept, dropped = near_dedup([{"id": 1, "text": text}, {"id": 2, "text": text + " The end."}])
    >>> [d["id"] for d in kept], [d["duplicate_of"] for d in dropped]
    ([1], [1])
    """
    return (hasher or MinHasher()).near_dedup(docs, key)


def benchmark_minhash(n_docs: int = 2000, doc_bytes: int = 3000, seed: int = 0) -> dict:
    """Signatures per second on one core, for ``n_docs`` English documents of ~``doc_bytes``.

    Documents are windows of Shakespeare and standard-library docstrings (``llmkb.corpus``).
    Returns ``{"docs", "mean_bytes", "seconds", "docs_per_s", "mb_per_s", "hash"}``; the data
    page reports it, and ``OMP_NUM_THREADS=1`` keeps numpy on one core.
    """
    texts = english_windows(n_docs, doc_bytes, seed)
    hasher = MinHasher()
    hasher.signature(texts[0])  # warm-up
    start = time.perf_counter()
    hasher.signatures(texts)
    seconds = time.perf_counter() - start
    total = sum(len(t.encode("utf-8")) for t in texts)
    return {
        "docs": len(texts),
        "mean_bytes": round(total / len(texts)),
        "seconds": round(seconds, 3),
        "docs_per_s": round(len(texts) / seconds),
        "mb_per_s": round(total / seconds / 1e6, 2),
        "hash": HASH_NAME,
    }


def english_windows(n_docs: int, doc_bytes: int = 3000, seed: int = 0) -> list[str]:
    """``n_docs`` texts of about ``doc_bytes`` each, cut from the English part of llmkb's corpus.

    Shakespeare's scenes and the standard library's docstrings are read as one stream of words
    and cut into consecutive, non-overlapping windows, which are then shuffled with ``seed``; two
    windows share a 5-gram only where the sources themselves repeat text. There is room for
    about 7 MB of windows.
    """
    import random

    from llmkb.corpus import shakespeare_scenes, stdlib_docstrings

    words_per_doc = max(1, doc_bytes // 6)  # English averages ~6 bytes per word with its space
    need = n_docs * words_per_doc
    words: list[str] = []
    for source in (shakespeare_scenes(), stdlib_docstrings()):
        for doc in source:
            words.extend(doc["text"].split())
            if len(words) >= need:
                break
        if len(words) >= need:
            break
    if len(words) < need:
        raise ValueError(
            f"the English corpus has {len(words):,} words, not the {need:,} "
            f"that {n_docs} windows of {doc_bytes} bytes need"
        )
    texts = [" ".join(words[i : i + words_per_doc]) for i in range(0, need, words_per_doc)]
    random.Random(seed).shuffle(texts)
    return texts
