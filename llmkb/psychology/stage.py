"""The psychology stages: hallucinations and the refusal fix; a search tool; spelling and counting.

``psychology`` measures the SFT model's hallucinations and trains the refusal fix; ``search``
(:func:`run_search`) and ``spelling`` (:func:`run_spelling`) each fine-tune the SFT model on one
new skill and measure it; their files are listed in their docstrings. All three need only
``sft`` (and what it read), so the pipeline can run them side by side.

In: ``runs/<run>/data/miniweb/manifest.json`` (the invented people), ``pretrain/model`` and ``sft/``
(its model, data and settings). Out of ``psychology``, in ``runs/<run>/psychology/``:

- ``refusals/data.jsonl``: the questions interrogation found the SFT model does not know, answered
  with a refusal; ``refusals/model``: SFT redone from the base model on the SFT data plus those;
- ``hallucination.json``: for each group of held-out questions (people SFT trained on, people held
  out of SFT, people the web mentions once, people it never mentions), the share of replies that
  are right, refused or made up, before and after;
- ``memory.json``: the SFT model on the same groups with the person's facts pasted before the
  question (:func:`llmkb.psychology.memory.with_passage`) against the question alone.

The groups used for measuring share no person with the interrogated ones except the SFT-trained
people, whose questions are drawn with another seed (other facts and phrasings may repeat: those
people are the ones the model is supposed to know).
"""

from __future__ import annotations

import dataclasses
import random

from llmkb.io import write_json, write_jsonl
from llmkb.psychology.config import PsychologyConfig, SearchConfig, SpellingConfig
from llmkb.stages import RunDir, Stage, register


def groups(
    config: PsychologyConfig, run_dir: RunDir, sft_train: list[dict]
) -> tuple[list[dict], dict[str, list[dict]], list[dict]]:
    """(questions to interrogate the model with, held-out question groups to measure on, everyone).

    ``sft_train``: the SFT train conversations (:func:`llmkb.sft.stage.conversations`), which say whom SFT trained on.
    """
    from llmkb.psychology.hallucination import people, questions

    everyone = people(run_dir.require("data") / "miniweb" / "manifest.json")
    trained_names = {r["meta"]["name"] for r in sft_train if r["type"] == "instruction"}
    trained = [e for e in everyone["frequent"] if e["name"] in trained_names]
    held_out = [e for e in everyone["frequent"] if e["name"] not in trained_names]
    n, per, seed = config.probe_people, config.questions_per_person, config.seed
    probe = (
        questions(trained, per, seed)
        + questions(everyone["once"][:n], per, seed)
        + questions(everyone["never"][:n], per, seed)
    )
    k, other = config.eval_questions_per_person, seed + 1
    measure = {
        "frequent, trained in SFT": questions(trained, 1, other),
        "frequent, held out of SFT": questions(held_out, k, other),
        "once (new names)": questions(everyone["once"][n:], k, other),
        "never (new names)": questions(everyone["never"][n:], k, other),
    }
    return probe, measure, [e for group in everyone.values() for e in group]


def short(name: str) -> str:
    """A group's name in metric keys.

    Examples:
        >>> [short(n) for n in ("frequent, trained in SFT", "frequent, held out of SFT", "never (new names)")]
        ['frequent_sft', 'frequent_held_out', 'never']
    """
    return name.split(" ")[0].rstrip(",") + ("_sft" if "trained" in name else "_held_out" if "held out" in name else "")


