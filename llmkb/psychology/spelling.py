"""Spelling and letter counting: questions about the corpus's words, split by how many tokens each word is.

In: the texts of the data stage's kept documents (``runs/<run>/data/train.jsonl``) and the run's tokenizer.
Out: :func:`corpus_words` (the lowercase words the corpus uses often), :func:`token_count` (how many
tokens the tokenizer cuts a word into, as it appears in a sentence: after a space),
:func:`letter_questions` (for each word a spelling question, answered one letter per token, and a
"how many times does x appear" question about one of its letters) and :func:`scores` (the share
right, by kind of question and by one-token / several-token words, with :func:`letters_in_place` as
partial credit for spellings).

A model sees ids, not letters. Whatever it knows about the letters inside a token it has to learn
from examples, token by token; a word that is one token gives no smaller pieces to build from, a
word of several tokens is the spellings of its pieces put together.
"""

from __future__ import annotations

import collections
import random
import re
from collections.abc import Iterable

WORD = re.compile(r"\b[a-z]{3,9}\b")  # lowercase words of 3 to 9 letters, the kind of word one asks to spell


def corpus_words(texts: Iterable[str], min_count: int = 3) -> list[str]:
    """Lowercase words of 3-9 letters used at least ``min_count`` times in ``texts``, sorted.

    Examples:
        >>> corpus_words(["the cat and the dog and the cat.", "Cat"], min_count=2)
        ['and', 'cat', 'the']
    """
    counts: collections.Counter = collections.Counter()
    for text in texts:
        counts.update(WORD.findall(text))
    return sorted(w for w, c in counts.items() if c >= min_count)


def token_count(tokenizer, word: str) -> int:
    """How many tokens ``word`` is inside a sentence (with the space before it, as the questions ask it)."""
    return len(tokenizer.encode(" " + word, add_special_tokens=False))


def letter_questions(words: list[str], seed: int = 0) -> list[dict]:
    """Two chat records per word: spell it (letters separated by spaces), and count one of its letters.

    The counted letter is drawn from the word, as in the "r's in strawberry" question.

    Examples:
        >>> [r["messages"][1]["content"] for r in letter_questions(["berry"], seed=1)]
        ['b e r r y', '2']
    """
    rng = random.Random(f"psychology:letters:{seed}")
    records = []
    for word in words:
        letter = rng.choice(word)
        records += [
            {
                "type": "spell",
                "meta": {"word": word},
                "messages": [
                    {"role": "user", "content": f"Spell {word}."},
                    {"role": "assistant", "content": " ".join(word)},
                ],
            },
            {
                "type": "count",
                "meta": {"word": word, "letter": letter},
                "messages": [
                    {"role": "user", "content": f"How many times does {letter} appear in {word}?"},
                    {"role": "assistant", "content": str(word.count(letter))},
                ],
            },
        ]
    return records


def letters_in_place(answer: str, reply: str) -> float:
    """Share of the answer's letters that the reply has at the same place (partial credit for a spelling).

    Examples:
        >>> round(letters_in_place("c o n c e r n", "c o n m o r e r"), 3)  # c, o, n and the second r
        0.571
    """
    letters = answer.split()
    return sum(a == b for a, b in zip(letters, reply.split())) / len(letters)


def scores(records: list[dict], replies: list[str], tokens: dict[str, int]) -> dict[str, dict]:
    """Per ``"spell" / "count"`` and ``"one token" / "several tokens"``: the share of exact answers and the count.

    Spellings also get ``letters``: the mean :func:`letters_in_place`, which shows a half-right spelling.

    Examples:
        >>> rs = letter_questions(["cat", "berry"])
        >>> scores(rs, ["c a t", "1", "b e r y", "2"],
        ...        {"cat": 1, "berry": 2})["spell"]  # doctest: +NORMALIZE_WHITESPACE
        {'one token': {'right': 1.0, 'questions': 1, 'letters': 1.0},
         'several tokens': {'right': 0.0, 'questions': 1, 'letters': 0.6}}
    """
    right: dict = collections.defaultdict(list)
    partial: dict = collections.defaultdict(list)
    for record, reply in zip(records, replies, strict=True):
        key = record["type"], "one token" if tokens[record["meta"]["word"]] == 1 else "several tokens"
        answer = record["messages"][1]["content"]
        right[key].append(reply.strip() == answer)
        if record["type"] == "spell":
            partial[key].append(letters_in_place(answer, reply))
    out: dict = collections.defaultdict(dict)
    for (kind, split), hits in sorted(right.items(), key=lambda kv: (kv[0][0] != "spell", kv[0][1] != "one token")):
        out[kind][split] = {"right": round(sum(hits) / len(hits), 4), "questions": len(hits)}
        if partial[kind, split]:
            out[kind][split]["letters"] = round(sum(partial[kind, split]) / len(hits), 4)
    return dict(out)
