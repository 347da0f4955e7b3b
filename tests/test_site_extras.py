"""What every built page shows besides its own text: "Run this locally", an edit link, a date.

In: the built quick site (``built_site``) and the copy of the sources it was built from
(``site_project``). The elements are added by the MkDocs hook ``docs/.overrides/hooks.py``; these
tests read the built HTML, so they check what a reader gets, not what the hook meant to do.
"""

from __future__ import annotations

import datetime
import html
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_browser import page_file, site_pages  # tests/ is on sys.path under pytest
from test_contract import example_includes

ROOT = Path(__file__).resolve().parents[1]
RUN_BOX = re.compile(r'<div class="admonition example" id="run-this-locally">.*?<code>(.*?)</code>', re.S)
FACTS = re.compile(r'<aside class="md-source-file" id="page-facts">(.*?)</aside>', re.S)
DATE = re.compile(r'<time datetime="(\d{4}-\d{2}-\d{2})">\1</time>')
EDIT_BUTTON = re.compile(r'<a href="([^"]+)" title="Edit this page" class="md-content__button md-icon" rel="edit">')
EDIT_LINK = re.compile(r'<a href="([^"]+)">Edit this page\b')
NOTEBOOK_PAGE = "generated/notebooks/"


def load_hooks():
    """docs/.overrides/hooks.py as a module (MkDocs loads it by path; it is not a package)."""
    spec = importlib.util.spec_from_file_location("llmkb_site_hooks", ROOT / "docs" / ".overrides" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page_sources(project: Path, rel: str) -> tuple[Path, list[str]]:
    """The file a reader edits for built page ``rel``, and the examples the page runs.

    >>> page_sources(Path("p"), "generated/notebooks/sft/")
    (PosixPath('p/examples/sft.py'), ['sft'])
    """
    if rel.startswith(NOTEBOOK_PAGE):
        name = rel[len(NOTEBOOK_PAGE) :].strip("/")
        return project / "examples" / f"{name}.py", [name]
    stem = project / "docs" / (rel.rstrip("/") or "index")
    source = next(p for p in (stem.with_suffix(".md"), stem / "index.md") if p.is_file())
    examples = [Path(include.split(":")[0]).stem for include in example_includes(source)]
    return source, list(dict.fromkeys(examples))


def test_every_page_has_run_command_edit_link_and_date(built_site, site_project):
    hooks = load_hooks()
    problems: dict[str, list[str]] = {}
    pages = site_pages(built_site)
    for rel in pages:
        where = rel or "(home)"
        text = page_file(built_site, rel).read_text(encoding="utf-8")
        source, examples = page_sources(site_project, rel)
        wrong = problems.setdefault(where, [])

        box = RUN_BOX.search(text)
        commands = html.unescape(box.group(1)) if box else ""
        wanted = [f"llmkb examples run {name} --profile quick" for name in examples]
        if rel == "" or not examples:
            wanted.append(hooks.MAIN_COMMAND)
        wrong += [f"'Run this locally' lacks {command!r}" for command in wanted if command not in commands]
        if box and box.start() < text.find("<article"):
            wrong.append("'Run this locally' is outside the page's article")

        button, facts = EDIT_BUTTON.search(text), FACTS.search(text)
        link = EDIT_LINK.search(facts.group(1)) if facts else None
        if not button or not link:
            wrong.append(f"edit icon found: {bool(button)}, 'Edit this page' link found: {bool(link)}")
        in_repository = source.relative_to(site_project).as_posix()  # the copy keeps the repository's layout
        for url in {m.group(1) for m in (button, link) if m}:
            if not (url.startswith("https://") and "/edit/" in url and url.endswith("/" + in_repository)):
                wrong.append(f"edit link {url} does not edit {in_repository}")

        # The copy is not a git checkout, so the date is the copied file's modification date.
        date = DATE.search(facts.group(1)) if facts else None
        expected = datetime.date.fromtimestamp(source.stat().st_mtime).isoformat()
        if not date or date.group(1) != expected:
            wrong.append(f"last-updated date {date and date.group(1)!r}, expected {expected} (mtime of {source.name})")
    assert len(pages) >= 20, f"only {len(pages)} pages in the sitemap"
    bad = {page: found for page, found in problems.items() if found}
    assert not bad, "pages missing what every page shows:\n" + "\n".join(
        f"  {page}: " + "; ".join(found) for page, found in bad.items()
    )


def test_main_command_is_the_readmes():
    """The command shown on pages without an example is the README's main job, word for word."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    main_command = load_hooks().MAIN_COMMAND
    assert re.search(rf"^{re.escape(main_command)}\s", readme, re.M), f"README.md no longer says {main_command!r}"


def _set_mtime(path: Path, day: datetime.date) -> None:
    noon = datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.timezone.utc).timestamp()
    os.utime(path, (noon, noon))  # noon UTC is the same calendar day in every time zone within 12 hours


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_last_updated_is_the_commit_date_else_the_modification_date(tmp_path):
    last_updated = load_hooks().last_updated
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str, date: str = "2021-02-03T12:00:00+00:00") -> None:
        env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        identity = ["-c", "user.name=llmkb tests", "-c", "user.email=tests@llmkb.invalid"]
        subprocess.run(["git", *identity, *args], cwd=repo, env=env, check=True, capture_output=True)

    git("init", "-q")
    page = repo / "page.md"
    page.write_text("# A page\n", encoding="utf-8")
    _set_mtime(page, datetime.date(2020, 1, 1))
    git("add", "page.md")
    git("commit", "-q", "-m", "a page")
    assert last_updated(page) == "2021-02-03"  # committed and unchanged: the commit's date

    page.write_text("# A page, edited\n", encoding="utf-8")
    _set_mtime(page, datetime.date(2022, 5, 6))
    assert last_updated(page) == "2022-05-06"  # uncommitted changes: the file's date

    new_page = repo / "new.md"
    new_page.write_text("# New\n", encoding="utf-8")
    _set_mtime(new_page, datetime.date(2023, 7, 8))
    assert last_updated(new_page) == "2023-07-08"  # never committed

    outside = tmp_path / "copy.md"  # tmp_path itself is no git checkout, like the tests' site copy
    outside.write_text("# Copy\n", encoding="utf-8")
    _set_mtime(outside, datetime.date(2024, 9, 10))
    assert last_updated(outside) == "2024-09-10"
