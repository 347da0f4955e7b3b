"""LLM psychology: hallucinations and refusals, recollection vs working memory, self, thinking, spelling.

Run it: ``llmkb examples run psychology --profile quick`` (or ``python examples/psychology.py``).
The psychology page includes its sections; the docs build saves its tables.
"""

# %% [markdown]
# # What the chat model knows, and what it only sounds like it knows
# The psychology stage asks the SFT model questions about invented people the mini-web mentions
# often, once or never; finds the questions it cannot answer by sampling it several times; trains
# SFT again with "I don't know" for those; and measures both models on people neither training
# run saw. It also asks the SFT model the same questions with the facts pasted into the prompt.
# The last sections gather the other stages' measurements of the model's limits.

# %%
# --8<-- [start:load]
from collections import Counter

from llmkb.examples import context
from llmkb.io import read_json, read_jsonl
from llmkb.psychology.hallucination import people
from llmkb.psychology.stage import groups
from llmkb.sft.stage import conversations

ctx = context("psychology")
psy_dir = ctx.ensure("psychology")  # runs data -> tokenizer -> pretrain -> sft -> psychology if this run lacks them
metrics = ctx.run.metrics("psychology")
config = ctx.run.config("psychology")
everyone = people(ctx.run.require("data") / "miniweb" / "manifest.json")
probe, measure, entities = groups(config, ctx.run, conversations(ctx.run))  # the same questions the stage asked
for frequency, group in everyone.items():
    print(
        f"{frequency:>8}: {len(group)} people, e.g. {group[0]['name']} "
        f"(pages about them: {len(group[0].get('pages', []))})"
    )
print()
for name, records in measure.items():
    print(f"held-out group {name!r}: {len(records)} questions")
# --8<-- [end:load]
quick = ctx.profile == "quick"  # tiny models trained for seconds: the mechanics run, the numbers mean little
assert [len(v) for v in measure.values()] == list(read_json(psy_dir / "hallucination.json")["questions"].values())

# %%
# --8<-- [start:made-up]
from llmkb.inference.chat import respond
from llmkb.model.hf import load_pretrained as load_model
from llmkb.sft.evaluate import prompt_of
from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

sft_dir = ctx.run.require("sft")
sft, tokenizer = load_model(sft_dir / "model"), load_tokenizer(sft_dir / "model")
never = measure["never (new names)"][:5]  # people no page of the mini-web mentions
replies = respond(sft, tokenizer, [prompt_of(r) for r in never], max_new_tokens=48)  # greedy
for record, (text, _) in zip(never, replies):
    print(f"Q: {record['messages'][0]['content']}\nA: {text}\n")
# --8<-- [end:made-up]
assert len(replies) == len(never)

# %%
# --8<-- [start:before]
hallucination = read_json(psy_dir / "hallucination.json")
table = "| people asked about | questions | right | refused | made up |\n|---|---:|---:|---:|---:|\n"
for name, row in hallucination["before"].items():
    table += (
        f"| {name} | {hallucination['questions'][name]} | {row['right']:.0%} | {row['refused']:.0%} | "
        f"{row['made_up']:.0%} |\n"
    )
ctx.save_text("before.md", table)
print(table)
# --8<-- [end:before]
if not quick:
    assert hallucination["before"]["never (new names)"]["made_up"] > 0.9  # it invents, it never declines

# %%
# --8<-- [start:interrogate]
refusal_data = list(read_jsonl(psy_dir / "refusals" / "data.jsonl"))
frequency_of = {e["name"]: f for f, group in everyone.items() for e in group}
print(
    f"interrogation: {metrics['probe_questions']} questions, {config.samples} sampled replies each; "
    f"known if at least {config.min_right} is right"
)
print(f"not known: {metrics['unknown_questions']} questions, which become refusal conversations")
probed = Counter(frequency_of[r["meta"]["name"]] for r in probe)
unknown = Counter(frequency_of[r["meta"]["name"]] for r in refusal_data)
for frequency in ("frequent", "once", "never"):
    print(f"  people mentioned {frequency:>8}: {unknown[frequency]:>3} of {probed[frequency]:>3} questions not known")
print()
for record in refusal_data[:3]:
    for message in record["messages"]:
        print(f"{message['role']:>9}: {message['content']}")
