"""Tokenization: text to bytes to tokens, BPE merges, the trained tokenizer, and why spelling is hard.

Run it: ``llmkb examples run tokenization --profile quick`` (or ``python examples/tokenization.py``).
The tokenization page includes its sections; the docs build saves its tables and token views.
"""

# %% [markdown]
# # Tokenization, end to end
# A model reads integers, not characters. This notebook goes from a string to its UTF-8 bytes,
# learns byte-pair merges with the textbook loop and the fast trainer (they agree), shows them
# on a toy string, then uses the tokenizer the pipeline trained.

# %%
# --8<-- [start:bytes]
text = "Hello, thế giới! 你好 🤖"
raw = text.encode("utf-8")
print(len(text), "characters ->", len(raw), "bytes")
print(list(raw))
# --8<-- [end:bytes]
assert len(raw) > len(text)  # accented letters, Chinese and emoji take 2-4 bytes each

# %%
# --8<-- [start:textbook_vs_fast]
from llmkb.tokenizer.bpe import SPECIAL_TOKENS, BPETokenizer, train_textbook

small_text = (
    "The cat sat on the mat. The dog sat on the log. The cat and the dog sat together."
    "<|endoftext|>A token is a piece of text; the tokenizer turns the text into tokens."
)
textbook_merges = train_textbook([small_text], 20)  # recounts every pair, 20 times
fast = BPETokenizer.train([small_text], vocab_size=256 + 20 + len(SPECIAL_TOKENS))
print("first tokens learned:", [fast.token_bytes(i).decode() for i in list(textbook_merges.values())[:10]])
print("identical merges:", list(textbook_merges.items()) == list(fast.merges.items()))
# --8<-- [end:textbook_vs_fast]
assert list(textbook_merges.items()) == list(fast.merges.items())  # same pairs, same order, same ids

# %%
# --8<-- [start:toy_bpe]
from llmkb.tokenizer.bpe import BPETokenizer, count_pairs

print("most common pairs:", count_pairs(list(b"aaabdaaabac")).most_common(3))  # (97, 97) is "aa"
toy = BPETokenizer.train(["aaabdaaabac"], vocab_size=256 + 3 + 3)  # 3 merges (+3 special tokens)
for (left, right), new_id in toy.merges.items():
    print(f"{toy.token_bytes(left)!r:>8} + {toy.token_bytes(right)!r:<8} -> {new_id}: {toy.token_bytes(new_id)!r}")
print(toy.encode("aaabdaaabac"))
# --8<-- [end:toy_bpe]
first_pair = next(iter(toy.merges))
assert toy.token_bytes(first_pair[0]) + toy.token_bytes(first_pair[1]) == b"aa"  # the most common pair goes first

# %%
# --8<-- [start:stage]
from llmkb.examples import context

ctx = context("tokenization")
tokenizer_dir = ctx.ensure("tokenizer")  # runs the data and tokenizer stages if this run lacks them
tok = BPETokenizer.load(tokenizer_dir / "bpe.json")
print(f"{tok.vocab_size} tokens: 256 bytes + {len(tok.merges)} merges + {len(tok.special_tokens)} special")
# --8<-- [end:stage]
assert tok.vocab_size == 256 + len(tok.merges) + len(tok.special_tokens)

# %%
# --8<-- [start:merges]
rows = ["| rank | merge | new token |", "|---:|---|---|"]
for rank, ((left, right), new_id) in enumerate(list(tok.merges.items())[:12]):
    shown = [
        tok.token_bytes(i).decode("utf-8", "replace").replace(" ", "·").replace("\n", "↵")
        for i in (left, right, new_id)
    ]
    rows.append(f"| {rank} | `{shown[0]}` + `{shown[1]}` | `{shown[2]}` |")
merges_table = "\n".join(rows) + "\n"
print(merges_table)
# --8<-- [end:merges]
ctx.save_text("merges.md", merges_table)
assert len(rows) == 14

# %%
# --8<-- [start:roundtrip]
from transformers import AutoTokenizer

hf = AutoTokenizer.from_pretrained(tokenizer_dir)  # the same merges, in Hugging Face format
samples = [
    "The quick brown fox jumps over 13 lazy dogs.",
    "Tiếng Việt có dấu: Hà Nội, Đà Nẵng.",
    "我们的语言模型只看到数字。",
    "def add(a, b):\n    return a + b  # 🤖🎉",
    "<|im_start|>user\nhi<|im_end|>",
]
for sample in samples:
    ids = tok.encode(sample)
    assert tok.decode(ids) == sample  # nothing is lost
    assert hf(sample, add_special_tokens=False)["input_ids"] == ids  # both implementations agree
    print(f"{len(sample.encode()):3} bytes -> {len(ids):3} tokens  {sample!r}")
# --8<-- [end:roundtrip]

# %%
# --8<-- [start:view]
from llmkb.tokenizer.viz import render_html, token_pieces

view_text = "Tokenizers split text into pieces: strawberry, 12345, Hà Nội, 你好, 🤖!"
pieces = token_pieces(tok, view_text)  # a piece holds one token, or several that share a character
print(" | ".join(f"{piece.text}={'+'.join(map(str, piece.ids))}" for piece in pieces))
# --8<-- [end:view]
ctx.save_text("token_view.html", render_html(pieces))
assert "".join(piece.text for piece in pieces) == view_text

# %%
# --8<-- [start:playground]
from llmkb.tokenizer.web import from_web_json, to_web_json

web_json = to_web_json(tok)  # merges by rank, every token's bytes, the split regex, the special tokens
saved = ctx.save_text("tokenizer.json", web_json)  # the page's playground fetches this file
print(f"{saved.name}: {len(web_json.encode()):,} bytes for {tok.vocab_size} tokens")
# --8<-- [end:playground]
assert from_web_json(web_json).encode(view_text) == tok.encode(view_text)  # the file holds all the encoder needs

# %%
# --8<-- [start:chat]
conversation = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2+2 = 4."},
]
rendered = hf.apply_chat_template(conversation, tokenize=False)
print(rendered)
chat_ids = hf.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
im_start = hf.convert_tokens_to_ids("<|im_start|>")
print("<|im_start|> is one token:", im_start, "appears", chat_ids.count(im_start), "times")
# --8<-- [end:chat]
ctx.save_text("chat_view.html", render_html(token_pieces(tok, rendered)))
assert chat_ids.count(im_start) == 3

# %%
# --8<-- [start:spelling]
from llmkb.tokenizer.viz import spelling_table, to_markdown

words = ["strawberry", "raspberry", "error", "mirror", "Mississippi", "bookkeeper"]
letters = {"strawberry": "r", "raspberry": "r", "error": "r", "mirror": "r", "Mississippi": "s", "bookkeeper": "e"}
spelling_rows = [row for w in words for row in spelling_table(tok, [w], letters[w])]
spelling_md = to_markdown(spelling_rows)
print(spelling_md)
# --8<-- [end:spelling]
ctx.save_text("spelling.md", spelling_md)
assert {row["word"]: row["count"] for row in spelling_rows}["strawberry"] == 3