def run(config: PsychologyConfig, run_dir: RunDir) -> dict:
    from llmkb.model.hf import load_pretrained as load_model
    from llmkb.model.hf import save_pretrained
    from llmkb.psychology.hallucination import answer_kinds, interrogate, rates, refusals
    from llmkb.psychology.memory import with_passage
    from llmkb.sft.data import tokenized_length
    from llmkb.sft.stage import conversations, sft_model
    from llmkb.sft.train import fine_tune, init_chat_tokens

    out = run_dir.stage("psychology")
    sft, tokenizer = sft_model(run_dir)
    sft_train = conversations(run_dir)
    probe, measure, entities = groups(config, run_dir, sft_train)
    context = sft.config.context

    known = interrogate(sft, tokenizer, probe, config.samples, config.min_right, config.seed)
    refusal_data = refusals([r for r, k in zip(probe, known, strict=True) if not k], config.seed)
    write_jsonl(out / "refusals" / "data.jsonl", refusal_data)
    before = {name: rates(answer_kinds(sft, tokenizer, records)) for name, records in measure.items()}
    # Conversations longer than the context are left out (the quick profile's 64 tokens fit few passages).
    pasted = {
        name: [r for r in with_passage(records, entities, config.seed) if tokenized_length(tokenizer, r) <= context]
        for name, records in measure.items()
    }
    in_context = {name: rates(answer_kinds(sft, tokenizer, records)) for name, records in pasted.items()}
    write_json(
        out / "memory.json",
        {
            "from_memory": before,
            "with_passage": in_context,
            "questions_with_passage": {k: len(v) for k, v in pasted.items()},
        },
    )

    # SFT again, from the same base model with the same settings, on the SFT data plus the refusals.
    train = sft_train + refusal_data
    random.Random(f"psychology:mix:{config.seed}").shuffle(train)
    sft_config = dataclasses.replace(run_dir.config("sft"), device=config.device, progress=config.progress)
    base = load_model(run_dir.require("pretrain") / "model")
    if sft_config.init_special == "mean":
        init_chat_tokens(base, tokenizer)
    model, _, summary = fine_tune(base, tokenizer, train, [], sft_config)
    save_pretrained(model.cpu(), out / "refusals" / "model", tokenizer=tokenizer)
    after = {name: rates(answer_kinds(model, tokenizer, records)) for name, records in measure.items()}
    write_json(
        out / "hallucination.json",
        {"before": before, "after": after, "questions": {k: len(v) for k, v in measure.items()}},
    )

    metrics = {"probe_questions": len(probe), "unknown_questions": len(refusal_data), "retrain_steps": summary["steps"]}
    for name in measure:
        metrics[f"{short(name)}_with_passage_right"] = in_context[name]["right"]
        for when, table in (("before", before), ("after", after)):
            metrics[f"{short(name)}_{when}_right"] = table[name]["right"]
            metrics[f"{short(name)}_{when}_refused"] = table[name]["refused"]
            metrics[f"{short(name)}_{when}_made_up"] = table[name]["made_up"]
    return metrics


def teach(model, tokenizer, records: list[dict], config: SearchConfig | SpellingConfig, out) -> tuple:
    """Fine-tune the chat model on ``records`` with ``config``'s steps and rates; save it and its log in ``out``.

    Returns ``(model in eval mode, fine_tune's summary)``.
    """
    from llmkb.model.hf import save_pretrained
    from llmkb.sft.config import SFTConfig
    from llmkb.sft.train import fine_tune

    sft_config = SFTConfig(
        max_steps=config.max_steps,
        batch_size=config.batch_size,
        lr=config.lr,
        warmup_steps=config.warmup_steps,
        eval_every=config.max_steps,
        seed=config.seed,
        device=config.device,
        progress=config.progress,
    )
    model, log, summary = fine_tune(model, tokenizer, records, records[:32], sft_config)
    write_jsonl(out / "log.jsonl", log)
    save_pretrained(model.cpu(), out / "model", tokenizer=tokenizer)
    return model.eval(), summary