# --8<-- [end:interrogate]
assert metrics["unknown_questions"] == len(refusal_data) <= metrics["probe_questions"] == len(probe)
assert all(r["type"] == "refusal" and r["meta"]["name"] in r["messages"][1]["content"] for r in refusal_data)

# %%
# --8<-- [start:after]
table = (
    "| people asked about | right: before | right: after | refused: before | refused: after | "
    "made up: before | made up: after |\n|---|---:|---:|---:|---:|---:|---:|\n"
)
for name, before in hallucination["before"].items():
    after = hallucination["after"][name]
    table += (
        f"| {name} | {before['right']:.0%} | {after['right']:.0%} | {before['refused']:.0%} | "
        f"{after['refused']:.0%} | {before['made_up']:.0%} | {after['made_up']:.0%} |\n"
    )
ctx.save_text("before_after.md", table)
print(table)
print(
    f"SFT redone from the base model on the SFT data + {len(refusal_data)} refusals: {metrics['retrain_steps']} steps"
)
# --8<-- [end:after]
if not quick:
    # On three seeds the retrained model declined on 53-96% of these questions, the SFT model on none.
    for name in ("once (new names)", "never (new names)"):
        assert hallucination["after"][name]["refused"] > hallucination["before"][name]["refused"] + 0.25

# %%
# --8<-- [start:after-replies]
retrained = load_model(psy_dir / "refusals" / "model")
after_replies = respond(retrained, tokenizer, [prompt_of(r) for r in never], max_new_tokens=48)
for record, (before_text, _), (after_text, _) in zip(never, replies, after_replies):
    print(f"Q: {record['messages'][0]['content']}\n  before: {before_text}\n  after:  {after_text}")
# --8<-- [end:after-replies]
assert len(after_replies) == len(never)
from llmkb.psychology.hallucination import classify

declined = [(r, text) for r, (text, _) in zip(never, after_replies) if classify(r, text) == "refused"]
if not quick:  # the page: the refusals name the person asked about, copied from the question
    assert declined and sum(r["meta"]["name"] in text for r, text in declined) > len(declined) / 2

# %%
# --8<-- [start:memory]
memory = read_json(psy_dir / "memory.json")
table = (
    "| people asked about | right from memory | questions with the passage | right with the passage |\n"
    "|---|---:|---:|---:|\n"
)
for name, row in memory["from_memory"].items():
    table += (
        f"| {name} | {row['right']:.0%} | {memory['questions_with_passage'][name]} | "
        f"{memory['with_passage'][name]['right']:.0%} |\n"
    )
ctx.save_text("memory.md", table)
print(table)
# --8<-- [end:memory]
assert set(memory["with_passage"]) == set(memory["from_memory"]) == set(measure)
if not quick:  # the page: for people no page mentions the passage is everything, and the model reads it
    never_row = "never (new names)"
    assert memory["with_passage"][never_row]["right"] > 0.5 > memory["from_memory"][never_row]["right"]

# %%
# --8<-- [start:passage]
from llmkb.psychology.hallucination import classify
from llmkb.psychology.memory import with_passage
from llmkb.sft.data import tokenized_length

pasted = [r for r in with_passage(never, entities, config.seed) if tokenized_length(tokenizer, r) <= sft.config.context]
for record in pasted[:2]:  # the quick profile's 64-token context may fit none
    ((text, _),) = respond(sft, tokenizer, [prompt_of(record)], max_new_tokens=48)
    print(f"user:      {record['messages'][0]['content']}\nassistant: {text}")
    print(f"reference: {record['messages'][1]['content']} -> the reply is {classify(record, text)}\n")
# --8<-- [end:passage]
assert all(r["meta"]["name"] in r["messages"][0]["content"] for r in pasted)

# %%
# --8<-- [start:self]
sft_metrics = ctx.run.metrics("sft")
phrasings = read_json(sft_dir / "identity.json")["sft"]["questions"]  # how many phrasings were asked
print(
    f"'Who are you?' in {phrasings} new phrasings, no system message: the base model says 'Pebble' "
    f"{sft_metrics['identity_base']:.0%} of the time, the SFT model {sft_metrics['identity_sft']:.0%}"
)
print(
    "told a new name in a system message, the SFT model uses it "
    f"{sft_metrics['identity_new_system_name']:.0%} of the time"
)
# --8<-- [end:self]
assert sft_metrics["identity_base"] == 0
if not quick:
    assert sft_metrics["identity_sft"] >= 0.75

