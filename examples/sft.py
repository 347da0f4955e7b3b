"""Supervised fine-tuning: the data, ChatML and its loss mask, base vs SFT, knowledge of self, full vs LoRA vs trl.

Run it: ``llmkb examples run sft --profile quick`` (or ``python examples/sft.py``).
The SFT page includes its sections; the docs build saves its tables, plots and token views.
"""

# %% [markdown]
# # From base model to assistant
# The SFT stage fine-tunes the base model on conversations; this example shows its data, how a
# conversation becomes tokens and labels, and what the fine-tuned model does that the base model
# did not. The last section trains the same model three more ways to compare them.

# %%
# --8<-- [start:load]
import json
from collections import Counter

from datasets import load_from_disk

from llmkb.examples import context
from llmkb.io import read_json

ctx = context("sft")
sft_dir = ctx.ensure("sft")  # runs data -> tokenizer -> pretrain -> sft if this run lacks them
metrics = ctx.run.metrics("sft")
data = load_from_disk(str(sft_dir / "data"))  # a datasets.DatasetDict: train and test
print(data)
print("train conversations per type:", dict(Counter(data["train"]["type"])))
# --8<-- [end:load]
quick = ctx.profile == "quick"  # the quick model is tiny and trains for seconds: mechanics, not skills

# %%
# --8<-- [start:types]
for kind in ("instruction", "conversation", "text_generation", "code", "reasoning", "identity", "system_identity"):
    rows = [r for r in data["train"] if r["type"] == kind]
    if not rows:
        continue
    print(f"--- {kind} ---")
    for message in rows[0]["messages"]:
        print(f"{message['role']:>9}: {message['content']}")
# --8<-- [end:types]
assert set(data["train"]["type"]) >= {"instruction", "code", "reasoning", "identity"}

# %%
# --8<-- [start:chatml]
from llmkb.sft.masking import IGNORE, mask_html, tokenize_conversation
from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

tokenizer = load_tokenizer(sft_dir / "model")
# A multi-turn chat (the quick profile's 64-token context keeps only short single-turn ones).
chat = next((r for r in data["train"] if r["type"] == "conversation"), data["train"][0])["messages"]
print(tokenizer.apply_chat_template(chat, tokenize=False))
encoded = tokenize_conversation(tokenizer, chat, context=10_000)
trained = [t for t in encoded["labels"] if t != IGNORE]
print(f"{len(encoded['input_ids'])} tokens; the loss is computed on {len(trained)} of them:")
print(repr(tokenizer.decode(trained)))
# --8<-- [end:chatml]
ctx.save_text("mask.html", mask_html(tokenizer, chat, context=10_000))
assert tokenizer.decode(trained).count("<|im_end|>") == sum(m["role"] == "assistant" for m in chat)

# %%
# --8<-- [start:chat-tokens]
tokens = read_json(sft_dir / "chat_tokens.json")
print("embedding norm of <|im_start|>, <|im_end|> after pretraining:", tokens["norm_before"])
print("mean norm of the tokens the model did learn:               ", tokens["used_norm_mean"])
print("both rows set to the mean embedding, norm now:              ", tokens["norm_after"])
print(
    f"p(<|im_end|>) at the end of an answer: base {tokens['base_end_probability']:.1e}, "
    f"after mean init {tokens['mean_init_end_probability']:.1e}, after SFT {tokens['sft_end_probability']:.2f}"
)
# --8<-- [end:chat-tokens]
assert tokens["sft_end_probability"] > tokens["base_end_probability"]

# %%
# --8<-- [start:loss]
from llmkb.io import read_jsonl
from llmkb.sft.stage import plot_log

log = list(read_jsonl(sft_dir / "log.jsonl"))
ctx.save_figure("loss.png", plot_log(log))
batch = read_json(sft_dir / "config.json")["batch_size"]
print(
    f"{metrics['steps']} steps of {batch} conversations "
    f"({metrics['steps'] * batch / metrics['train_conversations']:.1f} "
    f"passes over {metrics['train_conversations']:,}), {metrics['s_per_step']:.3f} s per step"
)
print(
    f"loss on held-out assistant tokens: {metrics['start_test_loss']:.3f} before, "
    f"{metrics['final_test_loss']:.3f} after"
)
# --8<-- [end:loss]
assert metrics["final_test_loss"] < metrics["start_test_loss"]

# %%
# --8<-- [start:before-after]
scores = read_json(sft_dir / "eval.json")
header = (
    "| data type | test prompts | format: base | format: SFT | right: base | right: SFT | "
    "right: SFT, trained prompts |\n"
)
table = header + "|---|---:|---:|---:|---:|---:|---:|\n"
for kind, row in scores["sft"].items():
    base, seen = scores["base"][kind], scores["sft_on_train"].get(kind, {})
    table += (
        f"| {kind} | {row['n']} | {base['format']:.0%} | {row['format']:.0%} | {base['correct']:.0%} | "
        f"{row['correct']:.0%} | {seen.get('correct', 0):.0%} |\n"
    )
