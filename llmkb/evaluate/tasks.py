"""Tasks with one right answer, and how a model's free text is scored against it.

In: a generation function (a list of prompts -> a list of outputs: greedy decoding of a base model,
a chat model behind a template, an API) and problems ``(prompt, answer)``. Out: exact-match
accuracy and a few worked examples.

- :func:`arithmetic_problems`: "What is 37 + 45?" -> "82", generated from a seed, so the same call
  always gives the same problems and the answers are computed, not written by hand.
- :func:`extract_answer`: the part of a model's output that is its answer (the text after
  ``Answer:``, else the first number), because models wrap answers in words.
- :func:`normalize` and :func:`exact_match`: answers compare after trimming the differences that
  do not change the answer (spaces, case, a full stop at the end).
- :func:`task_accuracy`: all of the above around any generation function.

Exact match is strict on purpose: a number is right or wrong, so the score cannot be argued
with, and later stages (fine-tuning, RL with verifiable rewards) can use it as a reward.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")  # 82, -3, 1,234, 2.5
ANSWER_MARK = re.compile(r"answer\s*:", re.IGNORECASE)


def arithmetic_problems(n: int, digits: int = 2, seed: int = 0, ops: str = "+") -> list[tuple[str, str]]:
    """``n`` problems ``("What is a + b?", "a+b")`` with ``digits``-digit operands.

    ``ops`` picks the operations among ``+ - *`` (each problem draws one). Subtraction puts the
    larger number first, so answers are never negative. The same arguments give the same problems.

    Examples:
        >>> arithmetic_problems(2, digits=2, seed=0)
        [('What is 63 + 15?', '78'), ('What is 75 + 72?', '147')]
        >>> arithmetic_problems(2, digits=1, seed=4, ops="+-*")
        [('What is 4 + 1?', '5'), ('What is 6 * 7?', '42')]
    """
    if n < 0 or digits < 1:
        raise ValueError(f"need n >= 0 and digits >= 1 (got n {n}, digits {digits})")
    unknown = set(ops) - set(OPERATIONS)
    if not ops or unknown:
        raise ValueError(f"ops {ops!r}: each character must be one of {' '.join(OPERATIONS)}")
    rng = random.Random(seed)
    low, high = (0 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1
    problems = []
    for _ in range(n):
        op = rng.choice(ops)
        a, b = rng.randint(low, high), rng.randint(low, high)
        if op == "-" and b > a:
            a, b = b, a
        problems.append((f"What is {a} {op} {b}?", str(OPERATIONS[op](a, b))))
    return problems


def extract_answer(text: str) -> str:
    """The answer in a model's output: what follows the last ``Answer:`` (to the end of its line),
    else the first number in the text (thousands commas removed), else ``""``.

    Examples:
        >>> extract_answer("37 + 45 = 82, so the sum is 82.")
        '37'
        >>> extract_answer("37 + 45 = 82. Answer: 82.")
        '82.'
        >>> extract_answer("It is 1,234 apples")
        '1234'
        >>> extract_answer("no idea")
        ''
    """
    marks = list(ANSWER_MARK.finditer(text))
    if marks:  # the last one: a model may restate the question's "Answer:" format before answering
        return text[marks[-1].end() :].split("\n")[0].strip()
    number = NUMBER.search(text)
    return number.group().replace(",", "") if number else ""


def normalize(answer: str) -> str:
    """Trim what does not change an answer: outer spaces, runs of spaces, case, full stops at the end.

    Examples:
        >>> normalize("  The  Answer is 82. ")
        'the answer is 82'
        >>> normalize("2.5")
        '2.5'
    """
    return " ".join(answer.split()).rstrip(".").strip().casefold()


def exact_match(predictions: Sequence[str], answers: Sequence[str]) -> float:
    """Share of ``predictions`` equal to their ``answers`` after :func:`normalize`.

    >>> exact_match(["82.", " 7", "12"], ["82", "7", "13"])
    0.6666666666666666
    """
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions for {len(answers)} answers")
    if not answers:
        raise ValueError("no answers to score")
    return sum(normalize(p) == normalize(a) for p, a in zip(predictions, answers)) / len(answers)


def task_accuracy(
    generate_fn: Callable[[list[str]], list[str]],
    problems: Sequence[tuple[str, str]],
    extract: Callable[[str], str] = extract_answer,
    show: int = 3,
) -> dict:
    """Exact-match accuracy of ``generate_fn`` on ``problems`` (``(prompt, answer)`` pairs).

    ``generate_fn`` gets every prompt in one call (so it can batch) and returns one output per
    prompt; ``extract`` picks the answer out of each output. Returns ``accuracy``, ``correct``,
    ``total`` and the first ``show`` ``examples`` as dicts (prompt, expected, output, extracted).

    Examples:
        >>> def adder(prompts):  # a perfect "model" for sums: "What is 63 + 15?" -> "78"
        ...     return [str(sum(int(n) for n in p[8:-1].split(" + "))) for p in prompts]
        >>> task_accuracy(adder, arithmetic_problems(5))["accuracy"]
        1.0
    """
    prompts = [prompt for prompt, _ in problems]
    outputs = list(generate_fn(prompts))
    if len(outputs) != len(prompts):
        raise ValueError(f"generate_fn returned {len(outputs)} outputs for {len(prompts)} prompts")
    extracted = [extract(output) for output in outputs]
    expected = [answer for _, answer in problems]
    accuracy = exact_match(extracted, expected)
    correct = sum(normalize(e) == normalize(a) for e, a in zip(extracted, expected))
    examples = [
        {"prompt": p, "expected": a, "output": o, "extracted": e}
        for p, a, o, e in list(zip(prompts, expected, outputs, extracted))[:show]
    ]
    return {"accuracy": accuracy, "correct": correct, "total": len(expected), "examples": examples}
