"""The base model: next-token prediction, stochastic samples, dreamed documents, regurgitation and few-shot prompts.

Run it: ``llmkb examples run base_model --profile quick`` (or ``python examples/base_model.py``).
The base-model page includes its sections; the docs build saves its tables.
"""

# %% [markdown]
# # What pretraining alone gives you
# Experiments on the base model the pretraining stage saved, using the mini-web's manifest to know
# which facts and passages it saw, and how often.

# %%
# --8<-- [start:load]
from llmkb.examples import context
from llmkb.io import read_json
from llmkb.model.hf import load_pretrained as load_model
from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

ctx = context("base_model")
model_dir = ctx.ensure("pretrain") / "model"  # the Hugging Face folder the stage wrote
model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
truth = read_json(ctx.run.require("data") / "miniweb" / "manifest.json")  # what the mini-web planted
frequent = [e for e in truth["entities"] if e["frequency"] == "frequent"]
person = frequent[0]
print(
    f"{model.num_params():,} parameters; {person['name']!r} appears on {len(person['pages'])} pages:", person["facts"]
)
# --8<-- [end:load]
quick = ctx.profile == "quick"  # the quick profile's model trains for seconds: it shows the mechanics, not the skills

# %%
# --8<-- [start:next-token]
from llmkb.pretrain.probes import next_token_table

prompt = f"{person['name']} was born in"
table = next_token_table(model, tokenizer, prompt, k=6)
print(f"after {prompt!r} the model predicts:")
for token, p in table:
    print(f"  {token!r:<22} {p:6.1%} {'#' * round(40 * p)}")
# --8<-- [end:next-token]
assert abs(sum(p for _, p in next_token_table(model, tokenizer, prompt, k=len(tokenizer))) - 1) < 1e-3

# %%
# --8<-- [start:stochastic]
from llmkb.pretrain.probes import sample

samples = [sample(model, tokenizer, prompt, max_new_tokens=24, temperature=1.0, seed=s) for s in range(5)]
for s in samples:
    print(repr(s))
print(
    "greedy, twice:",
    sample(model, tokenizer, prompt, 12, temperature=0) == sample(model, tokenizer, prompt, 12, temperature=0),
)
# --8<-- [end:stochastic]
assert len(set(samples)) >= 3  # the same prompt, different continuations

# %%
# --8<-- [start:dream]
dream = sample(model, tokenizer, "<|endoftext|>", max_new_tokens=120, temperature=0.8, seed=7)
print(dream)
# --8<-- [end:dream]
assert len(dream) > 50

# %%
# --8<-- [start:regurgitation]
from llmkb.pretrain.probes import regurgitation
from llmkb.pretrain.stage import training_mix
from llmkb.stages import get_stage

texts, mix = training_mix(ctx.run.require("data"), get_stage("pretrain").config(ctx.profile))
rows = ["| passage | times in the training mix | tokens recited exactly (of 40) |", "|---|---:|---:|"]
recitals = {}
for passage in truth["passages"]:
    seen = sum(t.count(passage["text"]) for t in texts)
    recitals[passage["id"]] = recital = regurgitation(
        model, tokenizer, passage["text"], prefix_tokens=12, continue_tokens=40
    )
    rows.append(f"| {passage['id']} | {seen} | {recital.matched_tokens} |")
    print(
        f"[{passage['id']}] given: {recital.prefix!r}\n  model: {recital.produced!r}\n  truth: {recital.expected!r}\n"
    )
regurgitation_table = "\n".join(rows) + "\n"
ctx.save_text("regurgitation.md", regurgitation_table)
print(regurgitation_table)
# --8<-- [end:regurgitation]
if not quick:
    assert recitals["repeated"].matched_tokens > 3 * max(1, recitals["once"].matched_tokens)

# %%
# --8<-- [start:recital-rate]
from llmkb.corpus import load_split
from llmkb.pretrain.probes import recital_rate

ordinary = texts[mix.get("planted_documents", 0) :]  # training pages with nothing planted: each in the data once
heldout = [d["text"] for d in load_split(ctx.run.require("data"), "heldout")]
rates = {
    "ordinary training pages (once in the data)": recital_rate(model, tokenizer, ordinary),
    "held-out pages (never trained on)": recital_rate(model, tokenizer, heldout),
}
for group, rate in rates.items():
    print(f"{group}: {rate:.0%} of 30 random windows recited (36+ of 40 tokens)")
# --8<-- [end:recital-rate]
assert rates["held-out pages (never trained on)"] <= 0.1  # unseen text cannot be recited (boilerplate aside)

# %%
# --8<-- [start:few-shot]
from llmkb.pretrain.probes import examples_for, few_shot_accuracy, few_shot_choice, few_shot_prompt
from llmkb.world import OCCUPATIONS

demos, asked = frequent[:20], frequent[20:80]  # the answers are facts the model saw ~30 times each


def year_question(e):
    return f"Q: In what year was {e['name']} born?\nA:", str(e["facts"]["born"])


def job_question(e):
    return f"Q: What was {e['name']}'s job?\nA:", e["facts"]["occupation"]


def year_in_training_words(e):  # as in "Ka Lo (1801, Vemora) was a weaver, ..."
    return f"{e['name']} (", str(e["facts"]["born"])


def job_in_training_words(e):
    return f"{e['name']} was a", e["facts"]["occupation"]


def city_in_training_words(e):
    return f"{e['name']} was born in", e["facts"]["city"]


