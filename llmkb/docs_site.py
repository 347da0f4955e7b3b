"""Build the site with real outputs, and serve it on 127.0.0.1.

In: ``mkdocs.yml``, ``docs/``, ``examples/`` and a run folder. Out: ``docs/generated/`` (executed
notebooks, tables and plots from running every example, the report card) and the built ``site/``.

The build first runs each example whose inputs changed (see ``llmkb.examples.inputs_digest``),
then runs ``mkdocs build --strict``: a broken include, a missing output or any warning fails it.
mkdocs gets the run folder in its environment (``LLMKB_RUN``...): the numbers pages quote in their
prose are read from that run (``docs/.overrides/macros.py``).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tqdm import tqdm

from llmkb.examples import (
    PROJECT_ROOT,
    example_env,
    execute_notebook,
    inputs_digest,
    list_examples,
    stamp_path,
    write_stamp,
)
from llmkb.io import read_json, write_text
from llmkb.stages import RunDir, run_stage, stages


def generate_outputs(
    root: Path = PROJECT_ROOT,
    profile: str = "default",
    run: str | None = None,
    runs_root: Path | None = None,
    force: bool = False,
) -> list[str]:
    """Run the examples whose inputs changed as notebooks; return the names that ran."""
    docs_out = root / "docs" / "generated"
    runs_root = runs_root or root / "runs"
    env = example_env(profile, run, runs_root, docs_out)
    # Every stage first: an example that ran a missing stage would change the run folder, and with it
    # the input digest of every example that ran before it (their outputs would look stale).
    run_dir = RunDir.named(env["LLMKB_RUN"], runs_root)
    for stage in stages():
        if not (run_dir.root / stage.name / "metrics.json").exists():
            run_stage(stage.name, run_dir, profile)
    ran = []
    examples = list_examples(root)
    for example in tqdm(examples, desc="page examples", unit="example"):
        notebook = docs_out / "notebooks" / f"{example.name}.ipynb"
        stamp = stamp_path(docs_out, example)
        if not force and notebook.exists() and stamp.exists():
            if read_json(stamp).get("inputs_sha256") == inputs_digest(example, env):
                continue
        execute_notebook(example, env, notebook)
        # Digest after the run: an example may have run stages that were missing from the run folder.
        write_stamp(docs_out, example, inputs_digest(example, env))
        ran.append(example.name)
    write_report_card(run_dir, docs_out / "report_card.md")
    return ran


def write_report_card(run: RunDir, path: Path) -> Path:
    """The run's report card as Markdown for the home page (from each finished stage's metrics), with its plots.

    The plots are copied next to ``path`` (``report_card/<stage>_<file>``), so the page links files the
    site build can see.
    """
    from llmkb.pipeline import CARD_PLOTS, collect_card, report_markdown

    plots = {}
    for stage, filename, caption in CARD_PLOTS:
        source = run.root / stage / filename
        if source.exists():
            target = path.parent / "report_card" / f"{stage}_{filename}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            plots[f"generated/report_card/{target.name}"] = caption
    card = collect_card(run)
    saved = run.root / "report_card.json"
    # The pipeline's own card also knows its wall time (stages ran side by side); it still holds
    # only if no stage has run again since (then the stages' metrics differ).
    if saved.exists() and (pipeline := read_json(saved)).get("stages") == card["stages"]:
        card.update(wall_s=pipeline["wall_s"], jobs=pipeline.get("jobs", 1))
    return write_text(path, report_markdown(card, plots))


def build(
    root: Path = PROJECT_ROOT,
    site_dir: Path | None = None,
    profile: str = "default",
    run: str | None = None,
    runs_root: Path | None = None,
    force: bool = False,
) -> Path:
    """Generate every page output, then ``mkdocs build --strict``; return the site folder."""
    generate_outputs(root, profile, run, runs_root, force)
    site_dir = Path(site_dir or root / "site").resolve()
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"), "-d", str(site_dir)]
    # The pages' numbers come from the same run folder the examples ran against (docs/.overrides/macros.py).
    env = example_env(profile, run, runs_root or root / "runs", root / "docs" / "generated")
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}")
    return site_dir


def serve(site_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve a built site until Ctrl-C (only on the loopback address by default)."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site_dir))
    with ThreadingHTTPServer((host, port), handler) as server:
        print(f"serving {site_dir} on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
