"""Chatting with a model: messages -> one ChatML prompt -> the assistant's reply, and a terminal REPL.

In: a model, its tokenizer (with the ChatML chat template of :mod:`llmkb.tokenizer.hf`) and a
:class:`Conversation`. Out: the assistant's reply, appended to the conversation (:func:`reply`),
and an interactive loop that streams replies as they are generated (:func:`chat_loop`). For many
conversations at once (evaluations, RL rollouts, the psychology probes), batched replies:
:func:`respond` gives ``(text, ended)`` per conversation, :func:`replies_with_ids` the token ids
too, :func:`replies_per_prompt` one greedy or several sampled replies per conversation.

A chat model is still a next-token predictor. The conversation is rendered into one string,

    <|im_start|>system\\nYou are brief.<|im_end|>\\n<|im_start|>user\\nHi!<|im_end|>\\n<|im_start|>assistant\\n

and the model continues it; the assistant's turn ends when it produces ``<|im_end|>``, the token
it learned (in supervised fine-tuning) to emit at the end of a reply. A base model never learned
that, so it rambles on, possibly starting a new ``<|im_start|>`` turn itself: :func:`reply` stops
there too.

The model sees only its context (128 tokens for our GPT), so the prompt holds as much recent
history as fits, keeping the system message: the oldest turns are left out of the *prompt*, while
the :class:`Conversation` keeps them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import torch

from llmkb.inference.backend import backend_for
from llmkb.inference.generate import GenerationConfig, decode, eos_ids_of, generate, generate_ids, left_pad
from llmkb.inference.generate import stream as stream_text
from llmkb.tokenizer.ids import encode

ROLES = ("system", "user", "assistant", "tool")  # tool: a tool's result (llmkb.psychology.tools)
TURN_START = "<|im_start|>"  # a model that begins a new turn by itself has finished its own
TURN_END = "<|im_end|>"  # the end of a turn: a reply that ends with it closed its turn as SFT taught


def check_messages(messages: list[dict]) -> list[dict]:
    """``messages`` as they are, or a ValueError naming the first bad message by its index."""
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise ValueError(f"message {i} must be a dict with exactly 'role' and 'content', got {message!r}")
        if message["role"] not in ROLES:
            raise ValueError(f"message {i} has the unknown role {message['role']!r}; roles are {', '.join(ROLES)}")
        if not isinstance(message["content"], str) or not message["content"].strip():
            raise ValueError(f"message {i} ({message['role']}) is empty")
    return messages


class Conversation:
    """The messages of one chat, oldest first: ``[{"role": ..., "content": ...}, ...]``.

    Examples:
        >>> chat = Conversation(system="You are brief.")
        >>> chat.add("user", "Hi!")
        >>> [m["role"] for m in chat]
        ['system', 'user']
        >>> chat.add("robot", "beep")
        Traceback (most recent call last):
        ...
        ValueError: message 2 has the unknown role 'robot'; roles are system, user, assistant, tool
    """

    def __init__(self, messages: list[dict] | None = None, system: str | None = None):
        self.messages: list[dict] = []
        if system is not None:
            self.add("system", system)
        for message in messages or []:
            self.messages.append(dict(message))
        check_messages(self.messages)

    def add(self, role: str, content: str) -> None:
        """Append one message; a bad role or an empty content is refused (the message is not added)."""
        check_messages(self.messages + [{"role": role, "content": content}])
        self.messages.append({"role": role, "content": content})

    def __iter__(self):
        return iter(self.messages)

    def __len__(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"Conversation({self.messages!r})"


def _messages(conversation: Conversation | list[dict]) -> list[dict]:
    return check_messages(list(conversation.messages if isinstance(conversation, Conversation) else conversation))


def render(tokenizer, messages: Conversation | list[dict], add_generation_prompt: bool = True) -> str:
    """The conversation as the one string the model continues, through the tokenizer's chat template.

    With ``add_generation_prompt`` the string ends with ``<|im_start|>assistant\\n``: the model's cue
    that the next tokens are the assistant's.
    """
    messages = _messages(messages)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def fit_to_context(tokenizer, messages: list[dict], context: int | None, reserve: int) -> list[dict]:
    """The most recent messages whose prompt leaves ``reserve`` tokens of ``context`` for the reply.

    The oldest messages after the system message go first, then the system message; the last
    message always stays (if it alone does not fit, generation refuses the prompt with its length).
    """
    if context is None:
        return messages
    budget = context - reserve
    kept = list(messages)
    while len(kept) > 1 and len(encode(tokenizer, render(tokenizer, kept))[0]) > budget:
        drop = 1 if kept[0]["role"] == "system" and len(kept) > 2 else 0
        del kept[drop]
    return kept


def reply(
    model, tokenizer, conversation: Conversation, config: GenerationConfig | None = None, stream: bool = False
) -> str | Iterator[str]:
    """The assistant's next message, generated until ``<|im_end|>`` and appended to ``conversation``.

    With ``stream=True`` an iterator of text pieces instead; the message is appended once the
    iterator is exhausted (an interrupted reply is not). The prompt holds as much recent history
    as leaves ``min(max_new_tokens, context // 2)`` tokens for the reply (:func:`fit_to_context`).
    """
    config = config or GenerationConfig()
    config = dataclasses.replace(config, stop_strings=[*config.stop_strings, TURN_START])
    messages = _messages(conversation)
    if not messages or messages[-1]["role"] == "assistant":
        raise ValueError("the conversation must end with a user (or system) message for the assistant to answer")
    context = backend_for(model).context
    reserve = min(config.max_new_tokens, context // 2) if context else 0
    prompt = render(tokenizer, fit_to_context(tokenizer, messages, context, reserve))

    if stream:
        return _append_when_done(stream_text(model, tokenizer, prompt, config), conversation)  # errors raise here
    text = generate(model, tokenizer, prompt, config)[0]
    conversation.add("assistant", text or " ")
    return text


def _append_when_done(pieces: Iterator[str], conversation: Conversation) -> Iterator[str]:
    parts = []
    for piece in pieces:
        parts.append(piece)
        yield piece
    conversation.add("assistant", "".join(parts) or " ")  # an empty reply still takes its turn


def replies_with_ids(
    model,
    tokenizer,
    conversations: list[list[dict]],
    max_new_tokens: int = 96,
    batch_size: int = 32,
    temperature: float = 0.0,
    seed: int | None = None,
) -> list[dict]:
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
        config = GenerationConfig(
            max_new_tokens=max_new_tokens, temperature=temperature, seed=None if seed is None else seed + start
        )
        rows = [encode(tokenizer, render(tokenizer, c))[0].tolist() for c in conversations[start : start + batch_size]]
        input_ids, attention_mask = left_pad(rows, pad_id)
        with torch.no_grad():
            new = generate_ids(model, input_ids, attention_mask, config, eos_ids, pad_id)
        for prompt_ids, row in zip(rows, new.tolist(), strict=True):
            end = next((j for j, t in enumerate(row) if t in eos_ids), len(row))
            out.append(
                {
                    "prompt_ids": prompt_ids,
                    "reply_ids": row[: end + 1],
                    "text": decode(tokenizer, row[:end]),
                    "ended": end < len(row) and row[end] == im_end,
                }
            )
    return out


def respond(
    model,
    tokenizer,
    conversations: list[list[dict]],
    max_new_tokens: int = 96,
    batch_size: int = 32,
    temperature: float = 0.0,
    seed: int | None = None,
) -> list[tuple[str, bool]]:
    """Replies to each conversation as ``(text, ended)``; see :func:`replies_with_ids`."""
    replies = replies_with_ids(model, tokenizer, conversations, max_new_tokens, batch_size, temperature, seed)
    return [(r["text"], r["ended"]) for r in replies]


def replies_per_prompt(
    model,
    tokenizer,
    conversations: list[list[dict]],
    samples: int = 0,
    temperature: float = 1.0,
    seed: int = 0,
    max_new_tokens: int = 96,
) -> list[list[str]]:
    """Each conversation's reply texts: one greedy reply (``samples=0``) or ``samples`` drawn at ``temperature``.

    Sampling several replies per question shows what greedy decoding hides: a model can give the
    right answer greedily and still often give a wrong one when sampled (what RL and interrogation look at).
    """
    copies = max(samples, 1)
    replies = respond(
        model,
        tokenizer,
        [c for c in conversations for _ in range(copies)],
        max_new_tokens,
        temperature=temperature if samples else 0.0,
        seed=seed if samples else None,
    )
    texts = [text for text, _ in replies]
    return [texts[i : i + copies] for i in range(0, len(texts), copies)]


GOODBYE = "bye"


def chat_loop(
    model,
    tokenizer,
    config: GenerationConfig | None = None,
    input_fn: Callable[[str], str] = input,
    print_fn: Callable[..., None] = print,
    system: str | None = None,
) -> Conversation:
    """An interactive chat in the terminal: read a line, stream the reply, keep the history, repeat.

    Ctrl-D (EOF) or Ctrl-C, while typing or while the model answers, prints a goodbye and
    returns the conversation so far; ``/reset`` starts a new conversation, ``/quit`` leaves.
    ``input_fn`` and ``print_fn`` (called like ``print``, with ``end`` and ``flush``) are
    replaceable, which is how the tests drive it.
    """
    conversation = Conversation(system=system)
    print_fn("Chat with the model: Ctrl-D or Ctrl-C to leave, /reset to start over.")
    while True:
        try:
            line = input_fn("you> ")
        except (EOFError, KeyboardInterrupt):
            print_fn(f"\n{GOODBYE}")
            return conversation
        line = line.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            print_fn(GOODBYE)
            return conversation
        if line == "/reset":
            conversation = Conversation(system=system)
            print_fn("(history cleared)")
            continue
        conversation.add("user", line)
        try:
            print_fn("bot> ", end="", flush=True)
            for piece in reply(model, tokenizer, conversation, config, stream=True):
                print_fn(piece, end="", flush=True)
            print_fn()
        except KeyboardInterrupt:
            conversation.messages.pop()  # the unanswered question leaves the history with its answer
            print_fn(f"\n{GOODBYE}")
            return conversation
        except ValueError as e:  # e.g. a message too long for the context: say so and go on
            conversation.messages.pop()
            print_fn(f"\n(error: {e})")
