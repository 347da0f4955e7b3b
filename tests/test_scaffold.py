"""llmkb new-page: the scaffolded note passes the contract checks and ``mkdocs build --strict``.

The notes are scaffolded into a copy of ``site_project`` (conftest: the site sources with every
example already run in the quick profile), never into the working tree. The copy links the same
run folder, so the other examples' outputs stay fresh and only the new examples run.
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmkb.cli import main
from llmkb.docs_site import build
from llmkb.examples import list_examples
from llmkb.scaffold import files_in, nav_of, new_page

ROOT = Path(__file__).resolve().parents[1]
IN_EXISTING_SECTION, IN_NEW_SECTION = "beyond/agents-at-work", "extras/glossary"


@pytest.fixture(scope="module")
def scaffolded(site_project, tmp_path_factory) -> Path:
    """A copy of ``site_project`` with two scaffolded notes, built by the docs build (strict)."""
    root = tmp_path_factory.mktemp("scaffolded")
    for name in ("mkdocs.yml", "CONTRIBUTING.md"):
        shutil.copy(site_project / name, root / name)
    for name in ("docs", "examples", "llmkb"):  # the pages include sections of llmkb/ too
        shutil.copytree(site_project / name, root / name)
    (root / "runs").symlink_to(site_project / "runs")  # the same resolved path: the same input digests
    for page in (IN_EXISTING_SECTION, IN_NEW_SECTION):
        new_page(root, page)
    build(root, root / "site", profile="quick", runs_root=root / "runs")  # raises on any mkdocs warning
    return root


@pytest.fixture
def project(tmp_path) -> Path:
    """A folder with the project's mkdocs.yml and nothing else: enough to scaffold into."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    return tmp_path


def test_the_page_goes_into_its_section_and_the_notebook_into_notebooks(scaffolded, site_project):
    nav = nav_of((scaffolded / "mkdocs.yml").read_text())
    titles = [next(iter(item)) for item in nav]
    sections = {title: files_in(item) for title, item in zip(titles, nav)}
    assert sections["Beyond"][-1] == "beyond/agents-at-work.md"
    assert titles.index("Extras") == titles.index("Beyond") + 1 and sections["Extras"] == ["extras/glossary.md"]
    assert sections["Notebooks"][-2:] == [
        "generated/notebooks/agents_at_work.ipynb",
        "generated/notebooks/glossary.ipynb",
    ]
    before = (site_project / "mkdocs.yml").read_text().splitlines()
    diff = list(difflib.ndiff(before, (scaffolded / "mkdocs.yml").read_text().splitlines()))
    assert not [line for line in diff if line.startswith("- ")], "a line of mkdocs.yml was changed or removed"
    assert len([line for line in diff if line.startswith("+ ")]) == 5  # 2 pages, 1 section head, 2 notebooks
    for name in ("agents_at_work", "glossary"):
        assert (scaffolded / "tests" / f"test_{name}.py").is_file()


def test_contract_checks_pass_on_the_scaffolded_project(scaffolded, monkeypatch):
    """The contract tests themselves, pointed at the copy instead of the working tree."""
    import test_contract as contract

    monkeypatch.setattr(contract, "ROOT", scaffolded)
    monkeypatch.setattr(contract, "DOCS", scaffolded / "docs")
    monkeypatch.setattr(contract, "list_examples", lambda root=None: list_examples(root or scaffolded))
    new = [e for e in contract.list_examples() if e.name in ("agents_at_work", "glossary")]
    assert len(new) == 2
    for page in contract.pages():
        contract.test_python_on_pages_is_included_not_pasted(page)
        contract.test_shown_outputs_come_from_generated_files(page)
    contract.test_included_sections_exist()
    for example in contract.list_examples():
        contract.test_example_asserts_on_its_result(example)
    for example in new:
        contract.test_example_ran_as_a_notebook_with_fresh_outputs(scaffolded, example)
    contract.test_every_generated_file_a_page_shows_exists_after_the_examples_ran(scaffolded)
    contract.test_every_nav_page_embeds_an_example()
    contract.test_every_example_is_on_a_page_and_in_the_notebooks_nav()


