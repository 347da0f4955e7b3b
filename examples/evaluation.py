"""Evaluation: perplexity on held-out text, checked against a token-by-token sum, and exact-match task accuracy.

Run it: ``llmkb examples run evaluation --profile quick`` (or ``python examples/evaluation.py``).
The evaluation page includes its sections. The same numbers are ``llmkb eval``.
"""

# %% [markdown]
# # Measuring a language model
# Perplexity for a base model, exact match for a checkable task.

# %%
# --8<-- [start:perplexity]
from llmkb.corpus import load_split
from llmkb.evaluate.perplexity import encode_documents, loglik_reference, perplexity
from llmkb.examples import context
from llmkb.model.hf import load_pretrained as load_model
from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

ctx = context("evaluation")
model_dir = ctx.ensure("pretrain") / "model"
model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
heldout = [d["text"] for d in load_split(ctx.run.require("data"), "heldout")]
stream = encode_documents(tokenizer, heldout)
result = perplexity(model, stream, context=model.config.context)
print(f"{result['tokens']:,} held-out tokens: {result['nll']:.3f} nats/token, perplexity {result['perplexity']:.1f}")
# --8<-- [end:perplexity]

# %%
# --8<-- [start:reference]
import math

piece = stream[:300]  # the slow way costs one forward pass per token
fast = perplexity(model, piece, context=model.config.context)
slow = math.exp(-loglik_reference(model, piece, context=model.config.context) / (len(piece) - 1))
print(f"windowed: {fast['perplexity']:.4f}   token by token: {slow:.4f}")
# --8<-- [end:reference]
assert abs(fast["perplexity"] / slow - 1) < 1e-4

# %%
# --8<-- [start:stride]
rows = ["| stride | windows | perplexity |", "|---:|---:|---:|"]
for stride in (128, 64, 32):
    r = perplexity(model, stream, context=model.config.context, stride=min(stride, model.config.context))
    rows.append(f"| {r['stride']} | {r['windows']} | {r['perplexity']:.1f} |")
stride_table = "\n".join(rows) + "\n"
ctx.save_text("stride.md", stride_table)
print(stride_table)
# --8<-- [end:stride]
assert len(rows) == 5

# %%
# --8<-- [start:task]
from llmkb.evaluate.tasks import arithmetic_problems, task_accuracy
from llmkb.inference.generate import GenerationConfig, generate

problems = arithmetic_problems(20, digits=2, seed=0)
print("a problem:", problems[0])
score = task_accuracy(lambda prompts: generate(model, tokenizer, prompts, GenerationConfig(max_new_tokens=8)), problems)
print(f"base model: {score['correct']}/{score['total']} exact")
for example in score["examples"]:
    print(f"  {example['prompt']!r} -> {example['output']!r} (expected {example['expected']!r})")
# --8<-- [end:task]
assert score["total"] == 20
