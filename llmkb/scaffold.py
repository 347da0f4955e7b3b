"""Scaffold a new note: its page, its example, its test, and its two places in the nav.

In: a project folder (``mkdocs.yml``, ``docs/``, ``examples/``, ``tests/``) and a page name
``<section>/<slug>``, such as ``beyond/agents``. Out: ``docs/<section>/<slug>.md``,
``examples/<name>.py`` and ``tests/test_<name>.py`` (``name`` is the slug with underscores), and
``mkdocs.yml`` with the page under its section's nav entry (a new entry when no section holds that
folder yet) and the example's notebook under Notebooks.

    llmkb new-page beyond/agents

Nothing is overwritten: an existing page, example or test, a slug that is not lowercase letters,
digits and hyphens, or a section that is not a plain folder name is refused with a ``ValueError``
before anything is written. ``mkdocs.yml`` is edited as text, so its comments and layout stay.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from string import Template

import yaml

from llmkb.io import write_text

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
SECTION = re.compile(r"[a-z0-9][a-z0-9_-]*")
# docs/ folders that hold no pages: the build's outputs (excluded from the site) and static files.
RESERVED_SECTIONS = {"generated", "assets"}
NOTEBOOKS = "generated/notebooks/"  # where the docs build writes each example's executed notebook

PAGE = Template("""\
# $title

Replace this paragraph with what the note is about, in your own words: which part of building an
LLM it covers and what a reader takes away. Facts and figures may come from the notes; every
number this page states comes from running its example, never typed by hand.

