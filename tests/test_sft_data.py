"""SFT data: deterministic, well-formed, checkable, held out, short enough; ShareGPT and OASST loaders."""

from __future__ import annotations

import json
import random
import re
import statistics
from pathlib import Path

import pytest

from llmkb.evaluate.tasks import arithmetic_problems
from llmkb.sft.data import (
    EVAL_ARITHMETIC,
    SIZES,
    TYPES,
    build_sft_dataset,
    build_splits,
    check_answer,
    check_length,
    load_oasst,
    load_sharegpt,
    prompt_key,
    reading,
    tokenized_length,
    validate_conversation,
)
from llmkb.world import make_entities

TOKENIZER = Path(__file__).resolve().parents[1] / "runs" / "default" / "tokenizer"
SMALL = {"instruction": 40, "conversation": 20, "text_generation": 10, "code": 30, "reasoning": 20, "reading": 20}


@pytest.fixture(scope="module")
def manifest() -> dict:
    entities, _ = make_entities(random.Random(0))
    return {"entities": entities}


@pytest.fixture(scope="module")
def splits(manifest) -> dict:
    return build_splits(manifest, seed=0)  # the default sizes: fast (~0.1 s)


def test_same_seed_same_data(manifest):
    assert build_splits(manifest, seed=3, sizes=SMALL) == build_splits(manifest, seed=3, sizes=SMALL)
    assert build_splits(manifest, seed=3, sizes=SMALL) != build_splits(manifest, seed=4, sizes=SMALL)


def test_every_type_with_the_requested_counts(manifest, splits):
    train = [r["type"] for r in splits["train"]]
    assert {t: train.count(t) for t in TYPES} == SIZES
    small = build_sft_dataset(manifest, seed=1, sizes={**SMALL, "code": 0}, system="You are brief.")
    assert small["train"].column_names == ["messages", "type", "meta"]
    counts = {t: small["train"]["type"].count(t) for t in TYPES}
    assert counts == {**SMALL, "code": 0}
    assert {t: small["test"]["type"].count(t) for t in TYPES} == {
        "instruction": 4,
        "conversation": 2,
        "text_generation": 1,
        "code": 0,
        "reasoning": 2,
        "reading": 2,
    }
    row = small["train"][0]
    assert row["messages"][0] == {"role": "system", "content": "You are brief."}
    assert isinstance(json.loads(row["meta"]), dict)
    with pytest.raises(ValueError, match="unknown SFT data types"):
        build_splits(manifest, sizes={"poems": 3})


def test_records_are_valid_and_their_answers_check(manifest, splits):
    people = {e["name"]: e for e in manifest["entities"]}
    for split, records in splits.items():
        for i, record in enumerate(records):
            validate_conversation(record, i)
            assert check_answer(record), (split, i, record)
            meta = record["meta"]
            if record["type"] in ("instruction", "conversation", "text_generation"):
                person = people[meta["name"]]
                assert person["frequency"] == "frequent"
                facts = person["facts"]
                if record["type"] == "instruction" and meta["fact"] in ("born", "city"):
                    assert str(facts[meta["fact"]]) in record["messages"][-1]["content"]
                if record["type"] == "text_generation":
                    assert str(facts["born"]) in record["messages"][-1]["content"]
                    assert facts["city"] in record["messages"][-1]["content"]


def test_wrong_answers_fail_the_checks(splits):
    for kind in TYPES:
        record = next(r for r in splits["train"] if r["type"] == kind)
        assert not check_answer(record, "I do not know. Answer: 0"), kind


def test_code_answers_run_and_pass_their_checks(splits):
    code = [r for r in splits["train"] if r["type"] == "code"]
    functions = [r for r in code if r["meta"]["check"]["kind"] == "function"]
    assert len(functions) == 300 and {r["meta"]["task"] for r in code} == {"function", "completion", "string"}
    for record in functions:
        check = record["meta"]["check"]
        namespace: dict = {}
        exec(record["messages"][-1]["content"].strip("`").removeprefix("python\n"), namespace)
        for args, expected in check["cases"]:
            assert namespace[check["name"]](*args) == expected
    broken = dict(functions[0], messages=[functions[0]["messages"][0], {"role": "assistant", "content": "def nope(:"}])
    assert not check_answer(broken)
    reverse = next(r for r in code if r["messages"][0]["content"].startswith("Reverse the string"))
    word = re.search(r'"(.*)"', reverse["messages"][0]["content"]).group(1)
    assert f'"{word[::-1]}"' in reverse["messages"][-1]["content"]


