"""A seed + the mini-web's manifest -> the conversations supervised fine-tuning trains on, checked.

In: the manifest of :mod:`llmkb.data.miniweb` (its ``entities``: invented people and their facts)
and a seed. Out (same seed -> the same data, offline): conversations
``{"messages": [{"role", "content"}, ...], "type": ..., "meta": {...}}`` of six types,

- ``instruction``: one question about a person's fact, one full-sentence answer (:func:`instruction_pairs`);
- ``conversation``: two or three exchanges about one person, follow-ups saying "they" (:func:`conversations`);
- ``text_generation``: "Write a short encyclopedia entry about X." -> a paragraph (:func:`text_generation`);
- ``code``: small Python functions and string puzzles with checkable answers (:func:`code_tasks`);
- ``reasoning``: column addition with the carries written out, ending ``Answer: N`` (:func:`reasoning`),
- ``reading``: a sentence about a stranger (an invented person in no page of the mini-web) pasted
  before a question about them: the answer can only be read off the prompt (:func:`reading`),

and :func:`build_sft_dataset`, which puts them in a ``datasets.DatasetDict`` with a ``train`` split
and a ``test`` split of held-out prompts. Every answer can be checked by a program
(:func:`check_answer`): the facts come from the manifest, the sums are computed, the code is run.

Also here: :func:`validate_conversation` (the shape SFT needs: optional system message, then user
and assistant in turn, ending with the assistant), :func:`check_length` (a sample longer than the
model's context would be cut, and its answer with it), and loaders that turn two public formats,
ShareGPT (:func:`load_sharegpt`) and OpenAssistant message trees (:func:`load_oasst`), into the
same records.

Why these data: SFT does not teach facts, it teaches a format (question -> short answer -> stop).
The answers are about facts the base model read 30 times in pretraining, so fine-tuning only has
to connect the question to knowledge already in the weights; answering about people it never read
about would train it to produce confident answers with nothing behind them, i.e. to hallucinate.
The ``reading`` questions are about strangers too, but their answer stands in the prompt: they
teach the model to read, not to make things up.
Everything fits the 128-token context of our small model (see ``tests/test_sft_data.py``).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

from llmkb.evaluate.tasks import arithmetic_problems, extract_answer, normalize
from llmkb.inference.chat import check_messages
from llmkb.world import (
    FACT_TEMPLATES,
    OCCUPATIONS,
    RELATIONS,
    fact_sentence,
    invented_city,
    invented_name,
    invented_word,
)

TYPES = ("instruction", "conversation", "text_generation", "code", "reasoning", "reading")
# Default sizes of the train split: ~5,000 conversations of 40-125 tokens, a few minutes per epoch
# for a 1.2M-parameter model on a 2-core CPU. 1,000 instruction pairs is about every (person, fact,
# phrasing) of the 90 training people once. Reading from the prompt is a skill learned from many
# cases: with 1,000 questions about strangers the SFT model answered 47-61% of questions about
# never-mentioned people from a pasted sentence, with 2,000 91% (a base model with induction heads).
SIZES = {
    "instruction": 1000,
    "conversation": 500,
    "text_generation": 250,
    "code": 600,
    "reasoning": 600,
    "reading": 2000,
}
TEST_FRACTION = 0.1  # the test split has this share of each type's train size (at least 1)
HELD_OUT_PEOPLE = 0.1  # share of the people whose facts appear only in the test split
REASONING_DIGITS = (2, 3)  # the reasoning type is half 2-digit, half 3-digit sums
# The arithmetic that `llmkb eval` scores (llmkb/cli.py): kept out of the SFT data, so a score on
# it measures what fine-tuning taught, not what it showed.
EVAL_ARITHMETIC = {"n": 50, "digits": 2, "seed": 0}

FACTS = ("born", "city", "occupation", "relation")
# Invented names cost many tokens: a reading record over this many characters may pass the 128-token
# context (of 4,000 drawn, the 2 that did were over 280 characters), so none is made.
READING_MAX_CHARS = 270
QUESTIONS = {  # fact -> phrasings of the question that names the person
    "born": ["When was {name} born?", "In what year was {name} born?", "What year was {name} born in?"],
    "city": ["Where was {name} born?", "In which city was {name} born?", "What is the home city of {name}?"],
    "occupation": [
        "What did {name} do for a living?",
        "What was the occupation of {name}?",
        "What was {name}'s profession?",
    ],
    "relation": [
        "Who was {name} connected to?",
        "Whose {relation} was {name}?",
        "What relation was {name} to {other}?",
    ],
}
ANSWERS = {  # fact -> full-sentence answers; each contains the checkable value
    "born": ["{name} was born in {born}.", "{name} was born in the year {born}."],
    "city": ["{name} was born in {city}.", "{name} was born in the city of {city}."],
    "occupation": ["{name} worked as {a_occupation}.", "{name} was {a_occupation} by trade."],
    "relation": ["{name} was the {relation} of {other}."],
}
FOLLOW_UPS = {  # fact -> questions that refer back to the person of the conversation
    "born": ["And when were they born?", "In what year were they born?"],
    "city": ["And where were they born?", "Which city did they come from?"],
    "occupation": ["And what did they do for a living?", "What was their occupation?"],
    "relation": ["Who were they connected to?", "And whose {relation} were they?"],
}
FOLLOW_UP_ANSWERS = {
    "born": "They were born in {born}.",
    "city": "They were born in {city}.",
    "occupation": "They worked as {a_occupation}.",
    "relation": "They were the {relation} of {other}.",
}
ENTRY_PROMPTS = [
    "Write a short encyclopedia entry about {name}.",
    "Write a short paragraph about {name}.",
    "Tell me about {name}.",
]
ENTRY_ENDINGS = ["Little else is recorded about {name}.", "{city} still keeps records of the family.", ""]


# --------------------------------------------------------------------------- small helpers


def an(noun: str) -> str:
    """``noun`` with its indefinite article.

    >>> an("astronomer"), an("weaver")
    ('an astronomer', 'a weaver')
    """
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def fix_articles(text: str) -> str:
    """ "a" before a vowel becomes "an" (the mini-web's templates always write "a {occupation}").

    >>> fix_articles("A astronomer, a weaver and a engineer.")
    'An astronomer, a weaver and an engineer.'
    """
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def _values(entity: dict) -> dict:
    f = entity["facts"]
    return {
        "name": entity["name"],
        "born": f["born"],
        "city": f["city"],
        "occupation": f["occupation"],
        "a_occupation": an(f["occupation"]),
        "relation": f["relation"],
        "other": f["related_to"],
    }


def _answer_value(entity: dict, fact: str, question: int) -> str:
    """The value an answer to ``QUESTIONS[fact][question]`` must contain."""
    f = entity["facts"]
    if fact == "relation":  # "What relation was X to Y?" asks for the relation; the others for the person
        return f["relation"] if question == 2 else f["related_to"]
    return str(f[fact])


def _conversation(kind: str, turns: list[tuple[str, str]], meta: dict) -> dict:
    messages = []
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": messages, "type": kind, "meta": meta}


def prompt_key(record: dict) -> tuple[str, ...]:
    """What a record asks: its user messages. Two records with the same key are the same prompt.

    >>> prompt_key({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})
    ('Hi',)
    """
    return tuple(m["content"] for m in record["messages"] if m["role"] == "user")


def _unique(
    make: Callable[[random.Random], dict | None],
    n: int,
    rng: random.Random,
    exclude: set = frozenset(),
    tries: int = 20,
) -> list[dict]:
    """``n`` records from ``make`` with distinct prompts not in ``exclude``; fewer if ``make`` runs dry."""
    records, seen = [], set(exclude)
    for _ in range(n * tries):
        if len(records) == n:
            break
        record = make(rng)
        if record is None or prompt_key(record) in seen:
            continue
        seen.add(prompt_key(record))
        records.append(record)
    return records


# --------------------------------------------------------------------------- the five types


def instruction_pairs(
    entities: list[dict], seed: int = 0, n: int = SIZES["instruction"], exclude: set = frozenset()
) -> list[dict]:
    """``n`` one-question conversations about the facts of ``entities``, distinct prompts.

    Each (person, fact, phrasing) is used at most once, in a seeded order, so ``n`` above
    ``12 * len(entities)`` gives fewer records. ``meta``: ``name``, ``fact``, ``answer`` (the
    value the answer contains).

    Examples:
        >>> e = {"name": "Ka Lo", "facts": {"born": 1801, "city": "Vemora", "occupation": "astronomer",
        ...      "relation": "rival", "related_to": "Zu Ba"}}
        >>> record = instruction_pairs([e], n=1)[0]
        >>> [m["content"] for m in record["messages"]], record["meta"]["answer"]
        (['In which city was Ka Lo born?', 'Ka Lo was born in Vemora.'], 'Vemora')
    """
    rng = random.Random(f"sft:instruction:{seed}")
    combos = [(e, fact, q) for e in entities for fact in FACTS for q in range(len(QUESTIONS[fact]))]
    rng.shuffle(combos)
    records = []
    for entity, fact, q in combos:
        v = _values(entity)
        question = QUESTIONS[fact][q].format(**v)
        answer = rng.choice(ANSWERS[fact]).format(**v)
        meta = {"name": entity["name"], "fact": fact, "answer": _answer_value(entity, fact, q)}
        record = _conversation("instruction", [(question, answer)], meta)
        if prompt_key(record) not in exclude:
            records.append(record)
        if len(records) == n:
            break
    return records


def conversations(
    entities: list[dict], seed: int = 0, n: int = SIZES["conversation"], exclude: set = frozenset()
) -> list[dict]:
    """``n`` chats of 2-3 exchanges about one person: the first question names them, the rest say "they".

    ("They", because the mini-web states no one's gender, and a pronoun would be a fact we invented.)

    The follow-ups only make sense with the earlier turns: what SFT must teach for multi-turn chat.
    ``meta``: ``name``, ``facts`` and ``answers`` (one value per exchange).
    """

    def make(rng: random.Random) -> dict:
        entity = rng.choice(entities)
        v = _values(entity)
        # Three exchanges leave out the relation: it names a second person (~10 tokens for an invented
        # name), and three exchanges with it can pass the 128-token context.
        facts = rng.sample(FACTS, 2) if rng.random() < 0.5 else rng.sample(FACTS[:3], 3)
        q = rng.randrange(len(QUESTIONS[facts[0]]))
        turns = [(QUESTIONS[facts[0]][q].format(**v), rng.choice(ANSWERS[facts[0]]).format(**v))]
        answers = [_answer_value(entity, facts[0], q)]
        for fact in facts[1:]:
            turns.append((rng.choice(FOLLOW_UPS[fact]).format(**v), FOLLOW_UP_ANSWERS[fact].format(**v)))
            answers.append(_answer_value(entity, fact, 0))  # follow-ups ask for the person, not the relation
        return _conversation("conversation", turns, {"name": entity["name"], "facts": facts, "answers": answers})

    return _unique(make, n, random.Random(f"sft:conversation:{seed}"), exclude)


def text_generation(
    entities: list[dict], seed: int = 0, n: int = SIZES["text_generation"], exclude: set = frozenset()
) -> list[dict]:
    """``n`` requests for a short entry about a person, answered with the mini-web's own fact sentences.

    ``meta``: ``name`` and ``answers`` (birth year and city, which every entry contains).
    """

    def make(rng: random.Random) -> dict:
        entity = rng.choice(entities)
        v = _values(entity)
        ending = rng.choice(ENTRY_ENDINGS).format(**v)
        paragraph = fix_articles(fact_sentence(entity, rng.randrange(10)) + (" " + ending if ending else ""))
        meta = {"name": entity["name"], "answers": [str(v["born"]), v["city"]]}
        return _conversation("text_generation", [(rng.choice(ENTRY_PROMPTS).format(**v), paragraph)], meta)

    return _unique(make, n, random.Random(f"sft:text_generation:{seed}"), exclude)


# Small functions: (what it does, names, parameter names, body); {k} and {c} are filled per sample,
# {0} and {1} are the parameters. Several names and parameter names make the prompts many and varied.
FUNCTIONS = [
    (
        "returns the sum of two numbers",
        ["add", "add_numbers", "plus", "total"],
        [("a", "b"), ("x", "y"), ("m", "n")],
        "return {0} + {1}",
    ),
    ("returns {0} plus {k}", ["add_{k}", "plus_{k}"], [("x",), ("n",), ("number",)], "return {0} + {k}"),
    ("returns {0} times {k}", ["times_{k}", "multiply_by_{k}"], [("x",), ("n",), ("number",)], "return {0} * {k}"),
    (
        "returns the string {0} reversed",
        ["reverse", "reverse_string", "backwards"],
        [("s",), ("text",), ("word",)],
        "return {0}[::-1]",
    ),
    (
        'counts how many times the letter "{c}" appears in {0}',
        ["count_{c}", "how_many_{c}"],
        [("s",), ("text",), ("word",)],
        'return {0}.count("{c}")',
    ),
    (
        "returns {0} in capital letters",
        ["shout", "to_upper", "capitals"],
        [("s",), ("text",), ("word",)],
        "return {0}.upper()",
    ),
    ("returns True when {0} is even", ["is_even", "even"], [("n",), ("x",), ("number",)], "return {0} % 2 == 0"),
    (
        "returns the largest number in the list {0}",
        ["largest", "biggest", "maximum"],
        [("numbers",), ("values",), ("xs",)],
        "return max({0})",
    ),
    (
        "returns {0} repeated {k} times",
        ["repeat_{k}", "times_{k}_text"],
        [("s",), ("text",), ("word",)],
        "return {0} * {k}",
    ),
    ("returns the first letter of {0}", ["first_letter", "initial"], [("s",), ("text",), ("word",)], "return {0}[0]"),
]
PHRASINGS = [
    "Write a Python function {name}({params}) that {task}.",
    "Write {name}({params}) in Python: it {task}.",
    "In Python, define {name}({params}), which {task}.",
    "Write a function {name}({params}) that {task}.",
]


def _word(rng: random.Random) -> str:
    return invented_word(rng, rng.choice((1, 2))).lower()  # the mini-web's made-up words: no lookup possible


def _arguments(params: tuple[str, ...], body: str, rng: random.Random) -> list:
    if len(params) == 2:
        return [rng.randint(0, 99), rng.randint(0, 99)]
    if "max(" in body:
        return [[rng.randint(0, 99) for _ in range(rng.randint(2, 5))]]
    if params[0] in ("x", "n", "number"):
        return [rng.randint(0, 99)]
    return [_word(rng) + rng.choice(["", "a", "e"])]


def _function_task(rng: random.Random) -> dict:
    task, names, param_choices, body = rng.choice(FUNCTIONS)
    params = rng.choice(param_choices)
    fill = {"k": rng.randint(2, 9), "c": rng.choice("aeiou")}
    task, name, body = task.format(*params, **fill), rng.choice(names).format(**fill), body.format(*params, **fill)
    code = f"def {name}({', '.join(params)}):\n    {body}"
    if rng.random() < 0.3:  # completion: the signature and a docstring are given, the body is asked for
        prompt = (
            f'Complete this Python function:\ndef {name}({", ".join(params)}):\n    """{task[0].upper()}{task[1:]}."""'
        )
        kind = "completion"
    else:
        prompt = rng.choice(PHRASINGS).format(name=name, params=", ".join(params), task=task)
        kind = "function"
    namespace: dict = {}
    exec(code, namespace)  # our own one-line function: the expected results are computed, not written
    cases = [[args, namespace[name](*args)] for args in (_arguments(params, body, rng) for _ in range(3))]
    meta = {"task": kind, "check": {"kind": "function", "name": name, "cases": cases}}
    return _conversation("code", [(prompt, f"```python\n{code}\n```")], meta)


def _string_task(rng: random.Random) -> dict:
    word = _word(rng) + _word(rng)
    puzzle = rng.randrange(4)
    if puzzle == 0:
        expected = word[::-1]
        prompt, answer = f'Reverse the string "{word}".', f'"{word}" reversed is "{expected}".'
    elif puzzle == 1:
        expected = word.upper()
        prompt, answer = f'Write "{word}" in capital letters.', f'In capital letters, "{word}" is "{expected}".'
    elif puzzle == 2:
        letter = rng.choice(sorted(set(word)))
        count = word.count(letter)
        expected = str(count)
        prompt = f'How many times does the letter "{letter}" appear in "{word}"?'
        answer = f'The letter "{letter}" appears {count} time{"s" * (count != 1)} in "{word}".'
    else:
        expected = str(len(word))
        prompt, answer = f'How many letters are in "{word}"?', f'"{word}" has {len(word)} letters.'
    check = {"kind": "string" if puzzle < 2 else "number", "answer": expected}
    return _conversation("code", [(prompt, answer)], {"task": "string", "check": check})


def code_tasks(seed: int = 0, n: int = SIZES["code"], exclude: set = frozenset()) -> list[dict]:
    """``n`` code tasks: half Python functions (written or completed), half string puzzles.

    ``meta["check"]``: ``{"kind": "function", "name", "cases": [[args, expected], ...]}`` (run the
    answer's code, call ``name``) or ``{"kind": "string" | "number", "answer"}``; see :func:`check_answer`.
    """
    functions = _unique(_function_task, n // 2, random.Random(f"sft:code:functions:{seed}"), exclude)
    strings = _unique(_string_task, n - len(functions), random.Random(f"sft:code:strings:{seed}"), exclude)
    records = functions + strings
    random.Random(f"sft:code:{seed}").shuffle(records)
    return records


COLUMNS = ["ones", "tens", "hundreds", "thousands"]


def stranger(rng: random.Random, taken: set[str]) -> dict:
    """An invented person whose name is not in ``taken`` (and is added to it), with facts and a city made up here.

    The city is invented too, so neither the name nor the place says anything the model could have
    remembered: a question about a stranger can only be answered from a passage about them.
    """
    while True:
        name, other = invented_name(rng), invented_name(rng)
        if name not in taken and other not in taken and name != other:
            break
    taken.add(name)
    city = invented_city(rng)
    facts = {
        "born": rng.randrange(1700, 1950),
        "city": city,
        "occupation": rng.choice(OCCUPATIONS),
        "relation": rng.choice(RELATIONS),
        "related_to": other,
    }
    return {"name": name, "facts": facts}


def reading(
    seed: int = 0, n: int = SIZES["reading"], exclude: set = frozenset(), taken: set = frozenset()
) -> list[dict]:
    """``n`` questions about strangers, each after one sentence stating the stranger's facts.

    The sentence is one of the mini-web's own ways of stating a person's facts
    (:data:`llmkb.world.FACT_TEMPLATES`), as a reader would paste it from a page; the names avoid
    ``taken`` (the mini-web's people). What this teaches is a skill, not a fact: find the sentence's
    value for the asked fact and copy it. ``meta``: ``name``, ``fact``, ``answer``.

    Examples:
        >>> record = reading(n=1)[0]
        >>> passage_and_question, answer = (m["content"] for m in record["messages"])
        >>> record["meta"]["answer"] in passage_and_question and record["meta"]["answer"] in answer
        True
    """
    names = set(taken)

    def make(rng: random.Random) -> dict | None:
        entity = stranger(rng, names)
        v = _values(entity)
        fact = rng.choice(FACTS)
        q = rng.randrange(len(QUESTIONS[fact]))
        passage = fix_articles(fact_sentence(entity, rng.randrange(len(FACT_TEMPLATES))))
        turn = (f"{passage} {QUESTIONS[fact][q].format(**v)}", rng.choice(ANSWERS[fact]).format(**v))
        if len(turn[0]) + len(turn[1]) > READING_MAX_CHARS:
            return None
        return _conversation(
            "reading", [turn], {"name": entity["name"], "fact": fact, "answer": _answer_value(entity, fact, q)}
        )

    return _unique(make, n, random.Random(f"sft:reading:{seed}"), exclude)


def worked_addition(a: int, b: int) -> str:
    """Column addition of ``a + b`` with every carry written out, ending with ``Answer: a+b``.

    >>> print(worked_addition(47, 85))
    Ones: 7 + 5 = 12, write 2, carry 1.
    Tens: 4 + 8 + 1 = 13, write 3, carry 1.
    The carry 1 goes in front.
    Answer: 132
    >>> print(worked_addition(312, 45))
    Ones: 2 + 5 = 7.
    Tens: 1 + 4 = 5.
    Hundreds: 3 + 0 = 3.
    Answer: 357
    """
    width = max(len(str(a)), len(str(b)))
    if width > len(COLUMNS):
        raise ValueError(f"worked_addition: at most {len(COLUMNS)} digits, got {a} + {b}")
    lines, carry = [], 0
    for i in range(width):
        x, y = a // 10**i % 10, b // 10**i % 10
        total = x + y + carry
        terms = f"{x} + {y}" + (f" + {carry}" if carry else "")
        carry = total // 10
        # A column without a carry needs no "write": its sum is the digit (fewer tokens, same steps).
        step = f", write {total % 10}, carry {carry}." if carry else "."
        lines.append(f"{COLUMNS[i].capitalize()}: {terms} = {total}{step}")
    if carry:
        lines.append(f"The carry {carry} goes in front.")
    return "\n".join(lines + [f"Answer: {a + b}"])


def reasoning(
    seed: int = 0, digits: int = 2, n: int = SIZES["reasoning"] // 2, exclude: set = frozenset()
) -> list[dict]:
    """``n`` sums from :func:`~llmkb.evaluate.tasks.arithmetic_problems`, answered by column addition.

    The prompt is the evaluation's own ("What is 47 + 85?"), so a fine-tuned model answers the
    benchmark in the format it learned, and ``extract_answer`` finds ``Answer: N``. The problems
    of ``EVAL_ARITHMETIC`` are excluded. ``meta``: ``answer`` and ``digits``.
    """
    banned = {(p,) for p, _ in arithmetic_problems(**EVAL_ARITHMETIC)} | set(exclude)
    records, k = [], 0
    while len(records) < n and k < 20:  # another seed if the first draw had too many repeats
        draw = hash_seed(f"sft:reasoning:{seed}:{digits}:{k}")
        for prompt, answer in arithmetic_problems(2 * n, digits=digits, seed=draw, ops="+"):
            a, b = map(int, re.findall(r"\d+", prompt))
            if (prompt,) in banned or len(records) == n:
                continue
            banned.add((prompt,))
            records.append(
                _conversation("reasoning", [(prompt, worked_addition(a, b))], {"answer": answer, "digits": digits})
            )
        k += 1
    return records


def hash_seed(text: str) -> int:
    """A stable integer seed from a string (``hash()`` changes from run to run for strings).

    >>> hash_seed("a") == hash_seed("a") != hash_seed("b")
    True
    """
    return random.Random(text).getrandbits(32)


# --------------------------------------------------------------------------- checking answers


def extract_code(text: str) -> str:
    """The code in an answer: the first fenced block if there is one, else the whole text.

    >>> extract_code("Here:\\n```python\\ndef f():\\n    return 1\\n```\\nDone.")
    'def f():\\n    return 1'
    """
    fenced = re.search(r"```(?:python)?\n(.*?)```", text, re.DOTALL)
    return (fenced.group(1) if fenced else text).strip()


def check_answer(record: dict, text: str | None = None) -> bool:
    """Whether ``text`` (default: the record's own last answer) is right for ``record``.

    Facts: every value of ``meta["answer"]``/``meta["answers"]`` appears in the text (the last
    answer for one value, each answer in turn for chats). Sums: ``Answer: N`` with the right N. Code:
    the function is run on the check's cases, in this process: only run it on text you trust or
    are ready to have executed. A tool for scoring a fine-tuned model, and a reward for RL later.
    """
    meta = record["meta"] if isinstance(record["meta"], dict) else json.loads(record["meta"])
    answers = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
    if text is not None:
        answers[-1] = text
    if record["type"] == "reasoning":
        return normalize(extract_answer(answers[-1])) == normalize(meta["answer"])
    if record["type"] == "conversation":
        return all(value in answer for value, answer in zip(meta["answers"], answers, strict=True))
    if record["type"] == "text_generation":
        return all(value in answers[-1] for value in meta["answers"])
    if record["type"] == "code":
        check = meta["check"]
        if check["kind"] == "function":
            try:
                namespace: dict = {}
                exec(extract_code(answers[-1]), namespace)
                return all(namespace[check["name"]](*args) == expected for args, expected in check["cases"])
            except Exception:  # code that does not run is a wrong answer, not a crash
                return False
        if check["kind"] == "string":
            return f'"{check["answer"]}"' in answers[-1]
        return re.search(rf"(?<!\d){check['answer']}(?!\d)", answers[-1]) is not None
    return str(meta["answer"]) in answers[-1]


# --------------------------------------------------------------------------- the dataset


def _entities(manifest: dict | str | Path, frequencies: tuple[str, ...]) -> list[dict]:
    if not isinstance(manifest, dict):
        manifest = json.loads(Path(manifest).read_text(encoding="utf-8"))
    entities = [e for e in manifest.get("entities", []) if e.get("frequency") in frequencies]
    if len(entities) < 2:
        raise ValueError(
            f"the manifest has {len(entities)} entities with frequency in {frequencies}; need at least 2 "
            "(one for train, one held out)"
        )
    return entities


def build_splits(
    manifest: dict | str | Path,
    seed: int = 0,
    sizes: dict[str, int] | None = None,
    system: str | None = None,
    frequencies: tuple[str, ...] = ("frequent",),
) -> dict[str, list[dict]]:
    """``{"train": [...], "test": [...]}`` as lists of records (``meta`` a dict); see :func:`build_sft_dataset`."""
    unknown = set(sizes or {}) - set(TYPES)
    if unknown:
        raise ValueError(f"unknown SFT data types {sorted(unknown)}; types are {', '.join(TYPES)}")
    sizes = {**SIZES, **(sizes or {})}
    if not isinstance(manifest, dict):
        manifest = json.loads(Path(manifest).read_text(encoding="utf-8"))
    entities = _entities(manifest, frequencies)
    mini_web_people = {e["name"] for e in manifest.get("entities", [])}  # strangers must not be one of them
    rng = random.Random(f"sft:split:{seed}")
    held = set(rng.sample(range(len(entities)), max(1, round(len(entities) * HELD_OUT_PEOPLE))))
    people = {
        "train": [e for i, e in enumerate(entities) if i not in held],
        "test": [e for i, e in enumerate(entities) if i in held],
    }
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    for split, split_seed in (("train", seed), ("test", seed + 1_000_003)):  # the test split draws from other seeds
        seen = {prompt_key(r) for r in splits["train"]}  # empty for train; train's prompts for test
        for kind in TYPES:
            n = sizes[kind] if split == "train" else (max(1, round(sizes[kind] * TEST_FRACTION)) if sizes[kind] else 0)
            if n == 0:
                continue
            if kind == "instruction":
                splits[split] += instruction_pairs(people[split], split_seed, n, seen)
            elif kind == "conversation":
                splits[split] += conversations(people[split], split_seed, n, seen)
            elif kind == "text_generation":
                splits[split] += text_generation(people[split], split_seed, n, seen)
            elif kind == "code":
                splits[split] += code_tasks(split_seed, n, seen)
            elif kind == "reading":
                splits[split] += reading(split_seed, n, seen, mini_web_people)
            else:
                for j, digits in enumerate(REASONING_DIGITS):  # n split over the digit counts, first gets the rest
                    share = n // len(REASONING_DIGITS) + (j < n % len(REASONING_DIGITS))
                    splits[split] += reasoning(split_seed, digits, share, seen)
    for split, records in splits.items():
        random.Random(f"sft:shuffle:{seed}:{split}").shuffle(records)  # types mixed in every batch
        if system is not None:
            for record in records:
                record["messages"].insert(0, {"role": "system", "content": system})
        for i, record in enumerate(records):
            validate_conversation(record, i)
    return splits


def build_sft_dataset(
    manifest: dict | str | Path,
    seed: int = 0,
    sizes: dict[str, int] | None = None,
    system: str | None = None,
    frequencies: tuple[str, ...] = ("frequent",),
):
    """The SFT data as a ``datasets.DatasetDict``: ``train`` and ``test``, rows ``{"messages", "type", "meta"}``.

    ``manifest``: the mini-web's manifest (a dict or the path of ``manifest.json``). ``sizes``:
    train conversations per type, over :data:`SIZES` (0 leaves a type out); the test split has
    :data:`TEST_FRACTION` of each. ``system``: a system message put first in every conversation
    (its tokens count too: the longest records are ~120 of 128 tokens without one, so run
    :func:`check_length` after adding it).
    ``meta`` is stored as a JSON string (its fields differ between types, which an Arrow column
    cannot hold): ``json.loads(row["meta"])``.

    What the test split holds out: the facts of :data:`HELD_OUT_PEOPLE` of the people (their
    questions, chats and entries appear in no train conversation, though a train answer may name
    one as the other person of a relation; the base model read their facts
    as often as the others', so the test measures whether SFT taught the *format* of answering
    from memory), and code and arithmetic prompts that are not in train.

    Only ``"frequent"`` people by default: the base model read each of their facts ~30 times and
    can know them. Fine-tuning on answers about ``"once"``/``"never"`` people would teach it to
    answer with the confidence of the training data when nothing in its weights supports the
    answer: a lesson in making things up. Pass ``frequencies`` to change it (the hallucination
    experiments do).
    """
    from datasets import Dataset, DatasetDict

    splits = build_splits(manifest, seed, sizes, system, frequencies)
    return DatasetDict(
        {
            split: Dataset.from_list(
                [{"messages": r["messages"], "type": r["type"], "meta": json.dumps(r["meta"])} for r in records]
            )
            for split, records in splits.items()
        }
    )


# --------------------------------------------------------------------------- validation and length


def validate_conversation(record: dict | list[dict], index: int) -> dict | list[dict]:
    """``record`` as it is, or a ValueError naming ``record {index}`` and what is wrong with it.

    The shape SFT needs: an optional system message first, then user and assistant in turn,
    ending with the assistant (a last user message would have no answer to learn from); every
    message a known role and non-empty (:func:`llmkb.inference.chat.check_messages`).

    Examples:
        >>> validate_conversation([{"role": "user", "content": "Hi"}], 7)
        Traceback (most recent call last):
        ...
        ValueError: record 7: no assistant message; SFT learns from the assistant's turns only
    """
    messages = record.get("messages") if isinstance(record, dict) else record
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"record {index}: 'messages' must be a non-empty list, got {messages!r}")
    try:
        check_messages(messages)
    except ValueError as e:
        raise ValueError(f"record {index}: {e}") from None
    start = 1 if messages[0]["role"] == "system" else 0
    for i, message in enumerate(messages[start:], start):
        expected = ("user", "assistant")[(i - start) % 2]
        if message["role"] != expected:
            raise ValueError(
                f"record {index}: message {i} is {message['role']!r} where {expected!r} was expected "
                "(an optional system message first, then user and assistant in turn)"
            )
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError(f"record {index}: no assistant message; SFT learns from the assistant's turns only")
    if messages[-1]["role"] != "assistant":
        raise ValueError(
            f"record {index}: the last message is {messages[-1]['role']!r}; it must be the assistant's answer"
        )
    return record


def tokenized_length(tokenizer, record: dict | list[dict]) -> int:
    """Tokens of ``record`` rendered with the tokenizer's chat template: what training will see."""
    messages = record["messages"] if isinstance(record, dict) else record
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_length(tokenizer, records: list[dict], context: int, skip: bool = False) -> tuple[list[dict], int]:
    """``(records that fit in context, how many did not)``; without ``skip``, the first too long raises.

    A sample longer than the context would be truncated, and what is cut is the end: the
    assistant's answer and its ``<|im_end|>``, the very tokens SFT is for.
    """
    kept, skipped = [], 0
    for i, record in enumerate(records):
        length = tokenized_length(tokenizer, record)
        if length <= context:
            kept.append(record)
        elif skip:
            skipped += 1
        else:
            raise ValueError(
                f"record {i} is {length} tokens long, more than the context of {context}; "
                "shorten it, or pass skip=True to leave such records out"
            )
    return kept, skipped


# --------------------------------------------------------------------------- public formats


SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "system": "system",
}


def _json_records(path: Path) -> list[tuple[int, object]]:
    """(line number, parsed object) for a JSONL file, or (record number, object) for a JSON array."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: a ShareGPT .json file must hold a list of records, got {type(data).__name__}")
        return list(enumerate(data, 1))
    records = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((line_no, json.loads(line)))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {line_no}: not valid JSON ({e.msg})") from None
    return records


def load_sharegpt(path: str | Path) -> list[dict]:
    """Records from a ShareGPT file: ``{"conversations": [{"from": "human" | "gpt" | "system", "value"}]}``.

    ``.json``: a list of such objects (errors name the record number); any other suffix: JSON
    Lines (errors name the line). ``type`` is ``"sharegpt"``; ``meta`` keeps the file, line and ``id``.
    """
    path = Path(path)
    where = "record" if path.suffix == ".json" else "line"
    out = []
    for line_no, obj in _json_records(path):
        turns = obj.get("conversations") if isinstance(obj, dict) else None
        if not isinstance(turns, list):
            raise ValueError(f"{path}: {where} {line_no}: no 'conversations' list")
        messages = []
        for i, turn in enumerate(turns):
            if (
                not isinstance(turn, dict)
                or turn.get("from") not in SHAREGPT_ROLES
                or not isinstance(turn.get("value"), str)
            ):
                raise ValueError(
                    f"{path}: {where} {line_no}: turn {i} needs 'from' (one of {', '.join(SHAREGPT_ROLES)}) "
                    f"and a string 'value', got {turn!r}"
                )
            messages.append({"role": SHAREGPT_ROLES[turn["from"]], "content": turn["value"]})
        record = {
            "messages": messages,
            "type": "sharegpt",
            "meta": {"source": str(path), where: line_no, "id": obj.get("id")},
        }
        try:
            validate_conversation(record, len(out))
        except ValueError as e:
            raise ValueError(f"{path}: {where} {line_no}: {str(e).split(': ', 1)[1]}") from None
        out.append(record)
    return out


OASST_ROLES = {"prompter": "user", "assistant": "assistant"}


def load_oasst(path: str | Path, paths: str = "best") -> list[dict]:
    """Records from OpenAssistant message trees: JSON Lines of ``{"message_id", "parent_id", "role", "text"}``.

    ``role`` is ``"prompter"`` or ``"assistant"``; ``parent_id`` is null for a tree's first message.
    ``paths="best"`` (the default, as in the usual OASST SFT sets): one conversation per tree,
    following at each step the reply with the lowest ``rank`` (0 is best; unranked replies come
    last, ties in file order). ``paths="all"``: every root-to-leaf path. A path that ends with an
    unanswered prompter message drops it; ``deleted`` messages and their replies are left out.
    Errors name the file and the line of the message at fault.
    """
    if paths not in ("best", "all"):
        raise ValueError(f"paths must be 'best' or 'all', got {paths!r}")
    path = Path(path)
    messages: dict[str, dict] = {}
    line_of: dict[str, int] = {}
    order: list[str] = []
    for line_no, obj in _json_records(path):
        if not isinstance(obj, dict) or not isinstance(obj.get("message_id"), str):
            raise ValueError(f"{path}: line {line_no}: a message needs a string 'message_id'")
        if obj.get("role") not in OASST_ROLES:
            raise ValueError(f"{path}: line {line_no}: role must be 'prompter' or 'assistant', got {obj.get('role')!r}")
        if not isinstance(obj.get("text"), str) or not obj["text"].strip():
            raise ValueError(f"{path}: line {line_no}: message {obj['message_id']!r} has no text")
        if obj["message_id"] in messages:
            first = line_of[obj["message_id"]]
            raise ValueError(f"{path}: line {line_no}: message_id {obj['message_id']!r} already on line {first}")
        messages[obj["message_id"]], line_of[obj["message_id"]] = obj, line_no
        order.append(obj["message_id"])
    children: dict[str | None, list[str]] = {}
    for mid in order:
        m = messages[mid]
        parent = m.get("parent_id")
        if parent is not None and parent not in messages:
            raise ValueError(f"{path}: line {line_of[mid]}: parent_id {parent!r} is not in the file")
        if parent is None and m["role"] != "prompter":
            raise ValueError(
                f"{path}: line {line_of[mid]}: a tree must start with a prompter message, not {m['role']!r}"
            )
        if parent is not None and messages[parent]["role"] == m["role"]:
            raise ValueError(
                f"{path}: line {line_of[mid]}: a {m['role']} message replies to another {m['role']} message"
            )
        if not m.get("deleted"):
            children.setdefault(parent, []).append(mid)

    def ranked(mids: list[str]) -> list[str]:
        return sorted(mids, key=lambda mid: (messages[mid].get("rank") is None, messages[mid].get("rank") or 0))

    found: list[list[str]] = []

    def walk(trail: list[str]) -> None:
        replies = children.get(trail[-1], [])
        if not replies:
            found.append(trail)
        for reply in ranked(replies)[:1] if paths == "best" else replies:
            walk(trail + [reply])

    for root in children.get(None, []):
        walk([root])
    out, seen = [], set()
    for trail in found:
        if messages[trail[-1]]["role"] == "prompter":
            trail = trail[:-1]
        if not trail or tuple(trail) in seen:
            continue
        seen.add(tuple(trail))
        chat = [{"role": OASST_ROLES[messages[m]["role"]], "content": messages[m]["text"]} for m in trail]
        meta = {"source": str(path), "message_ids": trail, "lines": [line_of[m] for m in trail]}
        out.append({"messages": chat, "type": "oasst", "meta": meta})
    return out
