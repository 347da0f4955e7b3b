"""A model + held-out SFT conversations -> per data type: did it answer in the format, was it right?

In: a model (our GPT or any HF causal LM), its tokenizer, and records of :mod:`llmkb.sft.data`.
Out: :func:`score` gives, per type, the share of replies that follow the format the data taught
and the share that are right by :func:`llmkb.sft.data.check_answer` (facts present, sum correct,
code passing its cases), plus every reply for the page.

Each record is asked as it would be at inference: its messages up to the last user message,
rendered with the chat template and the assistant cue, answered greedily until ``<|im_end|>``
(:func:`llmkb.inference.chat.respond`).
In a multi-turn record the earlier turns are the reference answers, so only the last one is scored.
"""

from __future__ import annotations

import json
import re

from llmkb.inference.chat import respond
from llmkb.sft.data import check_answer


def prompt_of(record: dict) -> list[dict]:
    """The record's messages before its last assistant message (what the model is asked)."""
    messages = record["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last]


def _meta(record: dict) -> dict:
    return record["meta"] if isinstance(record["meta"], dict) else json.loads(record["meta"])


def follows_format(record: dict, text: str, ended: bool) -> bool:
    """Whether a reply has the shape the SFT data taught for the record's type, and closed its turn.

    Facts and chats: one short sentence. Entries: a paragraph (12 words or more). Code: a
    ``def`` for function tasks, a quoted string or a number for the puzzles. Sums: ``Answer: N``
    on the last line.

    Examples:
        >>> r = {"type": "reasoning", "meta": {"answer": "12"}, "messages": []}
        >>> follows_format(r, "Ones: 5 + 7 = 12, write 2, carry 1.\\nAnswer: 12", True)
        True
        >>> follows_format(r, "Answer: 12", False)  # never closed its turn
        False
    """
    if not ended or not text.strip():
        return False
    kind, meta = record["type"], _meta(record)
    if kind in ("instruction", "conversation"):
        return len(text.split()) <= 40 and re.fullmatch(r"[^.?!]+[.?!]", text.strip()) is not None
    if kind == "text_generation":
        return len(text.split()) >= 12 and text.strip().endswith(".")
    if kind == "code":
        check = meta["check"]
        return "def " in text if check["kind"] == "function" else re.search(r'"[^"]*"|\d', text) is not None
    if kind == "reasoning":
        return re.search(r"Answer: -?\d+\s*$", text) is not None
    return True  # identity: any closed reply


def score(model, tokenizer, records: list[dict], max_new_tokens: int = 96) -> dict:
    """Per type: ``{"n", "format", "correct"}`` (shares of the records) and ``"replies"`` for the page."""
    replies = respond(model, tokenizer, [prompt_of(r) for r in records], max_new_tokens)
    by_type: dict[str, dict] = {}
    for record, (text, ended) in zip(records, replies, strict=True):
        row = by_type.setdefault(record["type"], {"n": 0, "format": 0, "correct": 0, "replies": []})
        row["n"] += 1
        row["format"] += follows_format(record, text, ended)
        row["correct"] += check_answer(record, text)
        row["replies"].append({"prompt": prompt_of(record)[-1]["content"], "reply": text, "ended": ended})
    for row in by_type.values():
        row["format"] = round(row["format"] / row["n"], 4)
        row["correct"] = round(row["correct"] / row["n"], 4)
    return by_type
