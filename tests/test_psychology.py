"""Hallucination experiments: reply kinds, interrogation, refusal data, and the stage on the quick profile."""

from __future__ import annotations

import shutil

import pytest

from llmkb.io import read_json, read_jsonl
from llmkb.psychology.config import PsychologyConfig
from llmkb.psychology.hallucination import REFUSALS, classify, people, questions, rates, refusals

PERSON = {
    "name": "Ka Lo",
    "frequency": "never",
    "facts": {"born": 1801, "city": "Vemora", "occupation": "astronomer", "relation": "rival", "related_to": "Zu Ba"},
}


def test_every_refusal_is_classified_as_one_and_names_the_person():
    records = questions([PERSON], per_person=4)
    assert len(records) == 4 and {r["meta"]["fact"] for r in records} == {"born", "city", "occupation", "relation"}
    for record in refusals(records):
        reply = record["messages"][-1]["content"]
        assert "Ka Lo" in reply and classify(record, reply) == "refused" and record["type"] == "refusal"
    for template in REFUSALS:
        assert classify(records[0], template.format(name="Ka Lo")) == "refused"
    # A confident answer with the wrong value is made up; the reference answer is right.
    assert classify(records[0], records[0]["messages"][-1]["content"]) == "right"
    assert classify(records[0], "Ka Lo was a baker born in Qqq in 1999, the rival of Mu Mu.") == "made_up"
    assert rates([]) == {"right": 0.0, "refused": 0.0, "made_up": 0.0}


def test_people_needs_every_frequency_and_settings_are_checked():
    with pytest.raises(ValueError, match="people of every frequency"):
        people({"entities": [PERSON]})
    with pytest.raises(ValueError, match="min_right"):
        PsychologyConfig(samples=2, min_right=3)


def test_interrogate_finds_exactly_the_people_the_model_answers_right_when_sampled(monkeypatch):
    import llmkb.psychology.hallucination
    from llmkb.psychology.hallucination import interrogate

    # A scripted model: how many of 4 sampled replies are right, per person. "lucky" is right once:
    # a greedy reply could have been that one, sampling shows it does not know.
    right_of = {"Al Bo": 4, "Ce Di": 2, "Lu Ck": 1, "Ne Ver": 0}
    everyone = [{**PERSON, "name": name} for name in right_of]
    records = questions(everyone, per_person=1)
    seen = {}

    def scripted(model, tokenizer, conversations, samples, temperature, seed, max_new_tokens):
        seen.update(samples=samples, seed=seed)
        out = []
        for conversation in conversations:
            record = next(r for r in records if r["messages"][0] == conversation[0])
            name, right = record["meta"]["name"], record["messages"][-1]["content"]
            out.append([right] * right_of[name] + [f"{name} was born in 1234 in Nowhere."] * (samples - right_of[name]))
        return out

    monkeypatch.setattr(llmkb.psychology.hallucination, "replies_per_prompt", scripted)
    known = interrogate(None, None, records, samples=4, min_right=2, seed=7)
    assert [r["meta"]["name"] for r, k in zip(records, known) if k] == ["Al Bo", "Ce Di"]
    assert seen == {"samples": 4, "seed": 7}
    assert interrogate(None, None, records, samples=4, min_right=1) == [True, True, True, False]


@pytest.fixture(scope="module")
def psych_run(quick_run, tmp_path_factory):
    from llmkb.stages import RunDir, run_stage

    run = RunDir(tmp_path_factory.mktemp("psych_runs") / "quick")
    for stage in ("data", "tokenizer"):
        shutil.copytree(quick_run.root / stage, run.root / stage)
    metrics = {name: run_stage(name, run, "quick") for name in ("pretrain", "sft", "psychology", "search", "spelling")}
    return run, metrics["psychology"]


