"""Inference: decoding strategies, a real next-token distribution, batched, streaming, multi-turn generation, KV cache.

Run it: ``llmkb examples run inference --profile quick`` (or ``python examples/inference.py``).
The inference page includes its sections; the docs build saves its tables and plots.
"""

# %% [markdown]
# # Using a model: from one prompt to a conversation
# Every mode of inference is the same loop (predict a distribution, pick a token, append it),
# organised differently.

# %%
# --8<-- [start:single-turn]
from llmkb.examples import context
from llmkb.inference.generate import GenerationConfig, generate
from llmkb.model.hf import load_pretrained as load_model
from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

ctx = context("inference")
model_dir = ctx.ensure("pretrain") / "model"
model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
prompt = "The guild of"
print(prompt + generate(model, tokenizer, prompt, GenerationConfig(max_new_tokens=30))[0])
# --8<-- [end:single-turn]

# %%
# --8<-- [start:strategies]
import dataclasses

strategies = {
    "greedy": GenerationConfig(),
    "beam search, 4 beams": GenerationConfig(num_beams=4),
    "temperature 0.7": GenerationConfig(temperature=0.7, seed=1),
    "temperature 1.5": GenerationConfig(temperature=1.5, seed=1),
    "top-k 5 (temperature 1)": GenerationConfig(temperature=1.0, top_k=5, seed=1),
    "top-p 0.9 (temperature 1)": GenerationConfig(temperature=1.0, top_p=0.9, seed=1),
    "greedy, repetition penalty 1.3": GenerationConfig(repetition_penalty=1.3),
}
prompt = "Records kept in"
rows = ["| strategy | one continuation | different texts in 10 runs (seeds 0-9) |", "|---|---|---:|"]
outputs = {}
for name, config in strategies.items():
    config = dataclasses.replace(config, max_new_tokens=24)  # replace, not assignment: the config checks it
    outputs[name] = generate(model, tokenizer, prompt, config)[0]
    runs = {generate(model, tokenizer, prompt, dataclasses.replace(config, seed=s))[0] for s in range(10)}
    shown = outputs[name].replace("\n", " ⏎ ").replace("|", "\\|")
    rows.append(f"| {name} | *{prompt}*{shown} | {len(runs)} |")
strategies_table = "\n".join(rows) + "\n"
ctx.save_text("strategies.md", strategies_table)
print(strategies_table)
# --8<-- [end:strategies]
assert (
    outputs["greedy"]
    == generate(model, tokenizer, prompt, GenerationConfig(max_new_tokens=24, temperature=1.0, top_k=1, seed=5))[0]
)

# %%
# --8<-- [start:distribution]
import matplotlib.pyplot as plt
import torch

from llmkb.inference.sampling import apply_temperature, top_k_filter, top_p_filter

ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
with torch.no_grad():
    logits = model(ids)[0][:, -1, :]  # (1, vocab): the distribution over the next token
order = logits[0].argsort(descending=True)[:15]
labels = [repr(tokenizer.decode([int(i)])) for i in order]
panels = {
    "temperature 0.5": apply_temperature(logits, 0.5),
    "temperature 1 (the model's own)": logits,
    "temperature 1.5": apply_temperature(logits, 1.5),
    "top-k 5": top_k_filter(logits, 5),
    "top-p 0.9": top_p_filter(logits, 0.9),
}
fig, axes = plt.subplots(1, len(panels), figsize=(17, 3.8), sharey=True, sharex=True)
for ax, (title, scores) in zip(axes, panels.items()):
    probs = scores.softmax(-1)[0, order]
    ax.barh(range(len(order)), probs)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("probability")
    ax.grid(axis="x", alpha=0.3)
axes[0].set_yticks(range(len(order)), labels, fontsize=8)
axes[0].invert_yaxis()
fig.suptitle(f"The next token after {prompt!r}: the 15 most likely, under each rule", fontsize=11)
fig.tight_layout()
ctx.save_figure("distribution.png", fig)
kept = {name: int((scores > float("-inf")).sum()) for name, scores in panels.items()}
print("tokens that can still be drawn:", kept)
# --8<-- [end:distribution]
assert kept["top-k 5"] == 5 and kept["top-p 0.9"] <= kept["temperature 1 (the model's own)"]

# %%
# --8<-- [start:explorer-export]
import json

from llmkb.tokenizer.ids import encode

