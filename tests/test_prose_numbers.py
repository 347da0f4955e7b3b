"""Numbers in page prose come from the run: a run figure typed into a sentence fails here.

A page quotes what the run measured through the macros of ``docs/.overrides/macros.py``
(``{{ metric("sft", "final_test_loss") | num }}``), so the sentence shows whatever the run being
built measured. What stays typed is a figure that no run changes, and the page says which in its
front matter:

- ``literature:`` figures quoted from papers, the notes or other projects (FineWeb's 44 TB);
- ``facts:`` figures true whatever the run: 256 byte values, an int8 range, the mini-web's design.

Each entry is an exact piece of the page's prose that holds the figure; an entry that no longer
occurs is reported too, so the lists do not outlive the sentences they excuse.

The scan reads prose only: front matter, fenced and inline code, snippet includes (code and
generated tables), macros, math, link targets and HTML tags are left out.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKERS = ("literature", "facts")

FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)
NOT_PROSE = [
    re.compile(r"^ *(```|~~~).*?^ *\1[^\n]*$", re.M | re.S),  # fenced blocks (code, output, mermaid)
    re.compile(r"^.*--8<--.*$", re.M),  # snippet includes: example code and generated tables
    re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S),  # macros: the number comes from the run
    re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S),  # math
    re.compile(r"`(?:[^`\n]|\n(?![ \t]*\n))+`"),  # inline code (it may wrap, within a paragraph)
    re.compile(r"\]\([^)\s]*\)"),  # link targets (anchors hold numbers)
    re.compile(r"<[^>\n]+>"),  # HTML tags and their attributes
]
COUNT_NOUNS = (
    "steps|updates|iterations|epochs|tokens|documents|docs|pages|conversations|chats|questions|answers|words|sums|"
    "prompts|replies|rollouts|samples|judgements|pairs|people|names|searches|calls|parameters|"
    "seconds|minutes|hours|s|ms"
)
MAGNITUDES = "k|K|M|B|T|kB|KB|MB|GB|TB|thousand|million|billion|trillion"
NUMBER = re.compile(
    r"(?<![\w.,])"  # a whole number, not the tail of a word or of another number
    r"(?P<n>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?(?![\w.]*\.\d)"  # not a dotted triple (version, address)
    r"(?:\s?(?P<pct>%|percent\b)|\s?(?P<mag>(?:" + MAGNITUDES + r")\b)|\s(?P<noun>(?:" + COUNT_NOUNS + r")\b))?"
)


def prose(text: str) -> str:
    """``text`` with everything but prose blanked out (same line numbers)."""
    for pattern in [FRONT_MATTER, *NOT_PROSE]:
        text = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return text


def is_year(match: re.Match) -> bool:
    """A bare four-digit year (the 2017 paper): dates are no run figure."""
    n = match.group("n")
    return len(n) == 4 and 1800 <= int(n) <= 2099 and not (match.group("frac") or unit(match))


def unit(match: re.Match) -> str | None:
    """What follows the number and makes it a measurement: a percent sign, a magnitude or a count noun."""
    return match.group("pct") or match.group("mag") or match.group("noun")


def run_figures(line: str) -> list[re.Match]:
    """The figures on a prose line that look like something a run measured.

    >>> [m.group(0) for m in run_figures("rose to 95.5% after 600 steps on 1,352 documents of 44 TB in 2024")]
    ['95.5%', '600 steps', '1,352 documents', '44 TB']
    >>> run_figures("two of three heads, 12 layers, in 2017, version 1.2.3 on 127.0.0.1, steps 3-4")
    []
    """
    found = []
    for m in NUMBER.finditer(line):
        big = int(m.group("n").replace(",", "")) >= 100
        if (m.group("frac") or unit(m) or big) and not is_year(m):
            found.append(m)
    return found


def front_matter(text: str, page: str) -> dict:
    match = FRONT_MATTER.match(text)
    meta = yaml.safe_load(match.group(1)) if match else None
    meta = meta or {}
    for key in MARKERS:
        entries = meta.get(key, [])
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ValueError(f"{page}: front matter '{key}:' must be a list of strings (exact pieces of the prose)")
    return meta


def typed_figures(text: str, page: str) -> list[str]:
    """Problems of one page: each unmarked run figure (page, line, figure) and each marker that matches nothing."""
    meta = front_matter(text, page)
    marked = [e for key in MARKERS for e in meta.get(key, [])]
    problems, used = [], set()
    for number, line in enumerate(prose(text).splitlines(), 1):
        spans = [(m.start(), m.start() + len(e), e) for e in marked for m in re.finditer(re.escape(e), line)]
        used.update(e for _, _, e in spans)
        for figure in run_figures(line):
            if not any(a <= figure.start() and figure.end() <= b for a, b, _ in spans):
                problems.append(
                    f"{page}:{number}: {figure.group(0)!r} is typed into the prose: take it from the run "
                    f"({{{{ metric(...) }}}} or {{{{ setting(...) }}}}), or list the words that hold it under "
                    f"'literature:' (a published figure) or 'facts:' (true whatever the run) in the front matter"
                )
    problems += [f"{page}: the marked figure {e!r} is not in the prose any more" for e in marked if e not in used]
    return problems


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "generated" not in p.parts)


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_no_run_figure_is_typed_into_prose(page):
    problems = typed_figures(page.read_text(encoding="utf-8"), str(page.relative_to(ROOT)))
    assert not problems, "\n".join(problems)


def test_a_planted_figure_fails_and_a_marked_one_passes():
    page = "---\nliterature:\n  - 44 TB of text\n---\n\n# A page\n\nFineWeb holds 44 TB of text.\n"
    assert typed_figures(page, "docs/x.md") == []
    planted = page + "Our filter kept 1,352 documents, and the model is right 95.5% of the time.\n"
    problems = typed_figures(planted, "docs/x.md")
    assert len(problems) == 2 and all(p.startswith("docs/x.md:9: ") for p in problems)
    assert "'1,352 documents'" in problems[0] and "'95.5%'" in problems[1]
    macro = page + 'It kept {{ metric("data", "kept") | num }} documents, `0.65` in code.\n'
    assert typed_figures(macro, "docs/x.md") == []


def test_a_stale_marker_and_a_bad_front_matter_are_reported():
    assert typed_figures("---\nfacts:\n  - 256 byte values\n---\n\nNo numbers.\n", "docs/x.md") == [
        "docs/x.md: the marked figure '256 byte values' is not in the prose any more"
    ]
    with pytest.raises(ValueError, match="docs/x.md: front matter 'facts:'"):
        typed_figures("---\nfacts: 256\n---\n", "docs/x.md")


def test_a_missing_metric_fails_with_page_stage_and_key(tmp_path, monkeypatch):
    """The macros never render a blank: a key the run lacks stops the build and says where."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("macros", DOCS / ".overrides" / "macros.py")
    macros = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(macros)
    (tmp_path / "runs" / "quick" / "sft").mkdir(parents=True)
    (tmp_path / "runs" / "quick" / "sft" / "metrics.json").write_text('{"steps": 600, "loss": {"final": 0.75}}')
    monkeypatch.setenv("LLMKB_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv("LLMKB_RUN", "quick")
    run = macros.run_folder(tmp_path)
    assert macros.lookup(run, "sft", "metrics.json", "loss.final", "docs/p.md") == 0.75
    with pytest.raises(macros.MissingFigure, match=r"docs/p\.md asks for stage 'sft', key 'lost'.*has no 'lost'"):
        macros.lookup(run, "sft", "metrics.json", "lost", "docs/p.md")
    with pytest.raises(macros.MissingFigure, match=r"docs/p\.md asks for stage 'dpo'.*does not exist"):
        macros.lookup(run, "dpo", "metrics.json", "steps", "docs/p.md")
    assert (macros.pct(0.955), macros.num(1352), macros.num(3.0421)) == ("95.5%", "1,352", "3.04")