def test_reasoning_ends_with_the_right_answer(splits):
    reasoning = [r for r in splits["train"] if r["type"] == "reasoning"]
    assert {r["meta"]["digits"] for r in reasoning} == {2, 3}
    for record in reasoning:
        a, b = map(int, re.findall(r"\d+", record["messages"][0]["content"]))
        assert record["messages"][-1]["content"].endswith(f"\nAnswer: {a + b}")
    evaluated = {p for p, _ in arithmetic_problems(**EVAL_ARITHMETIC)}
    assert not evaluated & {r["messages"][0]["content"] for r in splits["train"] + splits["test"]}


def test_test_prompts_are_held_out(splits):
    train = {prompt_key(r) for r in splits["train"]}
    assert not any(prompt_key(r) in train for r in splits["test"])
    people = lambda split: {r["meta"]["name"] for r in splits[split] if "name" in r["meta"]}  # noqa: E731
    # No question, chat or entry about a held-out person in train (one can still be named as the
    # *other* person of a train person's relation: that is a fact about the train person).
    assert people("test") and not people("test") & people("train")


@pytest.mark.parametrize(
    "messages, problem",
    [
        (
            [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hello?"}],
            "message 1 is 'user' where 'assistant'",
        ),
        ([{"role": "assistant", "content": "Hi"}], "message 0 is 'assistant' where 'user'"),
        (
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "system", "content": "x"},
                {"role": "assistant", "content": "Hi"},
            ],
            "message 2 is 'system'",
        ),
        (
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "  "}],
            r"message 1 \(assistant\) is empty",
        ),
        (
            [{"role": "user", "content": "Hi"}, {"role": "robot", "content": "beep"}],
            "message 1 has the unknown role 'robot'",
        ),
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "no assistant message"),
        (
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "And?"},
            ],
            "the last message is 'user'",
        ),
        ([], "non-empty list"),
    ],
)
def test_validation_names_the_record_and_the_problem(messages, problem):
    with pytest.raises(ValueError, match=rf"^record 12: .*{problem}"):
        validate_conversation({"messages": messages}, 12)


def test_validation_accepts_a_system_message_first():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hi"},
    ]
    assert validate_conversation(messages, 0) is messages


class CharTokenizer:
    """One token per character of the rendered ChatML: enough to test the length checks."""

    def apply_chat_template(self, messages, tokenize=False):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages)

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(range(len(text)))}


def test_check_length_raises_or_skips():
    tok = CharTokenizer()
    short = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    long = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "x" * 100}]}
    assert tokenized_length(tok, short) == len("<user>Hi<assistant>Hello")
    with pytest.raises(ValueError, match="record 1 is 119 tokens long, more than the context of 64"):
        check_length(tok, [short, long, short], context=64)
    assert check_length(tok, [short, long, short], context=64, skip=True) == ([short, short], 1)


