"""MkDocs hook: what every built page shows besides its own text, and no CDN references.

Every page gets, without anyone writing it by hand:

- under its title, a "Run this locally" box with the commands that reproduce it: the stage
  commands its front matter names (``run:``), one ``llmkb examples run NAME --profile quick`` per
  example the page includes (a notebook page is its own example), links to those examples'
  notebooks, and the README's main command on the home page and on pages without an example;
- at its end, the date its source last changed (its last git commit, or the file's modification
  date when the file is uncommitted or the docs are not in a git checkout, as when the tests
  build from a copy) and an "Edit this page" link. Notebook pages are built from
  ``docs/generated/``, which is not in the repository, so their edit link points at the example
  script they are made from.

Both are added to the finished HTML (``on_post_page``), after the search plugin has indexed the
page, so a search for "run" or "quick" does not match every page.

nbconvert's notebook template (used by mkdocs-jupyter) carries a script that imports mermaid
from cdnjs when a notebook holds a mermaid cell. Our notebooks use the site's own vendored
mermaid instead, so that script is removed from the page before it is written.
"""

from __future__ import annotations

import datetime
import html
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urljoin

CDN_SCRIPT = re.compile(
    r"<script\b[^>]*>(?:(?!</script>).)*?https://cdnjs\.cloudflare\.com(?:(?!</script>).)*?</script>", re.S
)
EXAMPLE_INCLUDE = re.compile(r'--8<--\s+"examples/([\w-]+)\.py[:"]')
NOTEBOOK_PAGE = re.compile(r"^generated/notebooks/([\w-]+)\.ipynb$")  # where llmkb.docs_site writes them
# README.md's main command (tests/test_site_extras.py checks that the README still says so).
MAIN_COMMAND = "bash scripts/run.sh"
MAIN_COMMAND_NOTE = "install, run the whole pipeline, build and serve this site"
SETUP_COMMAND = "bash scripts/setup.sh && source .venv/bin/activate"
TITLE_END = "</h1>"
NOTEBOOK_START = '<div class="jupyter-wrapper"'  # mkdocs-jupyter's wrapper around a notebook's cells
ARTICLE_END = "</article>"


def project_root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def page_example_names(page) -> list[str]:
    """The examples a page shows: a notebook page is one; a Markdown page names them in its includes."""
    notebook = NOTEBOOK_PAGE.match(page.file.src_uri)
    if notebook:
        return [notebook.group(1)]
    source = Path(page.file.abs_src_path).read_text(encoding="utf-8")
    return list(dict.fromkeys(EXAMPLE_INCLUDE.findall(source)))  # once each, in page order


def page_source(page, config) -> Path:
    """The file a reader edits to change this page (for a notebook page: its example script)."""
    notebook = NOTEBOOK_PAGE.match(page.file.src_uri)
    if notebook:
        return project_root(config) / "examples" / f"{notebook.group(1)}.py"
    return Path(page.file.abs_src_path)


def _git(path: Path, *args: str) -> str | None:
    """``git ARGS -- path`` run beside ``path``; None when git is missing or the folder is no checkout."""
    try:
        result = subprocess.run(["git", *args, "--", path.name], cwd=path.parent, capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def last_updated(path: Path) -> str:
    """``path``'s last commit date (YYYY-MM-DD); its modification date when it has uncommitted changes or no commit."""
    if _git(path, "status", "--porcelain") == "":  # tracked, unchanged (or ignored: then the log is empty)
        committed = _git(path, "log", "-1", "--format=%cs")
        if committed:
            return committed
    return datetime.date.fromtimestamp(path.stat().st_mtime).isoformat()


def run_commands(page) -> list[str]:
    """The shell lines that reproduce a page, comments included.

    A page may name the stage commands behind it in its front matter (``run:``, a list of shell
    lines); they come after the setup line and before the page's examples.
    """
    examples = page_example_names(page)
    lines = []
    if page.is_homepage or not examples:
        lines.append(f"{MAIN_COMMAND}   # {MAIN_COMMAND_NOTE}")
    if examples or page.meta.get("run"):
        lines.append(f"{SETUP_COMMAND}   # once, for the llmkb command")
    lines += list(page.meta.get("run") or [])
    lines += [f"llmkb examples run {name} --profile quick" for name in examples]
    return lines


def notebook_links(page, files) -> list[tuple[str, str]]:
    """(example, URL relative to ``page``) of the notebook version of each example a Markdown page includes."""
    if NOTEBOOK_PAGE.match(page.file.src_uri):
        return []
    links = []
    for name in page_example_names(page):
        notebook = files.get_file_from_path(f"generated/notebooks/{name}.ipynb")
        if notebook is not None:
            links.append((name, notebook.url_relative_to(page.file)))
    return links


def run_locally_html(page, config) -> str:
    code = html.escape("\n".join(run_commands(page)))
    repo = f' of <a href="{html.escape(config.repo_url)}">the repository</a>' if config.repo_url else ""
    links = getattr(page, "llmkb_notebooks", [])
    notebooks = ""
    if links:
        anchors = ", ".join(f'<a href="{html.escape(url)}">{html.escape(name)}</a>' for name, url in links)
        notebooks = f"<p>Or open the notebook version: {anchors}.</p>"
    return (
        '<div class="admonition example" id="run-this-locally">'
        '<p class="admonition-title">Run this locally</p>'
        f"<p>In a clone{repo}:</p>"
        f'<div class="highlight"><pre><span></span><code>{code}</code></pre></div>'
        f"{notebooks}</div>"
    )


def page_facts_html(page, config) -> str:
    updated = last_updated(page_source(page, config))
    facts = [f'Last updated: <time datetime="{updated}">{updated}</time>']
    if page.edit_url:
        label = "Edit this page"
        if NOTEBOOK_PAGE.match(page.file.src_uri):
            source = page_source(page, config).relative_to(project_root(config)).as_posix()
            label += f" (its source is {html.escape(source)})"
        facts.append(f'<a href="{html.escape(page.edit_url)}">{label}</a>')
    spans = "".join(f'<span class="md-source-file__fact">{fact}</span>' for fact in facts)
    return f'<aside class="md-source-file" id="page-facts">{spans}</aside>'


def on_pre_page(page, config, files):
    """Note the notebooks a page's run box links to; point a notebook page's edit link at its example script."""
    page.llmkb_notebooks = notebook_links(page, files)
    if page.edit_url and NOTEBOOK_PAGE.match(page.file.src_uri):
        # The same path step that leads from the notebook to the example leads from one edit URL to the other.
        example = os.path.relpath(page_source(page, config), Path(page.file.abs_src_path).parent)
        page.edit_url = urljoin(page.edit_url, Path(example).as_posix())
    return page


def run_box_position(output: str, page) -> int:
    """Under the page title; on a notebook page, above the first cell (the example's docstring comes before
    its title)."""
    article = output.find("<article")
    if article >= 0 and NOTEBOOK_PAGE.match(page.file.src_uri):
        return output.find(NOTEBOOK_START, article)
    title_end = output.find(TITLE_END, article) if article >= 0 else -1
    return title_end + len(TITLE_END) if title_end >= 0 else -1


def on_post_page(output: str, page, config) -> str:
    output = CDN_SCRIPT.sub("", output)
    box = run_box_position(output, page)
    if box < 0:
        raise ValueError(
            f"{page.file.src_uri}: found no page title or notebook to put the 'Run this locally' box under"
        )
    output = output[:box] + run_locally_html(page, config) + output[box:]
    end = output.index(ARTICLE_END, box)
    return output[:end] + page_facts_html(page, config) + output[end:]