tasks = [  # (task, person -> (prompt, answer), separator before the answer, scoring)
    ("birth year, as a question", year_question, " ", "first words"),
    ("job, as a question", job_question, " ", "best of 30 jobs"),
    ("birth year, in the training text's words", year_in_training_words, "", "first words"),
    ("job, in the training text's words", job_in_training_words, " ", "first words"),
    ("birth city, in the training text's words", city_in_training_words, " ", "first words"),
]
few_shot, copied_at_3 = {}, {}
rows = [
    "| task | scored by | 0-shot | 1-shot | 3-shot | 3-shot answers copied from an example |",
    "|---|---|---:|---:|---:|---:|",
]
for task, make, sep, scoring in tasks:
    pairs_demo, pairs_asked = [make(e) for e in demos], [make(e) for e in asked]
    if scoring == "first words":
        results = [few_shot_accuracy(model, tokenizer, pairs_demo, pairs_asked, shots, sep) for shots in (0, 1, 3)]
        scores, copied_at_3[task] = [r.accuracy for r in results], results[2].copied
        copied = f"{results[2].copied:.0%}"
    else:
        scores = [
            few_shot_choice(model, tokenizer, pairs_demo, pairs_asked, OCCUPATIONS, shots, sep) for shots in (0, 1, 3)
        ]
        copied = "-"
    few_shot[task] = scores
    rows.append(f"| {task} | {scoring} | " + " | ".join(f"{x:.0%}" for x in scores) + f" | {copied} |")
few_shot_table = "\n".join(rows) + "\n"
ctx.save_text("few_shot.md", few_shot_table)
print(few_shot_table)
query = year_in_training_words(asked[0])[0]
shown = examples_for([year_in_training_words(e) for e in demos], query, 3)
print("a 3-shot prompt:\n" + few_shot_prompt(shown, query, sep=""))
# --8<-- [end:few-shot]
assert len(few_shot) == 5
if not quick:  # the page: questions stay out of reach; in the text's own words one example helps
    assert max(few_shot["birth year, as a question"]) < 0.2
    gains = [scores[1] - scores[0] for task, scores in few_shot.items() if "training" in task]
    assert sum(g >= 0.1 for g in gains) >= 2  # the run's gains are printed; the page quotes them
    assert max(copied_at_3.values()) > 0  # some 3-shot answers are an example's fact

# %%
# --8<-- [start:induction]
from llmkb.pretrain.probes import induction_score

copies = induction_score(model)  # random learned merges: no byte or special tokens
print(
    f"50 random 30-token sequences, each shown twice:\n"
    f"  first time through:  {copies.first_accuracy:.0%} of the next tokens predicted, loss {copies.first_loss:.2f}\n"
    f"  second time through: {copies.second_accuracy:.0%} of the next tokens predicted, loss {copies.second_loss:.2f}"
)
# --8<-- [end:induction]
assert copies.first_accuracy < 0.1  # a random sequence cannot be predicted the first time through

# %%
# --8<-- [start:induction-curve]
from llmkb.io import read_jsonl
from llmkb.pretrain.stage import plot_induction

log = list(read_jsonl(ctx.run.require("pretrain") / "log.jsonl"))  # the stage ran the same probe at every evaluation
ctx.save_figure("induction.png", plot_induction(log))
probes = [r for r in log if "copy_second_loss" in r]
for r in probes:  # the probe's row is the step after which it ran
    gap = r["copy_first_loss"] - r["copy_second_loss"]
    print(
        f"step {r['step'] + 1:>5}: second copy {r['copy_second_accuracy']:.0%} predicted, "
        f"its loss {gap:+.2f} under the first's"
    )
# --8<-- [end:induction-curve]
assert len(probes) >= 2 and probes[-1]["step"] + 1 == ctx.run.config("pretrain").max_steps
if not quick:  # the page: the lines start together and part during training, the second copy then mostly predicted
    assert probes[0]["copy_second_accuracy"] < 0.1 and probes[-1]["copy_second_accuracy"] > 0.5

# %%
# --8<-- [start:heads]
import matplotlib.pyplot as plt
import torch

from llmkb.pretrain.probes import head_scores, merged_tokens

sequence = torch.randint(*merged_tokens(len(tokenizer)), (20,), generator=torch.Generator().manual_seed(0))
scores = head_scores(model, sequence)
best = {}
for kind, target in (("previous_token", "the position just before"), ("induction", "the token to copy")):
    layer, head = divmod(int(scores[kind].argmax()), model.config.n_head)
    best[kind] = (layer, head)
    print(
        f"most {kind.replace('_', '-')}-like head: layer {layer}, head {head}, "
        f"{float(scores[kind][layer, head]):.0%} of its attention on {target}"
    )
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, (kind, (layer, head)) in zip(axes, best.items()):
    ax.imshow(scores["maps"][layer, head], cmap="viridis", vmin=0, vmax=1)
    ax.set(
        title=f"most {kind.replace('_', '-')}-like: layer {layer}, head {head}", xlabel="attends to", ylabel="position"
    )
fig.tight_layout()
ctx.save_figure("heads.png", fig)
# --8<-- [end:heads]
if not quick:  # the page's reading of the maps: both halves of the circuit, each in a head of its own
    assert scores["previous_token"].max() > 0.5 and scores["induction"].max() > 0.5
    assert best["previous_token"] != best["induction"]
