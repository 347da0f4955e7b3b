"""Tool use: the calculator's parsing, the call format, and the runtime loop around a scripted model."""

from __future__ import annotations

import pytest

import llmkb.sft.tools
from llmkb.sft.tools import NO_RESULTS, add_tool_tokens, answer_with_tools, calculator, tool_conversation


def test_calculator_computes_integer_expressions_and_refuses_anything_else():
    assert calculator(" 47 + 85 ") == "132" and calculator("-3 * (2 - 9)") == "21"
    for bad, why in (
        ("47 +", "not an expression"),
        ("__import__('os')", "Call is not allowed"),
        ("1.5 + 1", "Constant"),
        ("7 / 2", "Div is not allowed"),
        ("True + 1", "Constant"),
    ):
        with pytest.raises(ValueError, match=why):
            calculator(bad)


def test_tool_tokens_are_single_special_tokens_and_only_the_assistant_turns_are_trained(quick_run):
    from llmkb.sft.masking import tokenize_conversation
    from llmkb.tokenizer.hf import load_pretrained

    tokenizer = add_tool_tokens(load_pretrained(quick_run.root / "tokenizer"), "calc")
    size = len(tokenizer)
    assert len(add_tool_tokens(tokenizer, "calc")) == size  # adding them twice changes nothing
    record = tool_conversation("What is 47 + 85?", "calc", "47 + 85", "132", "Answer: 132")
    out = tokenize_conversation(tokenizer, record["messages"], context=128)
    start, end = tokenizer.convert_tokens_to_ids(["<|calc_start|>", "<|calc_end|>"])
    assert out["input_ids"].count(start) == out["input_ids"].count(end) == 1
    trained = tokenizer.decode([t for t in out["labels"] if t != -100])
    assert trained == "<|calc_start|>47 + 85<|calc_end|><|im_end|>Answer: 132<|im_end|>"  # the tool's "132" is not


def test_runtime_runs_each_call_and_hands_the_result_back(monkeypatch):
    """A scripted model: it calls the calculator with the question's sum, then answers with the tool's result."""
    seen = []

    def scripted(model, tokenizer, conversations, max_new_tokens=96, **kwargs):
        seen.append(conversations)
        replies = []
        for messages in conversations:
            question, last = messages[0]["content"], messages[-1]
            if question == "loop" or last["role"] == "user":  # "loop": a model that never stops calling
                expression = "1 + 1" if question == "loop" else question.removeprefix("What is ").removesuffix("?")
                replies.append((f"Let me see. <|calc_start|>{expression}<|calc_end|> and more", True))
            else:
                replies.append((f"Answer: {last['content']}", True))
        return replies

    monkeypatch.setattr(llmkb.sft.tools, "respond", scripted)
    asked = [[{"role": "user", "content": "What is 47 + 85?"}], [{"role": "user", "content": "What is 2 ** 3?"}]]
    out = answer_with_tools(None, None, asked, {"calc": calculator})
    assert out[0] == {
        "text": "Answer: 132",
        "calls": [{"tool": "calc", "query": "47 + 85", "result": "132", "call": "<|calc_start|>47 + 85<|calc_end|>"}],
    }
    assert out[1]["calls"][0]["result"].startswith("error: calculator: '2 ** 3'")  # the model sees the error
    # The second round goes on from the call alone (the reply is cut after it) and the tool's message.
    assert seen[1][0][1:] == [
        {"role": "assistant", "content": "<|calc_start|>47 + 85<|calc_end|>"},
        {"role": "tool", "content": "132"},
    ]
    # A model that keeps calling is stopped after max_calls; a call to a tool the runtime lacks is plain text.
    looping = answer_with_tools(None, None, [[{"role": "user", "content": "loop"}]], {"calc": calculator}, max_calls=2)
    assert len(looping[0]["calls"]) == 2 and looping[0]["text"].startswith("Let me see. <|calc_start|>")
    unknown = answer_with_tools(None, None, asked[:1], {"search": lambda query: NO_RESULTS})
    assert unknown[0]["calls"] == [] and "<|calc_start|>47 + 85" in unknown[0]["text"]
