"""A model + held-out SFT conversations -> per data type: did it answer in the format, was it right?

In: a model (our GPT or any HF causal LM), its tokenizer, and records of :mod:`llmkb.sft.data`.
Out: :func:`score` gives, per type, the share of replies that follow the format the data taught
and the share that are right by :func:`llmkb.sft.data.check_answer` (facts present, sum correct,
code passing its cases), plus every reply for the page.

Each record is asked as it would be at inference: its messages up to the last user message,
rendered with the chat template and the assistant cue, answered greedily until ``<|im_end|>``.
In a multi-turn record the earlier turns are the reference answers, so only the last one is scored.
"""

from __future__ import annotations

import json
import re

import torch

from llmkb.inference.chat import render
from llmkb.inference.generate import GenerationConfig, decode, eos_ids_of, generate_ids, left_pad
from llmkb.sft.data import check_answer
from llmkb.tokenizer.ids import encode

TURN_END = "<|im_end|>"


def replies_with_ids(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int = 96, batch_size: int = 32,
                     temperature: float = 0.0, seed: int | None = None) -> list[dict]:  # fmt: skip
    """Each conversation's reply as ``{"prompt_ids", "reply_ids", "text", "ended"}``.

    ``reply_ids`` are the generated tokens up to and including the end token if there was one (the
    policy chose to stop, which RL must credit); ``text`` stops before it; ``ended`` is True only
    for ``<|im_end|>`` (a base model that writes ``<|endoftext|>`` or runs to the limit has not
    learned the turn format). Greedy by default; with ``temperature > 0`` sampled, and ``seed``
    makes it repeatable (each batch draws from ``seed + its first index``).
    """
    eos_ids = eos_ids_of(tokenizer)
    im_end = tokenizer.convert_tokens_to_ids(TURN_END)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    out = []
    for start in range(0, len(conversations), batch_size):
        config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature,
                                  seed=None if seed is None else seed + start)  # fmt: skip
        rows = [encode(tokenizer, render(tokenizer, c))[0].tolist() for c in conversations[start : start + batch_size]]
        input_ids, attention_mask = left_pad(rows, pad_id)
        with torch.no_grad():
            new = generate_ids(model, input_ids, attention_mask, config, eos_ids, pad_id)
        for prompt_ids, row in zip(rows, new.tolist(), strict=True):
            end = next((j for j, t in enumerate(row) if t in eos_ids), len(row))
            out.append({"prompt_ids": prompt_ids, "reply_ids": row[: end + 1], "text": decode(tokenizer, row[:end]),
                        "ended": end < len(row) and row[end] == im_end})  # fmt: skip
    return out


def respond(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int = 96, batch_size: int = 32,
            temperature: float = 0.0, seed: int | None = None) -> list[tuple[str, bool]]:  # fmt: skip
    """Replies to each conversation as ``(text, ended)``; see :func:`replies_with_ids`."""
    replies = replies_with_ids(model, tokenizer, conversations, max_new_tokens, batch_size, temperature, seed)
    return [(r["text"], r["ended"]) for r in replies]


def replies_per_prompt(model, tokenizer, conversations: list[list[dict]], samples: int = 0, temperature: float = 1.0,
                       seed: int = 0, max_new_tokens: int = 96) -> list[list[str]]:  # fmt: skip
    """Each conversation's reply texts: one greedy reply (``samples=0``) or ``samples`` drawn at ``temperature``.

    Sampling several replies per question shows what greedy decoding hides: a model can give the
    right answer greedily and still often give a wrong one when sampled (what RL and interrogation look at).
    """
    copies = max(samples, 1)
    replies = respond(model, tokenizer, [c for c in conversations for _ in range(copies)], max_new_tokens,
                      temperature=temperature if samples else 0.0, seed=seed if samples else None)  # fmt: skip
    texts = [text for text, _ in replies]
    return [texts[i : i + copies] for i in range(0, len(texts), copies)]


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