def test_psychology_stage_writes_refusals_a_retrained_model_and_before_after_rates(psych_run):
    from llmkb.model.hf import load_pretrained

    run, m = psych_run
    out = run.root / "psychology"
    report = read_json(out / "hallucination.json")
    assert set(report["before"]) == set(report["after"]) == set(report["questions"])
    for table in (report["before"], report["after"]):
        for shares in table.values():
            assert set(shares) == {"right", "refused", "made_up"} and abs(sum(shares.values()) - 1) < 1e-3
    data = list(read_jsonl(out / "refusals" / "data.jsonl"))
    assert len(data) == m["unknown_questions"] <= m["probe_questions"]
    assert all(r["type"] == "refusal" and r["meta"]["name"] in r["messages"][-1]["content"] for r in data)
    assert load_pretrained(out / "refusals" / "model").num_params() > 0
    assert m["retrain_steps"] > 0
    # The settings each stage ran with, read back as their dataclasses (the quick profile's overrides included).
    assert run.config("psychology") == PsychologyConfig(
        probe_people=4, questions_per_person=1, eval_questions_per_person=1, samples=2
    )
    assert run.config("sft").max_steps == 30


def test_memory_report_compares_the_question_alone_with_the_passage_pasted(psych_run):
    run, m = psych_run
    report = read_json(run.root / "psychology" / "memory.json")
    assert set(report["from_memory"]) == set(report["with_passage"])
    assert all(0 <= m[k] <= 1 for k in m if k.endswith("_with_passage_right"))


def test_with_passage_states_the_facts_the_question_asks_for():
    from llmkb.psychology.memory import with_passage

    for record in with_passage(questions([PERSON], per_person=4), [PERSON]):
        prompt = record["messages"][0]["content"]
        assert str(record["meta"]["answer"]) in prompt.split("?")[0] and prompt.endswith("?")


def test_search_stage_grows_the_model_trains_and_scores_each_group_with_and_without_the_tool(psych_run):
    from llmkb.model.hf import load_pretrained as load_model
    from llmkb.psychology.search import TOOL
    from llmkb.sft.tools import tool_tokens
    from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

    run, _ = psych_run
    folder = run.require("search")
    tokenizer, model = load_tokenizer(folder / "model"), load_model(folder / "model")
    assert len(tokenizer) == model.config.vocab_size == len(load_tokenizer(run.require("sft") / "model")) + 2
    assert all(t in tokenizer.get_vocab() for t in tool_tokens(TOOL))
    results = read_json(folder / "results.json")
    assert list(results) == [
        "frequent, trained in SFT",
        "frequent, held out of SFT",
        "once (new names)",
        "never (new names)",
    ]
    for row in results.values():
        assert sum(row["with_tool"].values()) == pytest.approx(1, abs=1e-3) and row["questions"] > 0
        assert 0 <= row["found"] <= row["called"] <= 1
    replies = list(read_jsonl(folder / "replies.jsonl"))
    assert len(replies) == sum(r["questions"] for r in results.values())
    assert not any(r["found"] for r in replies if r["group"].startswith("never"))  # the store has no page about them
    metrics = run.metrics("search")
    assert metrics["steps"] == 4 and metrics["train_conversations"] + metrics["skipped_long"] == 32
    # A share of them are questions the SFT model knows, answered without a call (none if it knows nothing).
    assert metrics["memory_conversations"] == (round(32 * 0.2) if metrics["known_questions"] else 0)
    assert 0 <= metrics["known_questions"] <= metrics["asked_questions"] > 0
    assert {f"{g}_called" for g in ("frequent_sft", "frequent_held_out", "once", "never")} <= set(metrics)


def test_spelling_stage_scores_taught_and_new_words_by_token_split(psych_run):
    run, _ = psych_run
    out = read_json(run.require("spelling") / "results.json")
    assert set(out["results"]) == {"taught", "held out"}
    for kinds in out["results"].values():
        assert set(kinds) == {"spell", "count"} and "always 1" in kinds["count"]
        for split, row in kinds["spell"].items():
            assert split in ("one token", "several tokens") and 0 <= row["letters"] <= 1 and row["questions"] > 0
    replies = list(read_jsonl(run.require("spelling") / "replies.jsonl"))
    assert len(replies) == 2 * (8 + 8)  # two questions for each of 8 held-out and 8 taught words (quick profile)
    words = {r["question"].split()[-1].rstrip(".?") for r in replies if r["group"] == "held out"}
    taught = {r["question"].split()[-1].rstrip(".?") for r in replies if r["group"] == "taught"}
    assert not words & taught
