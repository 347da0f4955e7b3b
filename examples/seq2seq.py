"""The original transformer: an encoder-decoder that translates numbers into words.

Run it: ``llmkb examples run seq2seq`` (trains the default model, about half a minute on one CPU
thread) or ``--profile quick`` (fewer steps: only checks that it learns). The architecture page
includes its sections; the docs build saves the cross-attention plot.
"""

# %% [markdown]
# # The original transformer, from scratch
# "Attention Is All You Need" (2017) built an *encoder* that reads the whole source and a
# *decoder* that writes the target one token at a time, reading the source through
# cross-attention. Here a tiny one learns to write numbers in words: `407` -> `four hundred seven`.

# %%
# --8<-- [start:masks]
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
from llmkb.model.seq2seq import attention_masks


def grid(mask, rows, cols):
    """A bool mask as a 0/1 grid, rows = queries (who reads), columns = keys (who is read)."""
    lines = ["      " + " ".join(f"{c:>5}" for c in cols)]
    lines += [f"{r:>5} " + " ".join(f"{int(v):>5}" for v in row) for r, row in zip(rows, mask.tolist())]
    return "\n".join(lines)


source, target_in = ["4", "0", "7"], ["<bos>", "f", "o", "u", "r"]
masks = attention_masks(T=len(target_in), S=len(source))
print("encoder self-attention (bidirectional, as in BERT):")
print(grid(masks["bidirectional"], source, source))
print("\ndecoder self-attention (causal, as in GPT):")
print(grid(masks["causal"], target_in, target_in))
print("\ncross-attention (decoder queries, encoder keys and values):")
print(grid(masks["cross"], target_in, source))
# --8<-- [end:masks]
assert masks["bidirectional"].all() and masks["cross"].all()
assert masks["causal"].sum() == len(target_in) * (len(target_in) + 1) // 2  # the lower triangle only

# %%
# --8<-- [start:objectives]
from llmkb.model.seq2seq import objective_example

sentence = "the cat sat on the mat because it was tired".split()
ex = objective_example(sentence, seed=3)
print("BERT (masked LM): predict the picked tokens from both sides")
for i, (inp, target, rule) in enumerate(zip(ex["mlm_input"], ex["mlm_targets"], ex["mlm_rule"])):
    print(f"  {i:2}  {inp:>8}  ->  {target or '':8}  {rule or ''}".rstrip())
print("GPT (causal LM): predict the next token from the left only")
for i, (inp, target) in enumerate(zip(ex["clm_input"], ex["clm_targets"])):
    print(f"  {i:2}  {inp:>8}  ->  {target}")
# --8<-- [end:objectives]
picked = [i for i, t in enumerate(ex["mlm_targets"]) if t is not None]
assert len(picked) == round(0.15 * len(sentence))  # 15% of 10 tokens, rounded: 2
assert all(ex["mlm_input"][i] == sentence[i] for i in range(len(sentence)) if i not in picked)
assert ex["clm_input"][1:] == ex["clm_targets"][:-1]  # the same sentence, shifted by one

# %%
# --8<-- [start:teacher-forcing]
from llmkb.model.seq2seq import VOCAB, make_pairs, teacher_forcing_batch

train_pairs, held_out = make_pairs(seed=0)  # 800 numbers to learn from, 200 never seen
print(len(train_pairs), "training pairs,", len(held_out), "held out; e.g.", train_pairs[0])
src, dec_in, labels = teacher_forcing_batch(train_pairs[:8])
print("shapes:", tuple(src.shape), tuple(dec_in.shape), tuple(labels.shape))


def show(ids):
    return " ".join({"<pad>": "·", "<bos>": "^", "<eos>": "$"}.get(VOCAB[i], VOCAB[i]) for i in ids)


print("encoder input: ", show(src[0]))
print("decoder input: ", show(dec_in[0]), "   (^ = BOS, · = PAD)")
print("labels:        ", show(labels[0]), "   ($ = EOS; PAD labels are ignored by the loss)")
# --8<-- [end:teacher-forcing]
length = int((labels[0] != 0).sum())
assert dec_in[0, 0] == VOCAB.index("<bos>") and labels[0, length - 1] == VOCAB.index("<eos>")
assert dec_in[0, 1:length].tolist() == labels[0, : length - 1].tolist()  # shifted right by one

# %%
# --8<-- [start:train]
import time

from llmkb.examples import context
from llmkb.model.seq2seq import Seq2Seq, Seq2SeqConfig, exact_match, train, translate_batch

ctx = context("seq2seq")
config = Seq2SeqConfig()
steps = 200 if ctx.profile == "quick" else config.steps
print(f"{Seq2Seq(config).num_params():,} parameters; {steps} steps of {config.batch_size} pairs")
start = time.perf_counter()
model, losses = train(config, steps=steps, seed=0, progress=False)
seconds = time.perf_counter() - start
score = exact_match(model, held_out)
print(f"trained in {seconds:.0f} s; loss {losses[0]:.2f} -> {sum(losses[-20:]) / 20:.2g} (mean of the last 20 steps)")
print(f"held-out exact match: {score:.1%} of {len(held_out)} numbers the model never saw")
sample = held_out[:8]
for (digits, words), guess in zip(sample, translate_batch(model, [d for d, _ in sample])):
    print(f"  {digits:>3} -> {guess:26} {'ok' if guess == words else 'WRONG, want ' + words}")
# --8<-- [end:train]
assert sum(losses[-20:]) / 20 < losses[0] / 10  # learning, in either profile
assert score >= (0.9 if ctx.profile == "default" else 0.5), score

# %%
# --8<-- [start:cross-attention]
import re

import matplotlib.pyplot as plt

number = next(d for d, _ in held_out if len(d) == 3)  # a three-digit number it never saw
words = translate_batch(model, [number])[0]
src, dec_in, labels = teacher_forcing_batch([(number, words)])
attention = model.attention_maps(src, dec_in)
weights = attention["cross"][-1][0].mean(0).detach()  # last decoder layer, mean over heads: (T, S)
# Row t is what the decoder read while writing labels[t].
fig, ax = plt.subplots(figsize=(3, 7))
image = ax.imshow(weights, cmap="Blues", aspect="auto", vmin=0, vmax=1)
fig.colorbar(image, ax=ax, shrink=0.5, label="attention weight")
ax.set_xticks(range(len(number)), list(number))
ax.set_yticks(range(labels.shape[1]), [show([i]).replace(" ", "␣") for i in labels[0]])
ax.set_xlabel("source digit (encoder)")
ax.set_ylabel("character being written (decoder)")
ax.set_title(f"{number} -> {words}", fontsize=9)

focus, position = [], 0
for word in re.split("[ -]", words):  # "thirty-nine" counts as two words here
    rows = weights[position : position + len(word)]  # the rows that wrote this word
    digit = number[int(rows.mean(0).argmax())]
    focus.append((word, digit))
    print(f"{word:>8} reads digit {digit} most ({rows.mean(0).max():.0%} of its attention)")
    position += len(word) + 1  # and the space or hyphen after it
# --8<-- [end:cross-attention]
ctx.save_figure("cross_attention.png", fig)
assert (weights.sum(-1) - 1).abs().max() < 1e-5  # each row is a distribution over the digits
assert focus[0][1] == number[0]  # the hundreds word reads the hundreds digit
