"""Questions about people the model read often, once or never -> how it answers, and refusals that fix it.

In: the mini-web's manifest (its invented people, each ``frequent``: facts on 30 pages, ``once``: on
one page, ``never``: on none), a chat model and its tokenizer. Out: :func:`questions` (one
question per person and fact), :func:`classify` / :func:`answer_kinds` (each reply is ``right``,
``refused`` or ``made_up``), :func:`interrogate` (sample the model several times per question and
call a person unknown when it is rarely right), :func:`refusals` (conversations that answer
"I don't know" about those people) and :func:`rates` (shares of each kind).

Hallucination, in the notes' terms: fine-tuning taught the model the *shape* of a confident answer
("X was born in 1834."), and it produces that shape whether or not anything in its weights backs
it. Asked about someone it never read about, it does not say so: it makes a plausible person up.
The fix the notes describe (Llama 3 did it at scale) is to find out what the model does not know
by asking it, and to add conversations where the right answer to such questions is a refusal:
the model then learns to connect "I have nothing on this name" to "I don't know".
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from llmkb.inference.chat import replies_per_prompt
from llmkb.sft.data import check_answer, instruction_pairs
from llmkb.sft.evaluate import prompt_of

FREQUENCIES = ("frequent", "once", "never")
# Varied refusals, each naming the person (so the answer is about *this* question, not a reflex).
REFUSALS = [
    "I'm sorry, I don't know who {name} is.",
    "I don't know anything about {name}.",
    "I have no information about {name}, so I can't say.",
]
REFUSED = re.compile(r"\b(I don't know|I do not know|I have no information|I can't say)\b", re.IGNORECASE)


def people(manifest: dict | str | Path) -> dict[str, list[dict]]:
    """The manifest's invented people by how often the mini-web mentions them:
    ``{"frequent": [...], "once": ..., "never": ...}``."""
    if not isinstance(manifest, dict):
        manifest = json.loads(Path(manifest).read_text(encoding="utf-8"))
    groups = {f: [e for e in manifest.get("entities", []) if e.get("frequency") == f] for f in FREQUENCIES}
    if not all(groups.values()):
        raise ValueError(
            f"the manifest needs people of every frequency; it has { ({f: len(g) for f, g in groups.items()}) }"
        )
    return groups


def questions(entities: list[dict], per_person: int = 2, seed: int = 0) -> list[dict]:
    """``per_person`` instruction records (question + reference answer) for each of ``entities``.

    Examples:
        >>> e = {"name": "Ka Lo", "facts": {"born": 1801, "city": "Vemora", "occupation": "astronomer",
        ...      "relation": "rival", "related_to": "Zu Ba"}}
        >>> [r["messages"][0]["content"] for r in questions([e], per_person=2)]
        ['In which city was Ka Lo born?', 'What was the occupation of Ka Lo?']
    """
    records = []
    for entity in entities:
        records += instruction_pairs([entity], seed=seed, n=per_person)
    return records


def classify(record: dict, reply: str) -> str:
    """``"refused"`` if the reply says it does not know, ``"right"`` if it has the fact, else ``"made_up"``.

    Examples:
        >>> r = {"type": "instruction", "meta": {"name": "Ka Lo", "answer": "1801"}, "messages": [
        ...     {"role": "user", "content": "When was Ka Lo born?"},
        ...     {"role": "assistant", "content": "Ka Lo was born in 1801."}]}
        >>> [classify(r, t) for t in ("Ka Lo was born in 1801.", "I don't know who Ka Lo is.",
        ...                           "Ka Lo was born in 1790.")]
        ['right', 'refused', 'made_up']
    """
    if REFUSED.search(reply):
        return "refused"
    return "right" if check_answer(record, reply) else "made_up"


def answer_kinds(
    model,
    tokenizer,
    records: list[dict],
    samples: int = 0,
    temperature: float = 1.0,
    seed: int = 0,
    max_new_tokens: int = 48,
) -> list[list[str]]:
    """For each record, the kinds of the model's replies: one greedy reply, or ``samples`` sampled ones."""
    replies = replies_per_prompt(
        model, tokenizer, [prompt_of(r) for r in records], samples, temperature, seed, max_new_tokens
    )
    return [[classify(record, text) for text in texts] for record, texts in zip(records, replies, strict=True)]


def rates(kinds: list[list[str]]) -> dict[str, float]:
    """Share of replies of each kind.

    Examples:
        >>> rates([["right"], ["made_up"], ["made_up"], ["refused"]])
        {'right': 0.25, 'refused': 0.25, 'made_up': 0.5}
    """
    flat = [k for row in kinds for k in row]
    return {k: round(flat.count(k) / max(len(flat), 1), 4) for k in ("right", "refused", "made_up")}


def interrogate(
    model, tokenizer, records: list[dict], samples: int = 4, min_right: int = 2, seed: int = 0
) -> list[bool]:
    """Whether the model knows each record's fact: at least ``min_right`` of ``samples`` sampled replies right.

    One greedy reply can be right by luck (a common year, a frequent city); a fact the model knows
    survives sampling, a made-up one comes out different every time.
    """
    return [row.count("right") >= min_right for row in answer_kinds(model, tokenizer, records, samples, seed=seed)]


def refusals(records: list[dict], seed: int = 0) -> list[dict]:
    """The same questions, answered with a refusal naming the person (``type`` ``"refusal"``).

    Examples:
        >>> r = {"type": "instruction", "meta": {"name": "Ka Lo", "answer": "1801"}, "messages": [
        ...     {"role": "user", "content": "When was Ka Lo born?"},
        ...     {"role": "assistant", "content": "Ka Lo was born in 1801."}]}
        >>> refusals([r])[0]["messages"][1]["content"]
        "I don't know anything about Ka Lo."
    """
    rng = random.Random(f"psychology:refusals:{seed}")
    out = []
    for r in records:
        question = r["messages"][0]
        reply = rng.choice(REFUSALS).format(name=r["meta"]["name"])
        out.append(
            {
                "type": "refusal",
                "messages": [question, {"role": "assistant", "content": reply}],
                "meta": {**r["meta"], "refusal": True},
            }
        )
    return out
