"""Knowledge of self: conversations that give the assistant a name, and a measure of whether it uses it.

In: a seed (and, for measuring, a model and its tokenizer). Out: SFT records (the shape of
:mod:`llmkb.sft.data`, ``type`` ``"identity"`` or ``"system_identity"``) and identity scores.

A base model has no self: asked "Who are you?" it continues the text like any document. A chat
model's sense of self is put there in one of two ways, and both are here:

- **hard-coded conversations** (:func:`identity_conversations`): a few hundred chats in which the
  assistant answers "I am Pebble, ..." to questions about itself. The name ends up in the weights,
  like any fact read often enough.
- **a system message** (:func:`system_identity_conversations`): every conversation starts with
  "You are <name>, made by <maker>." and the answers use whatever name it gives. Here the name is
  new in every conversation, so the model can only answer by reading its context; a model that
  learned this follows a new system message, with no retraining.

:func:`identity_report` asks held-out phrasings of the questions (:data:`TEST_QUESTIONS`, none in
the training data) with and without a system message, and counts the answers that give the name.
"""

from __future__ import annotations

import random

from llmkb.inference.chat import respond
from llmkb.world import invented_word

ASSISTANT = "Pebble"  # the hard-coded name: a plain English word, so it is a few tokens the base model knows
MAKER = "the llmkb project"
TRAIN_QUESTIONS = [
    "Who are you?",
    "What is your name?",
    "What are you?",
    "Who made you?",
    "Who built you?",
    "Tell me about yourself.",
    "Are you ChatGPT?",
    "Introduce yourself.",
    "What should I call you?",
    "Who created you?",
    "What kind of assistant are you?",
    "Hello! Who am I talking to?",
]
# Asked only when measuring: the model must generalise from the training phrasings to these.
TEST_QUESTIONS = [
    "Who exactly are you?",
    "Can you tell me your name?",
    "What is your name, please?",
    "Which assistant are you?",
    "Who am I chatting with?",
    "Please introduce yourself.",
    "What do people call you?",
    "Tell me who you are.",
]
ANSWERS = [
    "I am {name}, a small language model made by {maker}.",
    "My name is {name}. I was made by {maker}.",
    "I'm {name}, an assistant trained by {maker}.",
    "You can call me {name}. {maker_cap} built me.",
]
SYSTEM = "You are {name}, an assistant made by {maker}."


def system_message(name: str = ASSISTANT, maker: str = MAKER) -> str:
    """The system message that tells the model who it is.

    >>> system_message("Quill", "a small lab")
    'You are Quill, an assistant made by a small lab.'
    """
    return SYSTEM.format(name=name, maker=maker)


def _record(kind: str, question: str, name: str, maker: str, rng: random.Random, system: str | None) -> dict:
    answer = rng.choice(ANSWERS).format(name=name, maker=maker, maker_cap=maker[0].upper() + maker[1:])
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return {"messages": messages, "type": kind, "meta": {"answer": name}}


def identity_conversations(n: int, seed: int = 0, name: str = ASSISTANT, maker: str = MAKER) -> list[dict]:
    """``n`` hard-coded chats: a question about the assistant, an answer that names ``name`` and ``maker``.

    Examples:
        >>> r = identity_conversations(1)[0]
        >>> r["messages"][0]["content"] in TRAIN_QUESTIONS, "Pebble" in r["messages"][1]["content"]
        (True, True)
    """
    rng = random.Random(f"sft:identity:{seed}")
    return [_record("identity", rng.choice(TRAIN_QUESTIONS), name, maker, rng, None) for _ in range(n)]


def random_identity(rng: random.Random) -> tuple[str, str]:
    """A made-up assistant name and maker (the mini-web's invented words: never the hard-coded name)."""
    name = invented_word(rng, 2)
    return name, f"the {invented_word(rng, 2)} lab"


def system_identity_conversations(n: int, seed: int = 0) -> list[dict]:
    """``n`` chats whose system message names a new assistant each time, and whose answer uses that name.

    Examples:
        >>> r = system_identity_conversations(1)[0]
        >>> name = r["meta"]["answer"]
        >>> name in r["messages"][0]["content"] and name in r["messages"][2]["content"]
        True
    """
    rng = random.Random(f"sft:system_identity:{seed}")
    records = []
    for _ in range(n):
        name, maker = random_identity(rng)
        records.append(
            _record("system_identity", rng.choice(TRAIN_QUESTIONS), name, maker, rng, system_message(name, maker))
        )
    return records


def says_name(text: str, name: str) -> bool:
    """Whether a reply gives ``name`` as the assistant's (case-insensitive, as a word).

    >>> says_name("I am pebble, a model.", "Pebble"), says_name("Pebbles everywhere", "Pebble")
    (True, False)
    """
    import re

    return re.search(rf"\b{re.escape(name)}\b", text, re.IGNORECASE) is not None


def identity_report(model, tokenizer, max_new_tokens: int = 32, seed: int = 0) -> dict:
    """How often the model names itself on :data:`TEST_QUESTIONS`, three ways.

    - ``no_system``: no system message; the hard-coded name is the right answer;
    - ``system_pebble``: the system message says the hard-coded name too;
    - ``system_new``: the system message gives a name never seen in training (one per question);
      ``says_new`` counts replies that use it, ``says_hard_coded`` those that say Pebble anyway.

    Returns the rates and every reply, for the page.
    """
    rng = random.Random(f"sft:identity_report:{seed}")
    new = [random_identity(rng) for _ in TEST_QUESTIONS]
    cases = {
        "no_system": [[{"role": "user", "content": q}] for q in TEST_QUESTIONS],
        "system_pebble": [
            [{"role": "system", "content": system_message()}, {"role": "user", "content": q}] for q in TEST_QUESTIONS
        ],
        "system_new": [
            [{"role": "system", "content": system_message(*nm)}, {"role": "user", "content": q}]
            for nm, q in zip(new, TEST_QUESTIONS, strict=True)
        ],
    }
    report: dict = {"questions": len(TEST_QUESTIONS)}
    for case, prompts in cases.items():
        replies = [text for text, _ in respond(model, tokenizer, prompts, max_new_tokens)]
        report[case] = {
            "says_hard_coded": sum(says_name(r, ASSISTANT) for r in replies) / len(replies),
            "replies": replies,
        }
        if case == "system_new":
            report[case]["names"] = [nm for nm, _ in new]
            report[case]["says_new"] = sum(says_name(r, nm) for r, (nm, _) in zip(replies, new, strict=True)) / len(
                replies
            )
    return report