# %%
# --8<-- [start:think]
grpo = read_json(ctx.ensure("grpo") / "metrics.json")
print(f"{ctx.run.config('grpo').digits}-digit sums, {grpo['test_sums']} held out, same model size, data and steps:")
print(f"  answer after writing out every column:        {grpo['steps_accuracy']:.0%} right")
print(f"  answer as the first tokens:                   {grpo['direct_accuracy']:.0%} right")
print(
    f"  call the calculator, then copy out its result: {grpo['calc_accuracy']:.0%} right "
    f"(it called the tool on {grpo['calc_called']:.0%} of the sums)"
)
# --8<-- [end:think]
if not quick:
    # Three seeds (scripts/seed_spread.py): worked steps 95.5-100% right, direct answers 0-0.5%, the calculator
    # called on every sum and its answers 69-96% right.
    assert grpo["steps_accuracy"] > grpo["direct_accuracy"] + 0.5
    assert grpo["calc_accuracy"] > grpo["direct_accuracy"] + 0.3
    assert grpo["calc_called"] > 0.9

# %%
# --8<-- [start:calculator]
from llmkb.rl.stage import sums
from llmkb.sft.tools import answer_with_tools, calculator

calc_dir = ctx.run.require("grpo") / "calc" / "model"  # the small model trained on calculator conversations
calc_model, calc_tokenizer = load_model(calc_dir).eval(), load_tokenizer(calc_dir)
held_out = sums(ctx.run.config("grpo"))[1][0]  # a sum none of the three models trained on
question = held_out["messages"][:1]
(reply,) = answer_with_tools(calc_model, calc_tokenizer, [question], {"calc": calculator})
print(f"user:      {question[0]['content']}")
for c in reply["calls"]:  # what the model wrote, then what the runtime put into the context
    print(f"assistant: {c['call']}\ntool:      {c['result']}")
print(f"assistant: {reply['text']}")

# Where the wrong answers go wrong, over more held-out sums: the call, or copying the tool's result.
tally = sums(ctx.run.config("grpo"))[1][:50]
replies = answer_with_tools(calc_model, calc_tokenizer, [r["messages"][:1] for r in tally], {"calc": calculator})
right_call = [bool(r["calls"]) and r["calls"][0]["result"] == str(s["meta"]["answer"]) for r, s in zip(replies, tally)]
copied = [ok and r["text"].strip().endswith(r["calls"][0]["result"]) for ok, r in zip(right_call, replies)]
print(
    f"{len(tally)} held-out sums: the call computed the right sum {sum(right_call)} times; "
    f"the answer copied that result {sum(copied)} times"
)
# --8<-- [end:calculator]
assert all(c["tool"] == "calc" for c in reply["calls"])
assert sum(copied) <= sum(right_call) <= len(tally)

# %%
# --8<-- [start:spelling]
from llmkb.tokenizer.viz import letters_per_piece, token_pieces

web_tokenizer = load_tokenizer(ctx.run.require("tokenizer"))  # the tokenizer every model of this run reads with
words = ["strawberry", "raspberry"] + [everyone[f][0]["name"].split()[0] for f in ("frequent", "once", "never")]
for word in words:
    letter = Counter(word.lower()).most_common(1)[0][0]  # the word's most frequent letter ("r" in strawberry)
    pieces = [p.text for p in token_pieces(web_tokenizer, word) if p.ids]
    counts = letters_per_piece(pieces, letter)
    print(f"{word!r}: {len(pieces)} tokens {pieces}; {word.lower().count(letter)} x {letter!r}, per token {counts}")
# --8<-- [end:spelling]
assert all("".join(p.text for p in token_pieces(web_tokenizer, w)) == w for w in words)

# %% [markdown]
# ## Mitigation 2: a search tool
# The search stage fine-tunes the SFT model on tool conversations about invented people who exist
# nowhere else, then asks it the held-out questions with a document store over the crawled text.

