"""The psychology stage: the SFT model's hallucinations measured, and the refusal fix trained and measured.

In: ``runs/<run>/data/miniweb/manifest.json`` (the invented people), ``pretrain/model`` and ``sft/``
(its model, data and settings). Out, in ``runs/<run>/psychology/``:

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
from llmkb.psychology.config import PsychologyConfig
from llmkb.stages import RunDir, Stage, register


def groups(config: PsychologyConfig, run_dir: RunDir,
           sft_train: list[dict]) -> tuple[list[dict], dict[str, list[dict]], list[dict]]:  # fmt: skip
    """(questions to interrogate the model with, held-out question groups to measure on, everyone).

    ``sft_train``: the SFT train conversations (:func:`llmkb.sft.stage.conversations`), which say whom SFT trained on.
    """
    from llmkb.psychology.hallucination import people, questions

    everyone = people(run_dir.require("data") / "miniweb" / "manifest.json")
    trained_names = {r["meta"]["name"] for r in sft_train if r["type"] == "instruction"}
    trained = [e for e in everyone["frequent"] if e["name"] in trained_names]
    held_out = [e for e in everyone["frequent"] if e["name"] not in trained_names]
    n, per, seed = config.probe_people, config.questions_per_person, config.seed
    probe = questions(trained, per, seed) + questions(everyone["once"][:n], per, seed) + questions(everyone["never"][:n], per, seed)
    k, other = config.eval_questions_per_person, seed + 1
    measure = {
        "frequent, trained in SFT": questions(trained, 1, other),
        "frequent, held out of SFT": questions(held_out, k, other),
        "once (new names)": questions(everyone["once"][n:], k, other),
        "never (new names)": questions(everyone["never"][n:], k, other),
    }
    return probe, measure, [e for group in everyone.values() for e in group]


def run(config: PsychologyConfig, run_dir: RunDir) -> dict:
    from llmkb.model.hf import load_pretrained as load_model
    from llmkb.model.hf import save_pretrained
    from llmkb.psychology.hallucination import answer_kinds, interrogate, rates, refusals
    from llmkb.psychology.memory import with_passage
    from llmkb.sft.data import tokenized_length
    from llmkb.sft.stage import conversations, sft_model
    from llmkb.sft.train import fine_tune, init_chat_tokens

    config.check()
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
    pasted = {name: [r for r in with_passage(records, entities, config.seed) if tokenized_length(tokenizer, r) <= context]
              for name, records in measure.items()}  # fmt: skip
    in_context = {name: rates(answer_kinds(sft, tokenizer, records)) for name, records in pasted.items()}
    write_json(out / "memory.json", {"from_memory": before, "with_passage": in_context,
                                     "questions_with_passage": {k: len(v) for k, v in pasted.items()}})  # fmt: skip

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
    write_json(out / "hallucination.json", {"before": before, "after": after, "questions": {k: len(v) for k, v in measure.items()}})

    def short(name: str) -> str:  # "never (new names)" -> "never"
        return name.split(" ")[0].rstrip(",") + ("_sft" if "trained" in name else "_held_out" if "held out" in name else "")

    metrics = {"probe_questions": len(probe), "unknown_questions": len(refusal_data), "retrain_steps": summary["steps"]}
    for name in measure:
        metrics[f"{short(name)}_with_passage_right"] = in_context[name]["right"]
        for when, table in (("before", before), ("after", after)):
            metrics[f"{short(name)}_{when}_right"] = table[name]["right"]
            metrics[f"{short(name)}_{when}_refused"] = table[name]["refused"]
            metrics[f"{short(name)}_{when}_made_up"] = table[name]["made_up"]
    return metrics


QUICK = {"probe_people": 4, "questions_per_person": 1, "eval_questions_per_person": 1, "samples": 2}

register(Stage(name="psychology", summary="hallucinations of the SFT model; interrogate it, train refusals, measure again",
               config_cls=PsychologyConfig, run=run, needs=("sft",), profiles={"quick": QUICK}))  # fmt: skip
