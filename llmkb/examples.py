"""The page examples: find them, give them a context, run them as scripts or as notebooks.

In: ``examples/*.py``, jupytext "percent" scripts (``# %%`` cells) whose named sections
(``# --8<-- [start:name]``) the pages include. Out: for a script run, what it prints; for a
notebook run, ``docs/generated/notebooks/<name>.ipynb`` with real outputs, plus whatever the
example saved under ``docs/generated/<name>/`` (tables, plots, token views) for its page.

An example learns where it runs from environment variables the runner sets, so the same file
works when a reader runs it by hand, in the tests (quick profile, temporary folders) and in the
docs build (the main job's run folder):

``LLMKB_PROFILE`` (quick | default), ``LLMKB_RUN`` (run name, defaults to the profile),
``LLMKB_RUNS_ROOT`` (defaults to ``runs``), ``LLMKB_DOCS_OUT`` (defaults to ``docs/generated``).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from llmkb.io import atomic_open, write_json, write_text
from llmkb.stages import RunDir, get_stage, run_stage

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SECTION_MARKER = re.compile(r"^\s*# --8<-- \[(start|end):([\w-]+)\]\s*$")


@dataclass
class Example:
    name: str  # file stem, e.g. "tokenization"
    path: Path
    title: str  # first line of the module docstring


def examples_dir(root: Path | None = None) -> Path:
    return (root or PROJECT_ROOT) / "examples"


def list_examples(root: Path | None = None) -> list[Example]:
    """Every example script (files starting with ``_`` are helpers, not examples)."""
    found = []
    for path in sorted(examples_dir(root).glob("*.py")):
        if path.name.startswith("_"):
            continue
        match = re.search(r'"""(.*?)(?:\n|""")', path.read_text(encoding="utf-8"))
        found.append(Example(path.stem, path, match.group(1).strip() if match else path.stem))
    return found


def get_example(name: str, root: Path | None = None) -> Example:
    by_name = {e.name: e for e in list_examples(root)}
    if name not in by_name:
        raise KeyError(f"no example named {name!r}; examples: {', '.join(by_name) or 'none'}")
    return by_name[name]


@dataclass
class ExampleContext:
    """What an example needs to know: its profile, its run folder, where to save page outputs."""

    name: str
    profile: str
    run: RunDir
    out: Path  # docs/generated/<name>/

    def ensure(self, stage: str) -> Path:
        """The folder of ``stage`` in this run, running it (and what it needs) first if missing."""
        for needed in get_stage(stage).needs:
            self.ensure(needed)
        if not (self.run.root / stage / "metrics.json").exists():
            run_stage(stage, self.run, self.profile)
        return self.run.require(stage)

    def save_text(self, filename: str, text: str) -> Path:
        """Save a page output (Markdown table, HTML view); the page includes it from here."""
        return write_text(self.out / filename, text)

    def save_figure(self, filename: str, figure) -> Path:
        """Save a matplotlib figure for the page (PNG, written atomically)."""
        with atomic_open(self.out / filename, "wb") as f:
            figure.savefig(f, format=Path(filename).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
        return self.out / filename


def context(name: str) -> ExampleContext:
    """The context of example ``name``, read from the environment the runner (or reader) set."""
    profile = os.environ.get("LLMKB_PROFILE", "default")
    run = RunDir.named(os.environ.get("LLMKB_RUN", profile), os.environ.get("LLMKB_RUNS_ROOT", "runs"))
    out = Path(os.environ.get("LLMKB_DOCS_OUT", PROJECT_ROOT / "docs" / "generated")) / name
    out.mkdir(parents=True, exist_ok=True)
    return ExampleContext(name, profile, run, out)


def example_env(profile: str, run: str | None, runs_root: Path, docs_out: Path) -> dict[str, str]:
    """The environment an example runs in (also what a reader can export by hand)."""
    return {
        **os.environ,
        "LLMKB_PROFILE": profile,
        "LLMKB_RUN": run or profile,
        "LLMKB_RUNS_ROOT": str(Path(runs_root).resolve()),
        "LLMKB_DOCS_OUT": str(Path(docs_out).resolve()),
        "JUPYTER_PLATFORM_DIRS": "1",
        "MPLBACKEND": "Agg",
    }


def run_script(example: Example, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run an example as a plain script (how a reader runs it); its output streams to the terminal."""
    return subprocess.run([sys.executable, str(example.path)], env=env, cwd=example.path.parents[1], check=False)


def to_notebook(example: Example):
    """The example as a notebook: one cell per ``# %%``, without the page's section markers.

    Each cell remembers the sections it held (``metadata.llmkb_sections``) so that its printed
    output can be saved for the page that includes those sections.
    """
    import jupytext

    notebook = jupytext.read(example.path, fmt="py:percent")
    for cell in notebook.cells:
        lines = cell.source.splitlines()
        markers = [SECTION_MARKER.match(line) for line in lines]
        cell.metadata["llmkb_sections"] = [m.group(2) for m in markers if m and m.group(1) == "start"]
        cell.source = "\n".join(line for line, m in zip(lines, markers) if not m).strip()
    notebook.cells = [cell for cell in notebook.cells if cell.source]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def execute_notebook(example: Example, env: dict[str, str], notebook_path: Path, timeout_s: int = 1800) -> Path:
    """Execute the example as a notebook in a fresh kernel; a failing cell raises with its error.

    The notebook is written (atomically) only when every cell ran, so a failed run never leaves
    a half-executed notebook for the site.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = to_notebook(example)
    NotebookClient(  # the kernel gets ``env``; this process's own environment is left alone (builds run side by side)
        notebook,
        timeout=timeout_s,
        kernel_name="python3",
        resources={"metadata": {"path": str(example.path.parents[1])}},
    ).execute(env=env)
    write_text(notebook_path, nbformat.writes(notebook))
    save_section_outputs(notebook, Path(env["LLMKB_DOCS_OUT"]) / example.name)
    return notebook_path


def save_section_outputs(notebook, out: Path) -> None:
    """Write what each section's cell printed to ``<out>/<section>.txt`` for the pages to include."""
    for cell in notebook.cells:
        printed = "".join(
            o.get("text", "")
            for o in cell.get("outputs", [])
            if o.get("output_type") == "stream" and o.get("name") == "stdout"
        )
        for section in cell.metadata.get("llmkb_sections", []):
            write_text(out / f"{section}.txt", printed.rstrip() + "\n")


def inputs_digest(example: Example, env: dict[str, str]) -> str:
    """A digest of everything an example's outputs depend on: its source, the package, the run.

    The docs build reruns an example only when this changes, so its outputs are never stale.
    """
    h = hashlib.sha256()
    h.update(example.path.read_bytes())
    for path in sorted((PROJECT_ROOT / "llmkb").rglob("*.py")):
        h.update(path.read_bytes())
    for key in ("LLMKB_PROFILE", "LLMKB_RUN", "LLMKB_RUNS_ROOT"):
        h.update(env[key].encode())
    runs = Path(env["LLMKB_RUNS_ROOT"]) / env["LLMKB_RUN"]
    for metrics in sorted(runs.glob("*/metrics.json")):
        h.update(metrics.read_bytes())
    return h.hexdigest()


def stamp_path(docs_out: Path, example: Example) -> Path:
    return docs_out / example.name / "stamp.json"


def write_stamp(docs_out: Path, example: Example, digest: str, seconds: float) -> None:
    """Record what the outputs were made from, and how long the example took (the build starts the slowest first)."""
    write_json(
        stamp_path(docs_out, example), {"example": example.name, "inputs_sha256": digest, "seconds": round(seconds, 1)}
    )