def test_sharegpt(tmp_path):
    rows = [
        {
            "id": "a",
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "Hi"},
                {"from": "gpt", "value": "Hello!"},
            ],
        },
        {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]},
    ]
    jsonl = tmp_path / "chats.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    records = load_sharegpt(jsonl)
    assert [m["role"] for m in records[0]["messages"]] == ["system", "user", "assistant"]
    assert records[1]["messages"][1] == {"role": "assistant", "content": "4"} and records[1]["type"] == "sharegpt"
    assert records[0]["meta"] == {"source": str(jsonl), "line": 1, "id": "a"}
    as_json = tmp_path / "chats.json"
    as_json.write_text(json.dumps(rows))
    assert [r["messages"] for r in load_sharegpt(as_json)] == [r["messages"] for r in records]

    def broken(line: str, name: str = "bad.jsonl") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(rows[0]) + "\n" + line + "\n")
        return path

    with pytest.raises(ValueError, match=r"bad.jsonl: line 2: not valid JSON"):
        load_sharegpt(broken('{"conversations": ['))
    with pytest.raises(ValueError, match=r"line 2: no 'conversations' list"):
        load_sharegpt(broken('{"messages": []}'))
    with pytest.raises(ValueError, match=r"line 2: turn 1 needs 'from'"):
        load_sharegpt(
            broken(json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "bot", "value": "x"}]}))
        )
    with pytest.raises(ValueError, match=r"line 2: message 1 is 'user' where 'assistant'"):
        load_sharegpt(
            broken(json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "human", "value": "x"}]}))
        )
    with pytest.raises(ValueError, match=r"line 2: message 1 \(assistant\) is empty"):
        load_sharegpt(
            broken(json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": ""}]}))
        )


def _oasst(mid, parent, role, text, rank=None, **extra):
    return json.dumps({"message_id": mid, "parent_id": parent, "role": role, "text": text, "rank": rank, **extra})


def test_oasst_best_and_all_paths(tmp_path):
    lines = [
        _oasst("q1", None, "prompter", "What is a weaver?"),
        _oasst("a1", "q1", "assistant", "Someone who weaves.", rank=1),
        _oasst("a2", "q1", "assistant", "A person who makes cloth.", rank=0),
        _oasst("q2", "a2", "prompter", "From what?"),
        _oasst("a3", "q2", "assistant", "From thread."),
        _oasst("q3", "a1", "prompter", "Thanks!"),  # unanswered: dropped from the end of its path
        _oasst("a4", "q1", "assistant", "Spam.", rank=2, deleted=True),
        _oasst("r1", None, "prompter", "Hello"),
        _oasst("r2", "r1", "assistant", "Hi!"),
    ]
    path = tmp_path / "oasst.jsonl"
    path.write_text("\n".join(lines) + "\n")
    best = load_oasst(path)
    assert [r["meta"]["message_ids"] for r in best] == [["q1", "a2", "q2", "a3"], ["r1", "r2"]]
    assert [m["role"] for m in best[0]["messages"]] == ["user", "assistant", "user", "assistant"]
    assert best[0]["messages"][1]["content"] == "A person who makes cloth." and best[0]["type"] == "oasst"
    everything = load_oasst(path, paths="all")
    assert [r["meta"]["message_ids"] for r in everything] == [["q1", "a1"], ["q1", "a2", "q2", "a3"], ["r1", "r2"]]
    for i, record in enumerate(everything):
        validate_conversation(record, i)


@pytest.mark.parametrize(
    "line, problem",
    [
        ("{not json", "line 2: not valid JSON"),
        (_oasst("x", "nowhere", "assistant", "Hi"), "line 2: parent_id 'nowhere' is not in the file"),
        (_oasst("x", "q1", "robot", "Hi"), "line 2: role must be 'prompter' or 'assistant'"),
        (_oasst("x", "q1", "assistant", " "), "line 2: message 'x' has no text"),
        (_oasst("q1", None, "prompter", "Again"), "line 2: message_id 'q1' already on line 1"),
        (_oasst("x", "q1", "prompter", "Hi"), "line 2: a prompter message replies to another prompter message"),
        (_oasst("x", None, "assistant", "Hi"), "line 2: a tree must start with a prompter message"),
    ],
)
def test_oasst_errors_name_the_file_and_line(tmp_path, line, problem):
    path = tmp_path / "broken.jsonl"
    path.write_text(_oasst("q1", None, "prompter", "Hi") + "\n" + line + "\n")
    with pytest.raises(ValueError, match=re.escape(f"broken.jsonl: {problem}")):
        load_oasst(path)


@pytest.mark.skipif(
    not (TOKENIZER / "tokenizer.json").exists(), reason="needs runs/default/tokenizer (llmkb tokenizer stage)"
)
def test_every_conversation_fits_128_tokens_with_the_real_tokenizer(splits):
    from llmkb.tokenizer.hf import load_pretrained

    tok = load_pretrained(TOKENIZER)
    for kind in TYPES:  # one record of each type, rendered to ChatML, as the brief of the SFT stage says
        record = next(r for r in splits["train"] if r["type"] == kind)
        text = tok.apply_chat_template(record["messages"], tokenize=False)
        assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_end|>\n")
        assert len(tok(text, add_special_tokens=False)["input_ids"]) <= 128
    lengths: dict[str, list[int]] = {}
    for record in splits["train"] + splits["test"]:  # and all of them (~0.5 s)
        lengths.setdefault(record["type"], []).append(tokenized_length(tok, record))
    assert max(max(v) for v in lengths.values()) <= 128, {k: max(v) for k, v in lengths.items()}
    assert check_length(tok, splits["train"], context=128)[1] == 0
    assert 30 < statistics.mean(lengths["instruction"]) < statistics.mean(lengths["conversation"])


def test_reading_asks_about_strangers_whose_facts_only_the_prompt_states(manifest):
    people = {e["name"] for e in manifest["entities"]}
    records = reading(seed=0, n=200, taken=people)
    assert len(records) == 200 and {r["type"] for r in records} == {"reading"}
    for record in records:
        prompt, answer = (m["content"] for m in record["messages"])
        assert record["meta"]["name"] not in people  # never on a page of the mini-web
        assert record["meta"]["answer"] in prompt and check_answer(record)
        assert not any(name in prompt for name in people)  # nor anyone it mentions
    assert {r["meta"]["fact"] for r in records} == {"born", "city", "occupation", "relation"}
