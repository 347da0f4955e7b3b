"""An SFT model + questions -> several sampled replies each, ranked by a scripted labeler -> preference pairs.

In: the SFT model, its tokenizer and SFT records of the ``instruction`` type (a question about one
fact of a person, see :mod:`llmkb.sft.data`). Out: :func:`build_preferences` gives pairs
``{"prompt": [messages], "chosen": str, "rejected": str, "margin": float}`` and the cost in labeler
judgements; :func:`true_score` is the labeler itself.

RLHF replaces the human in the RL loop by a model of the human, trained on the human's rankings.
To *show* what that costs and where it breaks, the human here is a program whose preferences are
written down (:data:`RULES`): we can ask it about any reply, at any time, for free, so we can watch
the reward model (a lossy copy of it) and the real thing drift apart during PPO. A real labeler
ranks the replies to a prompt from best to worst; the ranking of k replies gives up to k(k-1)/2
pairs of "this one is better than that one", which is what the reward model trains on.
"""

from __future__ import annotations

import re
from collections import Counter

from llmkb.inference.chat import respond
from llmkb.sft.data import check_answer
from llmkb.sft.evaluate import prompt_of

#: What the scripted labeler values, and by how much. It prefers a right answer above all, then a
#: reply that ends its turn, names the person asked about and stays short; it dislikes babble.
RULES = {
    "right": 2.0,  # the fact asked for is in the reply (llmkb.sft.data.check_answer)
    "ended": 1.0,  # the reply closed its turn with <|im_end|>
    "names_person": 0.5,  # the person asked about is named (the question's subject, copied right)
    "per_word_over_15": -0.1,  # each word past the fifteenth
    "babble": -2.0,  # a word said three times or more ("the the the")
}


def babbles(text: str) -> bool:
    """Whether some word occurs three times or more (case and punctuation ignored).

    >>> babbles("the the the cat"), babbles("Ka Lo was born in 1801.")
    (True, False)
    """
    words = re.findall(r"[a-z0-9']+", text.lower())
    return bool(words) and Counter(words).most_common(1)[0][1] >= 3


def true_score(record: dict, reply: str, ended: bool) -> float:
    """The scripted labeler's score of ``reply`` to ``record``'s question, by :data:`RULES`.

    Examples:
        >>> r = {"type": "instruction", "meta": {"name": "Ka Lo", "answer": "1801"},
        ...      "messages": [{"role": "user", "content": "When was Ka Lo born?"},
        ...                   {"role": "assistant", "content": "Ka Lo was born in 1801."}]}
        >>> true_score(r, "Ka Lo was born in 1801.", True)  # right, ended, named: 2 + 1 + 0.5
        3.5
        >>> true_score(r, "the the the", False)
        -2.0
    """
    meta = record["meta"]
    words = len(reply.split())
    score = RULES["right"] * check_answer(record, reply) + RULES["ended"] * ended
    score += RULES["names_person"] * (meta.get("name", "\0") in reply)
    score += RULES["per_word_over_15"] * max(0, words - 15) + RULES["babble"] * babbles(reply)
    return round(score, 4)


def rank_to_pairs(prompt: list[dict], replies: list[str], scores: list[float]) -> list[dict]:
    """Every pair of replies with different scores, the better one as ``chosen`` (ties say nothing).

    Examples:
        >>> pairs = rank_to_pairs([], ["a", "b", "c"], [1.0, 3.0, 1.0])
        >>> [(p["chosen"], p["rejected"], p["margin"]) for p in pairs]
        [('b', 'a', 2.0), ('b', 'c', 2.0)]
    """
    pairs = []
    for i in range(len(replies)):
        for j in range(i + 1, len(replies)):
            if scores[i] == scores[j] or replies[i] == replies[j]:
                continue
            win, lose = (i, j) if scores[i] > scores[j] else (j, i)
            pairs.append(
                {
                    "prompt": prompt,
                    "chosen": replies[win],
                    "rejected": replies[lose],
                    "margin": round(scores[win] - scores[lose], 4),
                }
            )
    return pairs


def build_preferences(
    model, tokenizer, records: list[dict], k: int = 5, temperature: float = 1.0, seed: int = 0, max_new_tokens: int = 48
) -> tuple[list[dict], dict]:
    """Sample ``k`` replies per question, score them with the labeler, turn each ranking into pairs.

    Returns the pairs and what they cost: ``judgements`` (replies the labeler scored, k per prompt:
    the notes' "1,000 prompts x 5 rollouts" arithmetic), the mean true score of the samples and the
    samples themselves (``groups``: per question, k pairs of reply and score).
    """
    if not records:
        raise ValueError("no prompts to sample replies for")
    if k < 2:
        raise ValueError(f"k must be at least 2 to rank replies against each other, got {k}")
    prompts = [prompt_of(r) for r in records]
    # k draws per prompt: the prompts repeated k times, one batch of sampling per block.
    replies = respond(
        model, tokenizer, [p for p in prompts for _ in range(k)], max_new_tokens, temperature=temperature, seed=seed
    )
    pairs, scores_all, groups = [], [], []
    for n, (record, prompt) in enumerate(zip(records, prompts, strict=True)):
        batch = replies[n * k : (n + 1) * k]
        scores = [true_score(record, text, ended) for text, ended in batch]
        scores_all += scores
        groups.append([(text, score) for (text, _), score in zip(batch, scores, strict=True)])
        pairs += rank_to_pairs(prompt, [text for text, _ in batch], scores)
    return pairs, {
        "prompts": len(records),
        "judgements": len(records) * k,
        "pairs": len(pairs),
        "mean_true_score": round(sum(scores_all) / len(scores_all), 4),
        "groups": groups,  # per question, its k (reply, labeler's score)
    }


def win_rate(model, baseline, tokenizer, records: list[dict], max_new_tokens: int = 48) -> dict:
    """How often ``model``'s greedy reply scores higher with the labeler than ``baseline``'s, on the same questions.

    Returns the shares of wins, ties and losses and both mean true scores. Ties count half in
    ``win_rate`` (the usual convention in preference evaluations).
    """
    prompts = [prompt_of(r) for r in records]
    ours = respond(model, tokenizer, prompts, max_new_tokens)
    theirs = respond(baseline, tokenizer, prompts, max_new_tokens)
    a = [true_score(r, t, e) for r, (t, e) in zip(records, ours, strict=True)]
    b = [true_score(r, t, e) for r, (t, e) in zip(records, theirs, strict=True)]
    n = len(records)
    wins, ties = sum(x > y for x, y in zip(a, b)), sum(x == y for x, y in zip(a, b))
    return {
        "win": round(wins / n, 4),
        "tie": round(ties / n, 4),
        "loss": round((n - wins - ties) / n, 4),
        "win_rate": round((wins + ties / 2) / n, 4),
        "true_score": round(sum(a) / n, 4),
        "baseline_true_score": round(sum(b) / n, 4),
    }
