"""A search tool for the chat model: a document store over the crawled text, and conversations that use it.

In: the data stage's kept documents (``runs/<run>/data/train.jsonl``), the SFT chat model and its
tokenizer, and the mini-web's people (for the questions). Out: :class:`DocumentStore` (the
sentences of the corpus; :meth:`~DocumentStore.search` returns the one that best matches a
name), :func:`search_conversations` (training records about invented people: the question, a
call, the tool's sentence or "No results.", the answer or a refusal) and :func:`search_answers`
(each question answered through the runtime of :mod:`llmkb.sft.tools`, with what was searched
and found) and :func:`from_memory` (questions the model already knows, answered without a call).

The model is taught the tool on people that exist nowhere else: their facts reach it only through
the tool's result, so the only way to answer right is to call the tool with the name and read
the answer out of what comes back. The name in a call starts with a space (``<|search_start|>
Ka Lo<|search_end|>``): the question has the name after a space too, so the call repeats the
question's tokens exactly (without the space the first word is cut into other tokens, and
copying it becomes a translation; in scratch runs that took the model's exact copies of new names
from about 15% to about 80%).

When not to search is taught by the other kind of record: questions about people the model
already knows (found by interrogation, as for the refusal data), answered straight away. The
line between the two is the one a model can feel: a name it read many times in pretraining
against a name it has never seen.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from llmkb.psychology.hallucination import REFUSALS
from llmkb.sft.data import fix_articles, instruction_pairs
from llmkb.sft.tools import NO_RESULTS, tool_conversation
from llmkb.world import FACT_TEMPLATES, OCCUPATIONS, RELATIONS, fact_sentence, invented_word

TOOL = "search"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class DocumentStore:
    """The sentences of a corpus, searched for an exact name.

    :meth:`search` returns the sentence in which the query appears earliest. In the mini-web's
    chronicles a person's own sentence names them before anyone they are related to, so the
    earliest mention is the sentence *about* them, not one where they are someone's rival.

    Examples:
        >>> store = DocumentStore(["Ka Lo was a weaver. Zu Ba was the rival of Ka Lo.", "Nothing here."])
        >>> store.search("Ka Lo"), store.search("Zu Ba"), store.search("Mo Ri")
        ('Ka Lo was a weaver.', 'Zu Ba was the rival of Ka Lo.', '')
    """

    def __init__(self, texts: list[str]):
        self.sentences = [s for text in texts for s in SENTENCE_END.split(text) if s]

    @classmethod
    def from_corpus(cls, corpus_dir: str | Path) -> DocumentStore:
        """The store of a data stage's kept documents (``train.jsonl``); a bad line or an empty corpus is an
        error naming the file."""
        from llmkb.corpus import load_split

        return cls([doc["text"] for doc in load_split(corpus_dir, "train")])

    def search(self, query: str) -> str:
        """The sentence where ``query`` appears earliest (ties: the first such sentence), or ``""``."""
        query = query.strip()
        hits = [(s.find(query), i) for i, s in enumerate(self.sentences) if query and query in s]
        return self.sentences[min(hits)[1]] if hits else ""


def invented_person(rng: random.Random, cities: list[str]) -> dict:
    """A person with a new name and random facts, shaped like those of :func:`llmkb.world.make_entities`."""

    def name() -> str:
        return f"{invented_word(rng, 3)} {invented_word(rng, 3)}"

    facts = {
        "born": rng.randrange(1700, 1950),
        "city": rng.choice(cities),
        "occupation": rng.choice(OCCUPATIONS),
        "relation": rng.choice(RELATIONS),
        "related_to": name(),
    }
    return {"name": name(), "facts": facts}


def search_conversations(n: int, cities: list[str], no_results_share: float = 0.2, seed: int = 0) -> list[dict]:
    """``n`` tool conversations about invented people: question, call, result, answer.

    A share ``no_results_share`` of them find nothing (``"No results."``) and answer with a refusal
    naming the person; the rest get one sentence stating the person's facts in a random mini-web
    wording and answer the question as the SFT data does.

    Examples:
        >>> r = search_conversations(1, ["Vemora"], no_results_share=0.0)[0]
        >>> [m["role"] for m in r["messages"]], r["messages"][1]["content"].startswith("<|search_start|> ")
        (['user', 'assistant', 'tool', 'assistant'], True)
    """
    rng = random.Random(f"psychology:search:{seed}")
    records = []
    for i in range(n):
        person = invented_person(rng, cities)
        question = instruction_pairs([person], seed=seed * n + i, n=1)[0]
        name, meta = person["name"], {**question["meta"], "found": True}
        if rng.random() < no_results_share:
            result, answer, meta["found"] = NO_RESULTS, rng.choice(REFUSALS).format(name=name), False
        else:
            result = fix_articles(fact_sentence(person, rng.randrange(len(FACT_TEMPLATES))))
            answer = question["messages"][1]["content"]
        records.append(tool_conversation(question["messages"][0]["content"], TOOL, f" {name}", result, answer, meta))
    return records


def from_memory(records: list[dict], known: list[bool], n: int, seed: int = 0) -> list[dict]:
    """``n`` conversations answered without a call, drawn (with repeats) from the ``records`` whose ``known`` is true.

    Records (question + reference answer, :func:`llmkb.psychology.hallucination.questions`) the model
    does not know are left out: answering those from memory is what the tool is for.

    Examples:
        >>> r = [{"messages": [{"role": "user", "content": f"Q{i}?"}]} for i in range(3)]
        >>> sorted({x["messages"][0]["content"] for x in from_memory(r, [True, False, True], 20)})
        ['Q0?', 'Q2?']
        >>> from_memory(r, [False] * 3, 5)
        []
    """
    pool = [r for r, k in zip(records, known, strict=True) if k]
    rng = random.Random(f"psychology:search:memory:{seed}")
    return [rng.choice(pool) for _ in range(n)] if pool else []


def search_answers(model, tokenizer, records: list[dict], store: DocumentStore, max_new_tokens: int = 48) -> list[dict]:
    """Each record's question answered with the search tool: ``{"text", "calls", "exact_query", "found"}``.

    ``exact_query``: the first call searched exactly the person's name; ``found``: it returned a sentence.
    """
    from llmkb.sft.tools import answer_with_tools

    replies = answer_with_tools(
        model,
        tokenizer,
        [[r["messages"][0]] for r in records],
        {TOOL: store.search},
        max_calls=1,
        max_new_tokens=max_new_tokens,
    )
    for reply, record in zip(replies, records, strict=True):
        first = reply["calls"][0] if reply["calls"] else None
        reply["exact_query"] = first is not None and first["query"] == record["meta"]["name"]
        reply["found"] = first is not None and first["result"] != NO_RESULTS
    return replies
