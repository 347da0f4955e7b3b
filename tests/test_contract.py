"""The docs <-> code contract: these tests fail when a page and the code it shows drift apart.

1. code on a page is included by named section, never pasted: from examples/, or from an llmkb/
   module where the page teaches that module's own algorithm (the tokenization page's textbook BPE
   loop); every other include is an output from docs/generated/ (numbers in prose: test_prose_numbers.py);
2. every example runs (as a notebook, in the quick profile) and asserts on its result;
3. outputs shown on a page come from running the example, and stale outputs are detected;
4. coverage both ways: each nav page embeds an example, each example is on a page, each module
   has API docs;
5. ``mkdocs build --strict`` passes, offline (no CDN anywhere);
6. the browser test lives in test_browser.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from llmkb.examples import example_env, inputs_digest, list_examples
from llmkb.io import read_json

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
INCLUDE = re.compile(r'--8<--\s+"([^"]+)"')
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
# Pages that are not prose about a stage: the API reference is generated from docstrings.
NOT_STAGE_PAGES = {"reference.md"}
CDN = re.compile(r"fonts\.googleapis|fonts\.gstatic|unpkg\.com|cdn\.jsdelivr|cdnjs\.|googletagmanager")


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "generated" not in p.parts)


def nav_files() -> list[str]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)

    def walk(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from walk(value)

    return list(walk(config["nav"]))


def includes(page: Path) -> list[str]:
    return INCLUDE.findall(page.read_text(encoding="utf-8"))


def example_includes(page: Path) -> list[str]:
    return [i for i in includes(page) if i.startswith("examples/")]


# -- 1. code comes from examples/ -------------------------------------------------------------


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_python_on_pages_is_included_not_pasted(page):
    for lang, body in FENCE.findall(page.read_text(encoding="utf-8")):
        if lang in ("python", "py", "pycon"):
            lines = [line for line in body.splitlines() if line.strip()]
            assert lines and all(INCLUDE.search(line) for line in lines), f"{page}: pasted Python code:\n{body}"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_shown_outputs_come_from_generated_files(page):
    """A text block on a page is an example's real output, included from docs/generated/."""
    for lang, body in FENCE.findall(page.read_text(encoding="utf-8")):
        if lang in ("text", "console", "output"):
            lines = [line for line in body.splitlines() if line.strip()]
            assert lines and all(m and m.group(1).startswith("docs/generated/") for m in map(INCLUDE.search, lines)), (
                f"{page}: hand-typed output block:\n{body}"
            )


def include_problems(page: str, included: list[str], root: Path) -> list[str]:
    """What is wrong with a page's includes: a source the contract does not allow, a missing section."""
    problems = []
    for include in included:
        path, _, section = include.partition(":")
        if path.startswith("docs/generated/") or (include == "CONTRIBUTING.md" and page.endswith("contributing.md")):
            continue  # an example's output; the contributing page shows the repository's CONTRIBUTING.md
        if not (path.startswith("examples/") or (path.startswith("llmkb/") and path.endswith(".py"))):
            problems.append(f"{page}: {include} is neither an example, a package module nor a generated output")
        elif not section:
            problems.append(f"{page}: {include} names no section (include a named section, not a whole file)")
        elif not (root / path).is_file():
            problems.append(f"{page}: {path} does not exist")
        else:
            source = (root / path).read_text(encoding="utf-8")
            problems += [
                f"{page}: {path} has no [{edge}:{section}] marker"
                for edge in ("start", "end")
                if f"# --8<-- [{edge}:{section}]" not in source
            ]
    return problems


def test_included_sections_exist():
    """Code comes from examples/ or from a package module, always by a named section that exists."""
    problems = [p for page in pages() for p in include_problems(str(page.relative_to(ROOT)), includes(page), ROOT)]
    assert not problems, "\n".join(problems)


def test_a_module_section_is_allowed_and_checked_like_an_example():
    page = "docs/pretraining/tokenization.md"
    assert "llmkb/tokenizer/bpe.py:textbook" in includes(ROOT / page)  # the one module include today
    assert include_problems(page, ["llmkb/tokenizer/bpe.py:textbook", "docs/generated/x/y.txt"], ROOT) == []
    assert include_problems(
        page,
        [
            "llmkb/tokenizer/bpe.py",
            "llmkb/tokenizer/bpe.py:nowhere",
            "tests/conftest.py:x",
            "examples/none.py:a",
            "CONTRIBUTING.md",
        ],
        ROOT,
    ) == [
        f"{page}: llmkb/tokenizer/bpe.py names no section (include a named section, not a whole file)",
        f"{page}: llmkb/tokenizer/bpe.py has no [start:nowhere] marker",
        f"{page}: llmkb/tokenizer/bpe.py has no [end:nowhere] marker",
        f"{page}: tests/conftest.py:x is neither an example, a package module nor a generated output",
        f"{page}: examples/none.py does not exist",
        f"{page}: CONTRIBUTING.md is neither an example, a package module nor a generated output",
    ]