# From sure to unsure: a fact the model learned, a passage it saw often, any of many cities, open prose.
explorer_prompts = ["Baemmeskbra Faegaenvou was born in", "The guild of", "Records kept in", "He was"]
vocab_size = model.config.vocab_size
explorer = {
    "tokens": [tokenizer.decode([token_id]) for token_id in range(vocab_size)],
    "prompts": [],
}
for text in explorer_prompts:
    with torch.no_grad():
        next_logits = model(encode(tokenizer, text))[0][0, -1]  # (vocab,): every token's score, none left out
    # 3 decimals are far finer than any probability the page shows, and keep the file small
    explorer["prompts"].append({"prompt": text, "logits": [round(score, 3) for score in next_logits.tolist()]})
    probs = next_logits.softmax(-1)
    print(f"{text!r}: most likely {tokenizer.decode([int(probs.argmax())])!r} with p = {float(probs.max()):.3f}")
saved = ctx.save_text("next-token.json", json.dumps(explorer, ensure_ascii=False, separators=(",", ":")))
print(f"{saved.name}: {len(explorer_prompts)} prompts x {vocab_size:,} logits, {saved.stat().st_size / 1024:.0f} KiB")
# --8<-- [end:explorer-export]
assert all(len(entry["logits"]) == vocab_size == len(tokenizer) for entry in explorer["prompts"])

# %%
# --8<-- [start:batched]
from llmkb.inference.generate import left_pad

prompts = ["The guild of", "In 1750,", "Records kept in Drourpalstead show that"]
rows_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
padded, mask = left_pad(rows_ids, pad_id=tokenizer.pad_token_id)
print("left-padded ids (0 in the mask = padding):")
for row, row_mask in zip(padded.tolist(), mask.tolist()):
    print(" ", row, row_mask)
config = GenerationConfig(max_new_tokens=16)
together = generate(model, tokenizer, prompts, config)
alone = [generate(model, tokenizer, p, config)[0] for p in prompts]
for p, text in zip(prompts, together):
    print(f"{p!r} -> {text!r}")
print("each row equals its prompt run alone:", together == alone)
# --8<-- [end:batched]
assert together == alone

# %%
# --8<-- [start:streaming]
import time

from llmkb.inference.generate import stream

start = time.perf_counter()
pieces, arrivals = [], []
for piece in stream(model, tokenizer, "The guild of", GenerationConfig(max_new_tokens=40)):
    pieces.append(piece)
    arrivals.append(time.perf_counter() - start)
print("|".join(pieces))
print(f"{len(pieces)} pieces; the first after {1000 * arrivals[0]:.1f} ms, the last after {1000 * arrivals[-1]:.1f} ms")
# --8<-- [end:streaming]
assert "".join(pieces) == generate(model, tokenizer, "The guild of", GenerationConfig(max_new_tokens=40))[0]
assert arrivals[0] < arrivals[-1]

# %%
# --8<-- [start:chat]
from llmkb.inference.chat import Conversation, render, reply

conversation = Conversation(system="You are a helpful assistant.")
conversation.add("user", "Who was Baemmeskbra Faegaenvou?")
print(render(tokenizer, conversation))
first = reply(model, tokenizer, conversation, GenerationConfig(max_new_tokens=30))
conversation.add("user", "And where was he born?")
second = reply(model, tokenizer, conversation, GenerationConfig(max_new_tokens=30))
for message in conversation:
    print(f"{message['role']:>9}: {message['content']!r}")
# --8<-- [end:chat]
assert [m["role"] for m in conversation] == ["system", "user", "assistant", "user", "assistant"]

# %%
# --8<-- [start:kv-cache]
from llmkb.model.gpt import KVCache

cfg = model.config
cache = KVCache(cfg, batch_size=1, max_len=cfg.context)
print(
    f"cache for one sequence of {cfg.context} tokens: {cache.nbytes():,} bytes "
    f"({cfg.n_layer} layers x 2 (K and V) x {cfg.n_kv_head} KV heads x {cfg.context} positions "
    f"x {cfg.head_dim} numbers x 4 bytes)"
)
print(f"without GQA ({cfg.n_head} KV heads) it would be {cache.nbytes() * cfg.n_head // cfg.n_kv_head:,} bytes")
timings = {}
for use_cache in (True, False):
    config = GenerationConfig(max_new_tokens=100, use_cache=use_cache)
    start = time.perf_counter()
    text = generate(model, tokenizer, "The", config)[0]
    timings[use_cache] = time.perf_counter() - start
print(f"100 new tokens: {timings[True]:.2f} s with the cache, {timings[False]:.2f} s without")
# --8<-- [end:kv-cache]
assert generate(model, tokenizer, "The", GenerationConfig(max_new_tokens=30, use_cache=False)) == generate(
    model, tokenizer, "The", GenerationConfig(max_new_tokens=30)
)