def test_the_built_page_shows_what_its_example_printed(scaffolded):
    printed = (scaffolded / "docs" / "generated" / "agents_at_work" / "first-look.txt").read_text()
    assert "bytes per token" in printed
    page = (scaffolded / "site" / "beyond" / "agents-at-work" / "index.html").read_text(encoding="utf-8")
    assert printed.split(";")[0] in page  # e.g. "253 merges learned from 50 docstrings"
    assert "llmkb examples run agents_at_work --profile quick" in page
    assert (scaffolded / "site" / "generated" / "notebooks" / "glossary" / "index.html").is_file()


def test_the_scaffolded_test_passes_and_fails_when_its_example_breaks(project):
    new_page(project, "beyond/agents")
    test = project / "tests" / "test_agents.py"

    def pytest_result() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
            cwd=project,
            capture_output=True,
            text=True,
        )

    passed = pytest_result()
    assert passed.returncode == 0 and "1 passed" in passed.stdout, passed.stdout
    example = project / "examples" / "agents.py"
    example.write_text(example.read_text().replace("assert tokenizer.decode(ids) == docs[n_train]", "assert not ids"))
    failed = pytest_result()
    assert failed.returncode == 1 and "1 failed" in failed.stdout, failed.stdout


@pytest.mark.parametrize(
    ("name", "wrong"),
    [
        ("beyond/Agents", "'Agents'"),
        ("beyond/agents_x", "'agents_x'"),
        ("beyond/-agents", "'-agents'"),
        ("beyond/", "''"),
        ("beyond/a/b", "'a/b'"),
        ("agents", "names no section"),
        ("../agents", "'..'"),
        (".hidden/agents", "'.hidden'"),
        ("Beyond/agents", "'Beyond'"),
        ("generated/agents", "'generated'"),
        ("my section/agents", "'my section'"),
    ],
)
def test_bad_names_are_refused_before_anything_is_written(project, name, wrong):
    before = (project / "mkdocs.yml").read_text()
    with pytest.raises(ValueError, match=re.escape(wrong)):
        new_page(project, name)
    assert sorted(p.name for p in project.iterdir()) == ["mkdocs.yml"]
    assert (project / "mkdocs.yml").read_text() == before


@pytest.mark.parametrize("existing", ["docs/beyond/agents.md", "examples/agents.py", "tests/test_agents.py"])
def test_an_existing_file_is_refused_and_nothing_is_written(project, existing):
    (project / existing).parent.mkdir(parents=True)
    (project / existing).write_text("mine\n")
    before = (project / "mkdocs.yml").read_text()
    with pytest.raises(ValueError, match=re.escape(str(project / existing))):
        new_page(project, "beyond/agents")
    written = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert written == sorted(["mkdocs.yml", existing])
    assert (project / existing).read_text() == "mine\n" and (project / "mkdocs.yml").read_text() == before


def test_a_page_already_in_the_nav_is_refused(project):
    (project / "mkdocs.yml").write_text("site_name: x\nnav:\n  - Home: index.md\n  - Agents: beyond/agents.md\n")
    with pytest.raises(ValueError, match="already lists beyond/agents.md"):
        new_page(project, "beyond/agents")
    assert not (project / "docs").exists()


def test_a_nav_without_sections_gets_them_and_keeps_its_comments(project):
    (project / "mkdocs.yml").write_text(
        'site_name: x\nnav:\n  # the home page first\n  - Home: index.md\n  - "2024": year.md\n\n'
        "# after the nav\ntheme: material\n"
    )
    new_page(project, "extras/yes")
    text = (project / "mkdocs.yml").read_text()
    assert "  # the home page first\n" in text and "\n# after the nav\ntheme: material\n" in text
    assert nav_of(text) == [
        {"Home": "index.md"},
        {"2024": "year.md"},
        {"Extras": [{"Yes": "extras/yes.md"}]},
        {"Notebooks": [{"Yes": "generated/notebooks/yes.ipynb"}]},
    ]


def test_the_command_line(project, capsys):
    assert main(["new-page", "beyond/agents", "--root", str(project)]) == 0
    out = capsys.readouterr().out
    assert (
        f"wrote {project / 'docs' / 'beyond' / 'agents.md'}" in out
        and "llmkb examples run agents --profile quick" in out
    )
    assert main(["new-page", "beyond/agents", "--root", str(project)]) == 2
    assert "already exists" in capsys.readouterr().err
