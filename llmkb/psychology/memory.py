"""The same question answered from the weights or with the facts in the prompt: recollection vs working memory.

In: instruction records about invented people (:func:`llmkb.psychology.hallucination.questions`) and
the people themselves (their facts). Out: :func:`with_passage`, the same records with a sentence
stating the person's facts put before the question, so a model can answer by reading instead of
remembering.

The notes' picture: what a model learned in pretraining is a vague recollection, like a book read
a month ago; what is in its context window is working memory, there to be looked at. For a large
model, pasting the passage turns a shaky recollection into a reliable answer. Reading from the
context is itself a skill (copying a value from a position found by matching a name); the stage
measures whether our small model has it.
"""

from __future__ import annotations

import random

from llmkb.sft.data import fix_articles
from llmkb.world import FACT_TEMPLATES, fact_sentence


def with_passage(records: list[dict], entities: list[dict], seed: int = 0) -> list[dict]:
    """``records`` with the person's facts, as one mini-web sentence, before each question.

    Examples:
        >>> from llmkb.psychology.hallucination import questions
        >>> e = {"name": "Ka Lo", "facts": {"born": 1801, "city": "Vemora", "occupation": "weaver",
        ...      "relation": "rival", "related_to": "Zu Ba"}}
        >>> print(with_passage(questions([e], 1), [e])[0]["messages"][0]["content"])
        Born in 1801 in the city of Vemora, Ka Lo was a weaver and the rival of Zu Ba. In which city was Ka Lo born?
    """
    by_name = {e["name"]: e for e in entities}
    rng = random.Random(f"psychology:passage:{seed}")
    out = []
    for r in records:
        passage = fix_articles(
            fact_sentence(by_name[r["meta"]["name"]], rng.randrange(len(FACT_TEMPLATES)))
        )  # "an engineer"
        question, *rest = r["messages"]
        out.append({**r, "messages": [{**question, "content": f"{passage} {question['content']}"}, *rest]})
    return out
