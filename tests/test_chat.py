"""Chat: ChatML rendering, replies appended to the conversation, and the REPL's exits and history."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmkb.inference.chat import Conversation, chat_loop, check_messages, fit_to_context, render, reply
from llmkb.inference.generate import GenerationConfig
from llmkb.model.gpt import GPT, ModelConfig

TRAINED = Path(__file__).resolve().parents[1] / "runs" / "default" / "pretrain" / "model"


@pytest.fixture(scope="module")
def tok():
    from llmkb.tokenizer.bpe import BPETokenizer
    from llmkb.tokenizer.hf import to_hf_tokenizer, to_pretrained

    texts = ["Hello! How are you? I am fine, thank you. " * 10, "Xin chào bạn 👋 你好" * 5]
    return to_pretrained(to_hf_tokenizer(BPETokenizer.train(texts, vocab_size=300)))


@pytest.fixture(scope="module")
def gpt(tok) -> GPT:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=len(tok), context=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=64, tie_embeddings=False
    )
    model = GPT(config).eval()
    with torch.no_grad():
        model.embed_tokens.weight.normal_(0, 1.0)
        model.lm_head.weight.normal_(0, 0.3)
    return model


CONFIG = GenerationConfig(max_new_tokens=8)


def lines(*typed, end=EOFError):
    """An input_fn that types ``typed`` one by one, then raises ``end`` (Ctrl-D or Ctrl-C)."""
    queue = list(typed)

    def input_fn(prompt: str = "") -> str:
        if not queue:
            raise end
        return queue.pop(0)

    return input_fn


class Screen:
    """A print_fn that records what would have appeared on the terminal."""

    def __init__(self):
        self.text = ""

    def __call__(self, *args, end="\n", flush=False):
        self.text += " ".join(map(str, args)) + end


def test_render_is_chatml_ending_with_the_assistant_cue(tok):
    chat = Conversation([{"role": "user", "content": "Hi!"}], system="Be brief.")
    text = render(tok, chat)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"
    assert not render(tok, chat, add_generation_prompt=False).endswith("<|im_start|>assistant\n")


def test_bad_messages_are_named_by_index():
    with pytest.raises(ValueError, match="message 1 has the unknown role 'bot'"):
        Conversation([{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}])
    with pytest.raises(ValueError, match=r"message 2 \(user\) is empty"):
        check_messages(
            [{"role": "system", "content": "x"}, {"role": "user", "content": "a"}, {"role": "user", "content": "  "}]
        )
    chat = Conversation()
    with pytest.raises(ValueError, match="message 0 .* is empty"):
        chat.add("user", "")
    assert len(chat) == 0


def test_reply_is_appended_and_streaming_gives_the_same_text(gpt, tok):
    chat = Conversation([{"role": "user", "content": "Hello!"}])
    text = reply(gpt, tok, chat, CONFIG)
    assert chat.messages[-1] == {"role": "assistant", "content": text or " "} and len(chat) == 2
    chat2 = Conversation([{"role": "user", "content": "Hello!"}])
    pieces = reply(gpt, tok, chat2, CONFIG, stream=True)
    assert len(chat2) == 1  # nothing appended before the stream is consumed
    assert "".join(pieces) == text and chat2.messages == chat.messages
    with pytest.raises(ValueError, match="must end with a user"):
        reply(gpt, tok, chat, CONFIG)


def test_long_history_is_trimmed_from_the_oldest_turn_keeping_the_system(gpt, tok):
    chat = Conversation(system="Be brief.")
    for i in range(6):
        chat.add("user", f"Question {i}: how are you?")
        chat.add("assistant", "I am fine, thank you.")
    chat.add("user", "And now?")
    kept = fit_to_context(tok, chat.messages, context=64, reserve=8)
    assert kept[0]["role"] == "system" and kept[-1]["content"] == "And now?" and len(kept) < len(chat)
    reply(gpt, tok, chat, CONFIG)  # fits into the 64-token context by leaving old turns out of the prompt
    assert len(chat) == 15  # ...while the conversation keeps every message


@pytest.mark.parametrize("end", [EOFError, KeyboardInterrupt])
def test_chat_loop_exits_cleanly_and_keeps_history(gpt, tok, end):
    screen = Screen()
    chat = chat_loop(gpt, tok, CONFIG, input_fn=lines("Hello!", "", "How are you?", end=end), print_fn=screen)
    assert [m["role"] for m in chat] == ["user", "assistant", "user", "assistant"]
    assert [m["content"] for m in chat][::2] == ["Hello!", "How are you?"]
    assert screen.text.count("bot> ") == 2 and screen.text.rstrip().endswith("bye")
    for message in chat.messages[1::2]:
        assert message["content"].strip() == "" or message["content"] in screen.text  # streamed to the screen


def test_chat_loop_commands_and_ctrl_c_while_answering(gpt, tok):
    screen = Screen()
    chat = chat_loop(
        gpt, tok, CONFIG, input_fn=lines("Hi", "/reset", "Hello", "/quit"), print_fn=screen, system="Be nice."
    )
    assert [m["role"] for m in chat] == ["system", "user", "assistant"] and chat.messages[1]["content"] == "Hello"
    assert "(history cleared)" in screen.text

    def interrupting(*args, **kwargs):  # Ctrl-C arrives while the reply is being printed
        if args and args[0] == "bot> ":
            raise KeyboardInterrupt

    chat = chat_loop(gpt, tok, CONFIG, input_fn=lines("Hi"), print_fn=interrupting)
    assert len(chat) == 0  # the unanswered question is not kept


@pytest.mark.skipif(not (TRAINED / "model.safetensors").is_file(), reason="no trained model in runs/default")
def test_chat_with_the_trained_base_model():
    from llmkb.model.hf import load_pretrained
    from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

    model, tok = load_pretrained(TRAINED), load_tokenizer(TRAINED)
    screen = Screen()
    chat = chat_loop(model, tok, GenerationConfig(max_new_tokens=20), input_fn=lines("What is a cat?"), print_fn=screen)
    assert [m["role"] for m in chat] == ["user", "assistant"] and "<|im_start|>" not in chat.messages[1]["content"]