def run_search(config: SearchConfig, run_dir: RunDir) -> dict:
    """Mitigation 2: fine-tune the SFT model to call a search tool; answer the held-out questions with and without it.

    In: ``data/train.jsonl`` (the store), ``sft/`` (model, conversations). Out, in ``runs/<run>/search/``:
    ``model`` (with the two search tokens), ``log.jsonl`` (training), ``results.json`` (per group of
    held-out people: the SFT model without the tool and the search model with it: right / refused /
    made up, how often it called, searched the exact name, found a sentence) and ``replies.jsonl``
    (every question's final reply, its calls and its kind: right, refused or made up).

    The training conversations are searches about invented people and, a share ``memory_share`` of
    them, questions about SFT-trained people that interrogation found the SFT model knows, answered
    without a call. The people SFT trained on are measured too (on other questions): there, calling
    less is the goal.
    """
    from llmkb.psychology.hallucination import answer_kinds, classify, interrogate, rates
    from llmkb.psychology.search import TOOL, DocumentStore, from_memory, search_answers, search_conversations
    from llmkb.sft.data import check_length
    from llmkb.sft.stage import conversations, sft_model
    from llmkb.sft.tools import add_tool_tokens
    from llmkb.sft.train import grow_vocab

    out = run_dir.stage("search")
    store = DocumentStore.from_corpus(run_dir.require("data"))
    sft, tokenizer = sft_model(run_dir)
    probe, measure, everyone = groups(
        PsychologyConfig(eval_questions_per_person=config.questions_per_person, seed=config.seed),
        run_dir,
        conversations(run_dir),
    )
    trained_names = {r["meta"]["name"] for r in measure["frequent, trained in SFT"]}
    asked = [r for r in probe if r["meta"]["name"] in trained_names]  # every fact of every SFT-trained person
    known = interrogate(sft, tokenizer, asked, config.samples, config.min_right, config.seed)
    without = {name: rates(answer_kinds(sft, tokenizer, records)) for name, records in measure.items()}

    model, tokenizer = sft, add_tool_tokens(tokenizer, TOOL)
    grow_vocab(model, tokenizer)
    context = max(config.context, model.config.context)
    model.config = dataclasses.replace(model.config, context=context)
    cities = sorted({e["facts"]["city"] for e in everyone})
    remembered = from_memory(asked, known, round(config.conversations * config.memory_share), config.seed)
    searched = search_conversations(
        config.conversations - len(remembered), cities, config.no_results_share, config.seed
    )
    mixed = searched + remembered
    random.Random(f"psychology:search:mix:{config.seed}").shuffle(mixed)
    train, skipped = check_length(tokenizer, mixed, context, skip=True)
    if not train:
        raise ValueError(f"no search conversation fits the context of {context} tokens; set a larger context")
    model, summary = teach(model, tokenizer, train, config, out)

    results, replies = {}, []
    for name, records in measure.items():
        answered = search_answers(model, tokenizer, records, store)
        for record, reply in zip(records, answered, strict=True):
            reply["kind"] = classify(record, reply["text"])
        with_tool = rates([[a["kind"]] for a in answered])
        share = {k: round(sum(a[k] for a in answered) / len(answered), 4) for k in ("exact_query", "found")}
        direct = [a for a in answered if not a["calls"]]
        results[name] = {
            "without_tool": without[name],
            "with_tool": with_tool,
            **share,
            "called": round(1 - len(direct) / len(answered), 4),
            # Of the questions answered without a call, the share right: is not searching a good decision?
            "right_without_call": round(sum(a["kind"] == "right" for a in direct) / len(direct), 4) if direct else None,
            "questions": len(records),
        }
        replies += [
            {"group": name, "question": r["messages"][0]["content"], **a}
            for r, a in zip(records, answered, strict=True)
        ]
    write_json(out / "results.json", results)
    write_jsonl(out / "replies.jsonl", replies)

    metrics = {
        "train_conversations": len(train),
        "skipped_long": skipped,
        "memory_conversations": len(remembered),
        "known_questions": sum(known),
        "asked_questions": len(asked),
        "steps": summary["steps"],
        "s_per_step": summary["s_per_step"],
        "store_sentences": len(store.sentences),
    }
    for name, row in results.items():
        key = short(name)
        metrics |= {
            f"{key}_called": row["called"],
            f"{key}_without_right": row["without_tool"]["right"],
            f"{key}_with_right": row["with_tool"]["right"],
            f"{key}_without_refused": row["without_tool"]["refused"],
            f"{key}_with_refused": row["with_tool"]["refused"],
            f"{key}_exact_query": row["exact_query"],
            f"{key}_found": row["found"],
        }
        if row["right_without_call"] is not None:  # no such question when it called every time
            metrics[f"{key}_right_without_call"] = row["right_without_call"]
    return metrics


