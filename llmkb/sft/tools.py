"""Tool use: special tokens a chat model writes to call a tool, and the runtime that answers the call.

In: a chat model fine-tuned on tool conversations (:func:`tool_conversation`: question, the
assistant's call, the tool's result, the assistant's answer), its tokenizer with the tool tokens
added (:func:`add_tool_tokens`), and tools: functions from the call's text to a result text
(:func:`calculator`).
Out: :func:`answer_with_tools`, each conversation's final reply and the calls made on the way.

How it works, as in ChatGPT's tools: the model writes ``<|calc_start|>47 + 85<|calc_end|>`` and
ends its turn; the runtime (not the model) sees the call, runs the tool, and puts its result into
the conversation as a ``tool`` message; the model is then asked again and answers with the result
in its context window. The model only has to learn *when* to call and *how to copy* the call's
arguments in and the result out; the tool does the part the model is bad at (exact arithmetic,
facts it never read). Tool messages are never trained on: the chat template marks only the
assistant's words for the loss (:mod:`llmkb.sft.masking`).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable

from llmkb.inference.chat import respond

CALL = re.compile(r"<\|(\w+)_start\|>(.*?)<\|\1_end\|>", re.DOTALL)
NO_RESULTS = "No results."
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def tool_tokens(tool: str) -> tuple[str, str]:
    """The special tokens that open and close a call to ``tool``.

    Examples:
        >>> tool_tokens("calc")
        ('<|calc_start|>', '<|calc_end|>')
    """
    return f"<|{tool}_start|>", f"<|{tool}_end|>"


def add_tool_tokens(tokenizer, *tools: str):
    """``tokenizer`` with each of ``tools``' two tokens added as special tokens (never split; kept once).

    A model that learns one tool gets only that tool's tokens: the calculator's sums model and the
    search model each have their own vocabulary.
    """
    from tokenizers import AddedToken

    tokens = [t for tool in tools for t in tool_tokens(tool)]
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in tokens], special_tokens=True)
    return tokenizer


def call(tool: str, query: str) -> str:
    """The assistant's text that calls ``tool`` with ``query``.

    Examples:
        >>> call("calc", "47 + 85")
        '<|calc_start|>47 + 85<|calc_end|>'
    """
    start, end = tool_tokens(tool)
    return f"{start}{query}{end}"


def tool_conversation(question: str, tool: str, query: str, result: str, answer: str, meta: dict | None = None) -> dict:
    """A training record: the user asks, the assistant calls the tool, the tool answers, the assistant replies.

    Examples:
        >>> r = tool_conversation("What is 47 + 85?", "calc", "47 + 85", "132", "Answer: 132")
        >>> [(m["role"], m["content"]) for m in r["messages"]][1:3]
        [('assistant', '<|calc_start|>47 + 85<|calc_end|>'), ('tool', '132')]
    """
    messages = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": call(tool, query)},
        {"role": "tool", "content": result},
        {"role": "assistant", "content": answer},
    ]
    return {"type": f"tool:{tool}", "messages": messages, "meta": meta or {}}


def calculator(expression: str) -> str:
    """The value of an integer expression with ``+``, ``-``, ``*`` and brackets, as text.

    Evaluated on the parsed expression, never with ``eval``: the model's text is untrusted input.

    Examples:
        >>> calculator("47 + 85"), calculator("(3 - 10) * 4")
        ('132', '-28')
        >>> calculator("2 ** 99999")
        Traceback (most recent call last):
        ...
        ValueError: calculator: '2 ** 99999' is not an integer expression of +, - and * (Pow is not allowed)
    """

    def value(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        what = type(node.op).__name__ if isinstance(node, ast.BinOp | ast.UnaryOp) else type(node).__name__
        raise ValueError(
            f"calculator: {expression!r} is not an integer expression of +, - and * ({what} is not allowed)"
        )

    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"calculator: {expression!r} is not an expression ({e.msg})") from None
    return str(value(tree.body))


def answer_with_tools(
    model,
    tokenizer,
    conversations: list[list[dict]],
    tools: dict[str, Callable[[str], str]],
    max_calls: int = 2,
    max_new_tokens: int = 48,
) -> list[dict]:
    """Each conversation answered greedily, its tool calls run: ``{"text": final reply, "calls": [...]}``.

    A reply that contains a call to one of ``tools`` is cut after the call; the tool runs on the
    call's text, and the conversation goes on with the call as the assistant's message and the
    result as a ``tool`` message. A tool that raises ``ValueError`` answers with the error's text
    (the model sees what went wrong, as a user of the tool would). After ``max_calls`` calls the
    next reply is final whatever it contains. Each call is ``{"tool", "query", "result", "call"}``
    (``query`` stripped of surrounding spaces; ``call`` the model's text from the start token to the end token).
    """
    results = [{"text": "", "calls": []} for _ in conversations]
    pending = [(i, list(c)) for i, c in enumerate(conversations)]
    for round_ in range(max_calls + 1):
        replies = respond(model, tokenizer, [messages for _, messages in pending], max_new_tokens)
        still = []
        for (i, messages), (text, _) in zip(pending, replies, strict=True):
            found = CALL.search(text)
            if found is None or found.group(1) not in tools or round_ == max_calls:
                results[i]["text"] = text
                continue
            tool, query = found.group(1), found.group(2).strip()
            try:
                result = tools[tool](query) or NO_RESULTS
            except ValueError as e:
                result = f"error: {e}"
            results[i]["calls"].append({"tool": tool, "query": query, "result": result, "call": found.group(0)})
            still.append(
                (i, [*messages, {"role": "assistant", "content": found.group(0)}, {"role": "tool", "content": result}])
            )
        pending = still
        if not pending:
            break
    return results