ctx.save_text("before_after.md", table)
print(table)
for kind in scores["sft"]:
    base, sft = scores["base"][kind]["replies"][0], scores["sft"][kind]["replies"][0]
    print(f"--- {kind}: {sft['prompt']!r}\n  base: {base['reply'][:150]!r}\n  SFT:  {sft['reply'][:150]!r}")
# --8<-- [end:before-after]
if not quick:
    assert metrics["sft_format"] > 0.8 > 0.1 > metrics["base_format"]  # the format is what SFT teaches
    assert metrics["sft_correct_on_train"] > metrics["sft_correct"]

# %%
# --8<-- [start:identity]
identity = read_json(sft_dir / "identity.json")
rows = [
    ("no system message", "no_system", "says_hard_coded"),
    ("system message: You are Pebble...", "system_pebble", "says_hard_coded"),
    ("system message with a new name", "system_new", "says_new"),
    ("system message with a new name, but says Pebble", "system_new", "says_hard_coded"),
]
table = "| asked with | base model | SFT model |\n|---|---:|---:|\n"
for label, case, key in rows:
    table += f"| {label} | {identity['base'][case][key]:.0%} | {identity['sft'][case][key]:.0%} |\n"
ctx.save_text("identity.md", table)
print(table)
print("base model, 'Who exactly are you?' ->", repr(identity["base"]["no_system"]["replies"][0][:120]))
print("SFT model,  'Who exactly are you?' ->", repr(identity["sft"]["no_system"]["replies"][0]))
new = identity["sft"]["system_new"]
print(f"SFT model told it is {new['names'][0]!r} ->", repr(new["replies"][0]))
# --8<-- [end:identity]
assert identity["base"]["no_system"]["says_hard_coded"] == 0
if not quick:
    assert identity["sft"]["no_system"]["says_hard_coded"] >= 0.75
    assert identity["sft"]["system_new"]["says_new"] > 0.5  # the page: it takes the name from the system message

# %%
# --8<-- [start:talk]
from llmkb.inference.chat import Conversation, reply
from llmkb.inference.generate import GenerationConfig
from llmkb.model.hf import load_pretrained as load_model

model = load_model(sft_dir / "model")
person = next(json.loads(r["meta"]) for r in data["train"] if r["type"] == "instruction")["name"]
conversation = Conversation()
for question in (f"Where was {person} born?", "And what did they do for a living?", "What is 23 + 45?"):
    conversation.add("user", question)
    reply(model, tokenizer, conversation, GenerationConfig(max_new_tokens=60))
for message in conversation:
    print(f"{message['role']:>9}: {message['content']}")
# --8<-- [end:talk]
assert len(conversation) == 6

# %%
# --8<-- [start:methods]
import dataclasses

from llmkb.sft.train import fine_tune, init_chat_tokens
from llmkb.stages import get_stage

base_dir = ctx.run.require("pretrain") / "model"
train = [dict(r, meta=json.loads(r["meta"])) for r in data["train"]]
test = [dict(r, meta=json.loads(r["meta"])) for r in data["test"]]
stage_config = get_stage("sft").config(ctx.profile)
steps = 5 if quick else 60  # the same short budget for every variant
results = {}
for trainer, method in (("ours", "full"), ("ours", "lora"), ("trl", "full"), ("trl", "lora")):
    model = load_model(base_dir)
    init_chat_tokens(model, tokenizer)  # as the stage does
    config = dataclasses.replace(
        stage_config,
        trainer=trainer,
        method=method,
        max_steps=steps,
        eval_every=steps,
        progress=False,
        lr=3e-3 if method == "lora" else stage_config.lr,
    )
    _, method_log, summary = fine_tune(model, tokenizer, train, test, config)
    results[(trainer, method)] = summary
table = (
    "| trainer | method | trainable parameters | gradients + AdamW state | s per step | "
    f"held-out loss after {steps} steps |\n|---|---|---:|---:|---:|---:|\n"
)
for (trainer, method), s in results.items():
    state = f"{(s['grad_bytes'] + s['optimizer_bytes']) / 1e6:.2f} MB"
    table += (
        f"| {trainer} | {method} | {s['trainable_params']:,} ({s['trainable_share']:.1%}) | {state} | "
        f"{s['s_per_step']:.3f} | {s['final_test_loss']:.3f} |\n"
    )
ctx.save_text("methods.md", table)
print(table)
# --8<-- [end:methods]
full, lora = results[("ours", "full")], results[("ours", "lora")]
assert lora["trainable_share"] < 0.2 and lora["optimizer_bytes"] < 0.2 * full["optimizer_bytes"]
for method in ("full", "lora"):  # the two trainers keep the same state for the same method
    assert results[("trl", method)]["optimizer_bytes"] == results[("ours", method)]["optimizer_bytes"]