def run_spelling(config: SpellingConfig, run_dir: RunDir) -> dict:
    """Fine-tune the SFT model to spell and count letters; score taught and held-out words, one-token vs several.

    In: ``data/train.jsonl`` (the words), ``sft/model``. Out, in ``runs/<run>/spelling/``: ``model``,
    ``log.jsonl`` (training), ``results.json`` (for taught and held-out words: the share right per
    question kind and token split, and the share a model answering "1" to every count would get)
    and ``replies.jsonl``.
    """
    from llmkb.corpus import load_split
    from llmkb.psychology.spelling import corpus_words, letter_questions, scores, token_count
    from llmkb.inference.chat import respond
    from llmkb.sft.evaluate import prompt_of
    from llmkb.sft.stage import sft_model

    out = run_dir.stage("spelling")
    model, tokenizer = sft_model(run_dir)
    words = corpus_words((doc["text"] for doc in load_split(run_dir.require("data"), "train")), config.min_count)
    random.Random(f"psychology:words:{config.seed}").shuffle(words)
    if len(words) < 2:
        raise ValueError(
            f"the corpus has {len(words)} words used {config.min_count}+ times; spelling needs at least two"
        )
    held_out = words[: min(config.held_out_words, len(words) // 2)]
    taught = words[len(held_out) : len(held_out) + config.train_words]
    tokens = {w: token_count(tokenizer, w) for w in held_out + taught}
    train = letter_questions(taught, config.seed)
    model, summary = teach(model, tokenizer, train, config, out)

    results, replies = {}, []
    for name, group in (("taught", taught[: len(held_out)]), ("held out", held_out)):
        records = letter_questions(group, config.seed + 1)  # other letters to count than in training
        texts = [text for text, _ in respond(model, tokenizer, [prompt_of(r) for r in records], max_new_tokens=24)]
        results[name] = scores(records, texts, tokens)
        counts = [r for r in records if r["type"] == "count"]
        results[name]["count"]["always 1"] = {
            "right": round(sum(r["messages"][1]["content"] == "1" for r in counts) / len(counts), 4),
            "questions": len(counts),
        }
        replies += [
            {
                "group": name,
                "question": r["messages"][0]["content"],
                "reply": t,
                "answer": r["messages"][1]["content"],
                "tokens": tokens[r["meta"]["word"]],
            }
            for r, t in zip(records, texts, strict=True)
        ]
    write_json(
        out / "results.json",
        {
            "words": len(words),
            "one_token_share": round(sum(v == 1 for v in tokens.values()) / len(tokens), 4),
            "results": results,
        },
    )
    write_jsonl(out / "replies.jsonl", replies)
    metrics = {
        "corpus_words": len(words),
        "taught_words": len(taught),
        "held_out_words": len(held_out),
        "steps": summary["steps"],
    }
    for name, table in results.items():
        for kind in ("spell", "count"):
            for split, key in (("one token", "one"), ("several tokens", "several")):
                if split in table.get(kind, {}):
                    metrics[f"{name.replace(' ', '_')}_{kind}_{key}"] = table[kind][split]["right"]
                    if kind == "spell":
                        metrics[f"{name.replace(' ', '_')}_letters_{key}"] = table[kind][split]["letters"]
    return metrics


QUICK = {"probe_people": 4, "questions_per_person": 1, "eval_questions_per_person": 1, "samples": 2}
QUICK_SPELLING = {"train_words": 16, "held_out_words": 8, "max_steps": 4, "batch_size": 8}
# The quick model's 64 tokens hold no search conversation: it runs with 160 (the plumbing, not the skill,
# is what quick checks).
QUICK_SEARCH = {"conversations": 32, "max_steps": 4, "batch_size": 8, "context": 160, "questions_per_person": 1}

register(
    Stage(
        name="psychology",
        summary="hallucinations of the SFT model; interrogate it, train refusals, measure again",
        config_cls=PsychologyConfig,
        run=run,
        needs=("sft",),
        profiles={"quick": QUICK},
    )
)
# The search fine-tune is the longest stage after SFT (about 5 minutes on 2 cores): it starts first.
register(
    Stage(
        name="search",
        summary="teach the chat model a search tool over the crawled text; answers with and without it",
        config_cls=SearchConfig,
        run=run_search,
        needs=("sft",),
        profiles={"quick": QUICK_SEARCH},
        priority=1,
    )
)
register(
    Stage(
        name="spelling",
        summary="teach the chat model to spell and count letters; taught vs new words, one token vs several",
        config_cls=SpellingConfig,
        run=run_spelling,
        needs=("sft",),
        profiles={"quick": QUICK_SPELLING},
    )
)