!!! abstract "On this page"
    - a first measurement from `examples/$name.py` (replace it with the note's own).

    Run it yourself: `llmkb examples run $name --profile quick`, or open the
    [notebook version](../generated/notebooks/$name.ipynb).

## A first measurement

Say what the code below does and why it matters; the block after it is what the code printed
when the docs build ran it.

```python
--8<-- "examples/$name.py:first-look"
```

```text
--8<-- "docs/generated/$name/first-look.txt"
```
""")

EXAMPLE = Template('''\
"""$title: replace this line with what the example shows.

Run it: ``llmkb examples run $name --profile quick`` (or ``python examples/$name.py``).
The page ``docs/$section/$slug.md`` includes its sections; the docs build saves what they print.
"""

# %% [markdown]
# # $title
# Each `# %%` line starts a notebook cell. The page includes the code between a section's start and
# end markers, and the docs build saves what that cell printed for the page.

# %%
# --8<-- [start:first-look]
from itertools import islice

from llmkb.corpus import stdlib_docstrings
from llmkb.examples import context
from llmkb.tokenizer.bpe import BPETokenizer

ctx = context("$name")  # its profile, its run folder (ctx.ensure("sft") runs a stage if missing)
n_train = 50 if ctx.profile == "quick" else 200  # the quick profile keeps the tests fast
docs = [doc["text"] for doc in islice(stdlib_docstrings(), n_train + 1)]
tokenizer = BPETokenizer.train(docs[:n_train], vocab_size=512)  # a placeholder: measure the note's own topic
held_out = docs[n_train].encode()
ids = tokenizer.encode(docs[n_train])
print(f"{len(tokenizer.merges)} merges learned from {n_train} docstrings; a held-out one: "
      f"{len(held_out):,} bytes -> {len(ids):,} tokens ({len(held_out) / len(ids):.2f} bytes per token)")
# --8<-- [end:first-look]
assert tokenizer.decode(ids) == docs[n_train]  # what the measurement must get right, in every profile
''')

TEST = Template('''\
"""The $title example runs in the quick profile, as ``llmkb examples run $name --profile quick`` runs it."""

from pathlib import Path

from llmkb.examples import example_env, get_example, run_script

ROOT = Path(__file__).resolve().parents[1]


def test_${name}_example_runs_in_the_quick_profile(tmp_path, capfd):
    example = get_example("$name", ROOT)
    env = example_env("quick", None, tmp_path / "runs", tmp_path / "generated")
    assert run_script(example, env).returncode == 0  # the example's own asserts passed
    assert "bytes per token" in capfd.readouterr().out  # replace with a check of what the note measures
''')


def parse_page_name(page_name: str) -> tuple[str, str]:
    """Split ``<section>/<slug>`` and check both parts.

    >>> parse_page_name("beyond/mixture-of-experts")
    ('beyond', 'mixture-of-experts')
    >>> parse_page_name("beyond/Agents")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: slug 'Agents' (in 'beyond/Agents'): use lowercase letters, digits and single hyphens,
    e.g. beyond/my-topic
    """
    section, slash, slug = page_name.partition("/")
    if not slash:
        raise ValueError(f"{page_name!r} names no section: give the page as SECTION/SLUG, e.g. beyond/{page_name}")
    if not SECTION.fullmatch(section) or section in RESERVED_SECTIONS:
        raise ValueError(
            f"section {section!r} (in {page_name!r}): it must be one plain folder name under docs/ "
            f"(lowercase letters, digits, '-', '_'; not {' or '.join(sorted(RESERVED_SECTIONS))})"
        )
    if not SLUG.fullmatch(slug):
        raise ValueError(
            f"slug {slug!r} (in {page_name!r}): use lowercase letters, digits and single hyphens, "
            f"e.g. {section}/my-topic"
        )
    return section, slug


def title_of(slug: str) -> str:
    """A nav title from a folder name or slug.

    >>> title_of("mixture-of-experts")
    'Mixture of experts'
    """
    words = slug.replace("-", " ").replace("_", " ")
    return words[:1].upper() + words[1:]


def new_page(root: Path, page_name: str) -> list[Path]:
    """Write the page, its example and its test, and add both nav entries; return the files written."""
    section, slug = parse_page_name(page_name)
    name = slug.replace("-", "_")
    root = Path(root)
    config = root / "mkdocs.yml"
    page, example, test = (
        root / "docs" / section / f"{slug}.md",
        root / "examples" / f"{name}.py",
        root / "tests" / f"test_{name}.py",
    )
    for path in (page, example, test):
        if path.exists():
            raise ValueError(f"{path} already exists: pick another slug (nothing was written)")
    if not config.is_file():
        raise FileNotFoundError(f"{config} not found: run llmkb new-page in the project folder (or pass --root)")
    title = title_of(slug)
    # The nav is edited first, in memory: a nav it cannot read stops everything before a file is written.
    nav_text = add_to_nav(
        config.read_text(encoding="utf-8"), section, title, f"{section}/{slug}.md", f"{NOTEBOOKS}{name}.ipynb"
    )
    fields = {"title": title, "name": name, "section": section, "slug": slug}
    return [
        write_text(path, template.substitute(fields))
        for path, template in ((page, PAGE), (example, EXAMPLE), (test, TEST))
    ] + [write_text(config, nav_text)]


# -- mkdocs.yml's nav, edited as text ---------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Reads mkdocs.yml, whose ``!!python/name:`` tags name functions that only mkdocs needs to import."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def nav_of(text: str) -> list:
    """The ``nav`` list of a mkdocs.yml text."""
    nav = (yaml.load(text, Loader=_Loader) or {}).get("nav")
    if not isinstance(nav, list):
        raise ValueError("mkdocs.yml has no nav list to add the page to")
    return nav


def files_in(node) -> list[str]:
    """Every file a nav entry points at, depth first.

    >>> files_in([{"Home": "index.md"}, {"Beyond": [{"Quantization": "beyond/quantization.md"}]}])
    ['index.md', 'beyond/quantization.md']
    """
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [f for item in node for f in files_in(item)]
    if isinstance(node, dict):
        return [f for value in node.values() for f in files_in(value)]
    return []


def yaml_scalar(text: str) -> str:
    """``text`` as a YAML scalar: bare where YAML reads it back as the same string, else double-quoted.

    >>> yaml_scalar("Mixture of experts"), yaml_scalar("2024"), yaml_scalar("Yes"), yaml_scalar("Q: and A")
    ('Mixture of experts', '"2024"', '"Yes"', '"Q: and A"')
    """
    try:
        bare = yaml.safe_load(f"[{text}]") == [text]  # flow context: the strictest place a scalar can stand
    except yaml.YAMLError:
        bare = False
    return text if bare else json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def nav_item(title: str, file: str | None = None) -> str:
    """One nav line without its indent: ``- title: file``, or a section's head ``- title:``.

    >>> nav_item("Agents", "beyond/agents.md"), nav_item("Beyond")
    ('- Agents: beyond/agents.md', '- Beyond:')
    """
    return f"- {yaml_scalar(title)}:" + (f" {yaml_scalar(file)}" if file else "")


def _entry_spans(lines: list[str]) -> tuple[list[tuple[int, int]], str]:
    """The nav's top-level entries as (first line, line after the last) spans, and their indent.

    Blank and comment lines after an entry belong to no entry, so a line added at an entry's end
    lands right after its last item.
    """
    start = next((i + 1 for i, line in enumerate(lines) if re.match(r"nav:\s*(#.*)?$", line)), None)
    if start is None:
        raise ValueError("mkdocs.yml has no block-style 'nav:' line to add the page to")
    end = next(
        (
            i
            for i in range(start, len(lines))
            if lines[i].strip() and not lines[i][0].isspace() and not lines[i].startswith("#")
        ),
        len(lines),
    )
    heads = [i for i in range(start, end) if lines[i].lstrip().startswith("- ")]
    if not heads:
        raise ValueError("mkdocs.yml: the nav has no entries")
    indent = lines[heads[0]][: len(lines[heads[0]]) - len(lines[heads[0]].lstrip())]
    heads = [i for i in heads if lines[i].startswith(indent + "- ")]
    spans = []
    for head, next_head in zip(heads, heads[1:] + [end]):
        last = max(i for i in range(head, next_head) if lines[i].strip() and not lines[i].lstrip().startswith("#"))
        spans.append((head, last + 1))
    return spans, indent


def add_to_nav(text: str, section: str, title: str, page: str, notebook: str) -> str:
    """``text`` (a mkdocs.yml) with ``page`` under the entry that holds ``section/`` pages and ``notebook``
    under Notebooks.

    A section that no entry holds yet gets a new top-level entry after the last one that holds a
    folder of pages; a nav without Notebooks gets one at its end.
    """
    nav = nav_of(text)
    for path in (page, notebook):
        if path in files_in(nav):
            raise ValueError(f"mkdocs.yml already lists {path} in its nav")
    lines = text.splitlines(keepends=True)
    spans, indent = _entry_spans(lines)
    if len(spans) != len(nav):
        raise ValueError(
            f"mkdocs.yml: read {len(spans)} top-level nav lines for {len(nav)} entries; write the nav one entry a line"
        )

    def section_holding(prefix: str, suffix: str) -> int | None:
        """The first top-level section with a file ``prefix...suffix`` among its children."""
        for i, item in enumerate(nav):
            children = [v for v in item.values() if isinstance(v, list)] if isinstance(item, dict) else []
            if any(f.startswith(prefix) and f.endswith(suffix) for f in files_in(children)):
                return i
        return None

    def child_indent(i: int) -> str:
        head, stop = spans[i]
        child = next(line for line in lines[head + 1 : stop] if line.lstrip().startswith("- "))
        return child[: len(child) - len(child.lstrip())]

    home, books = section_holding(f"{section}/", ".md"), section_holding(NOTEBOOKS, ".ipynb")
    folders = [
        i for i in range(len(nav)) if i != books and any("/" in f and f.endswith(".md") for f in files_in(nav[i]))
    ]
    nav_end = spans[-1][1]  # after the nav's last entry (comments before the next key stay where they are)
    new_indent = child_indent(books) if books is not None else indent + "    "
    inserts = []  # (line index, lines to put before it)
    if home is not None:
        inserts.append((spans[home][1], f"{child_indent(home)}{nav_item(title, page)}\n"))
    else:  # a new section, after the last one that holds a folder of pages
        at = spans[folders[-1]][1] if folders else spans[books][0] if books is not None else nav_end
        inserts.append((at, f"{indent}{nav_item(title_of(section))}\n{new_indent}{nav_item(title, page)}\n"))
    if books is not None:
        inserts.append((spans[books][1], f"{new_indent}{nav_item(title, notebook)}\n"))
    else:
        inserts.append((nav_end, f"{indent}{nav_item('Notebooks')}\n{new_indent}{nav_item(title, notebook)}\n"))
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"  # an entry added at the very end must start on a line of its own
    # From the bottom up, so earlier positions stay valid; at one position the first insert ends up first.
    for _, (at, added) in sorted(enumerate(inserts), key=lambda insert: (insert[1][0], insert[0]), reverse=True):
        lines.insert(at, added)
    edited = "".join(lines)
    files = files_in(nav_of(edited))
    if page not in files or notebook not in files:
        raise ValueError(f"mkdocs.yml: could not add {page} and {notebook} to the nav")
    return edited