# %%
# --8<-- [start:search]
search_dir = ctx.ensure("search")
search = read_json(search_dir / "results.json")
table = (
    "| people asked about | right without the tool | right with it | refused without / with | "
    "called the tool | right when it did not call | searched the exact name | found a sentence |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|\n"
)
for name, row in search.items():
    no_call = "-" if row["right_without_call"] is None else f"{row['right_without_call']:.0%}"
    table += (
        f"| {name} | {row['without_tool']['right']:.0%} | {row['with_tool']['right']:.0%} | "
        f"{row['without_tool']['refused']:.0%} / {row['with_tool']['refused']:.0%} | {row['called']:.0%} | "
        f"{no_call} | {row['exact_query']:.0%} | {row['found']:.0%} |\n"
    )
ctx.save_text("search.md", table)
print(table)
print(
    f"trained {ctx.run.metrics('search')['steps']} steps on "
    f"{ctx.run.metrics('search')['train_conversations']:,} conversations"
)
# --8<-- [end:search]
assert set(search) == set(measure)
if not quick:  # the page: the answer is read out of the search result, for people the web mentions once
    once = next(row for name, row in search.items() if name.startswith("once"))
    assert once["with_tool"]["right"] > 0.5 > once["without_tool"]["right"]
    # ... and it searches less for the people SFT taught it than for names it never read
    trained = search["frequent, trained in SFT"]
    assert trained["called"] < once["called"] - 0.2

# %%
# --8<-- [start:search-replies]
search_replies = list(read_jsonl(search_dir / "replies.jsonl"))
wanted = [("once", True, "right"), ("once", True, "made_up"), ("never", False, "refused")]  # (group, found, kind)
shown = [
    next((r for r in search_replies if r["group"].startswith(g) and r["found"] == found and r["kind"] == kind), None)
    for g, found, kind in wanted
]
for r in (r for r in shown if r is not None):  # the quick profile's model may give none of some kinds
    print(f"user:      {r['question']}")
    for c in r["calls"]:  # what the model wrote, then what the runtime put into the context
        print(f"assistant: {c['call']}\ntool:      {c['result']}")
    print(f"assistant: {r['text']}\n   ({r['kind'].replace('_', ' ')})\n")
# --8<-- [end:search-replies]
assert all(r["calls"] for r in shown if r is not None and r["found"])

# %% [markdown]
# ## Spelling and counting, one token or several
# The spelling stage fine-tunes the SFT model on spelling and letter-count questions about a
# thousand of the corpus's words, then asks about those words and about words it was never taught.

# %%
# --8<-- [start:letters]
letters = read_json(ctx.ensure("spelling") / "results.json")
splits = ("one token", "several tokens")
table = "| words | question | one-token words | words of several tokens |\n|---|---|---:|---:|\n"
for group, kinds in letters["results"].items():
    spell, count = kinds["spell"], kinds["count"]
    spelled = [
        f"{spell[s]['right']:.0%} of {spell[s]['questions']} ({spell[s]['letters']:.0%} of letters in place)"
        if s in spell
        else "-"
        for s in splits
    ]
    counted = [f"{count[s]['right']:.0%}" if s in count else "-" for s in splits]
    table += f"| {group} | spelled right | {spelled[0]} | {spelled[1]} |\n"
    table += f"| {group} | letter counted right | {counted[0]} | {counted[1]} |\n"
    table += f"| {group} | (answering 1 every time) | {count['always 1']['right']:.0%} of all counts | |\n"
ctx.save_text("letters.md", table)
print(table)
print(f"{letters['words']:,} corpus words; {letters['one_token_share']:.0%} of the asked words are a single token")
# --8<-- [end:letters]
assert set(letters["results"]) == {"taught", "held out"}

# %%
# --8<-- [start:letters-replies]
letter_replies = [
    r for r in read_jsonl(ctx.run.require("spelling") / "replies.jsonl") if r["question"].startswith("Spell")
]
for group in ("taught", "held out"):
    for r in [r for r in letter_replies if r["group"] == group][:4]:
        mark = "right" if r["reply"].strip() == r["answer"] else "wrong"
        print(f"{group:>8}, {r['tokens']} token(s): {r['question']:<22} -> {r['reply']!r:<24} {mark}")
# --8<-- [end:letters-replies]
assert letter_replies