# -- 2. every example asserts, and runs --------------------------------------------------------


@pytest.mark.parametrize("example", list_examples(), ids=lambda e: e.name)
def test_example_asserts_on_its_result(example):
    tree = ast.parse(example.path.read_text(encoding="utf-8"))
    assert any(isinstance(node, ast.Assert) for node in ast.walk(tree)), f"{example.path}: no assert"


@pytest.mark.parametrize("example", list_examples(), ids=lambda e: e.name)
def test_example_ran_as_a_notebook_with_fresh_outputs(site_project, example):
    import nbformat

    generated = site_project / "docs" / "generated"
    notebook = nbformat.read(generated / "notebooks" / f"{example.name}.ipynb", as_version=4)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert code_cells and all(c.get("execution_count") for c in code_cells), "a cell did not run"
    assert not any(o.get("output_type") == "error" for c in code_cells for o in c.outputs)
    copied = next(e for e in list_examples(site_project) if e.name == example.name)
    env = example_env("quick", None, site_project / "runs", generated)
    stamp = read_json(generated / example.name / "stamp.json")
    assert stamp["inputs_sha256"] == inputs_digest(copied, env), "outputs are stale"
    assert stamp["seconds"] > 0  # the next build starts the slowest examples first


def test_changing_an_example_makes_its_outputs_stale(site_project, tmp_path):
    generated = site_project / "docs" / "generated"
    example = next(e for e in list_examples(site_project) if e.name == "tokenization")
    env = example_env("quick", None, site_project / "runs", generated)
    stamp = read_json(generated / example.name / "stamp.json")["inputs_sha256"]
    edited = tmp_path / "examples" / example.path.name
    edited.parent.mkdir()
    edited.write_text(example.path.read_text() + "\nprint('changed')\n")
    assert inputs_digest(type(example)(example.name, edited, example.title), env) != stamp


def test_every_generated_file_a_page_shows_exists_after_the_examples_ran(site_project):
    for page in pages():
        for include in includes(page):
            if include.startswith("docs/generated/"):
                assert (site_project / include).is_file(), f"{page}: {include} was not produced by any example"


# -- 4. coverage both ways ---------------------------------------------------------------------


def test_every_nav_page_embeds_an_example():
    for name in nav_files():
        if name.endswith(".md") and name not in NOT_STAGE_PAGES:
            assert example_includes(DOCS / name), f"docs/{name} embeds no example from examples/"


def test_every_example_is_on_a_page_and_in_the_notebooks_nav():
    shown = {include.partition(":")[0] for page in pages() for include in example_includes(page)}
    notebooks = set(nav_files())
    for example in list_examples():
        assert f"examples/{example.path.name}" in shown, f"{example.path} is included by no page"
        assert f"generated/notebooks/{example.name}.ipynb" in notebooks, (
            f"{example.name} has no notebook page in the nav"
        )


def test_every_module_has_api_docs():
    documented = set(re.findall(r"^::: ([\w.]+)", (DOCS / "reference.md").read_text(), re.M))
    for path in sorted((ROOT / "llmkb").rglob("*.py")):
        if path.name == "__main__.py":
            continue
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        assert module in documented, f"{module} is not in docs/reference.md"


# -- 5. strict, offline build ------------------------------------------------------------------


def test_site_builds_strict_with_real_outputs(built_site):
    page = (built_site / "pretraining" / "tokenization" / "index.html").read_text(encoding="utf-8")
    assert "WordPiece" in page and "SentencePiece (Unigram)" in page  # the measured table
    assert "strawberry" in page and "llmkb-token" in page  # spelling table and token view
    assert (built_site / "generated" / "notebooks" / "tokenization" / "index.html").exists()


def test_nothing_points_at_a_cdn(built_site):
    assert "font: false" in (ROOT / "mkdocs.yml").read_text()
    offenders = [
        str(path.relative_to(built_site))
        for path in built_site.rglob("*")
        if path.suffix in (".html", ".css") and CDN.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not offenders, f"pages that would fetch from a CDN: {offenders[:5]}"
