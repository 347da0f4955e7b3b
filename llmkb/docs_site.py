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
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
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
from llmkb.pipeline import default_jobs, threads_per_job
from llmkb.stages import RunDir, run_stage, stages


def generate_outputs(
    root: Path = PROJECT_ROOT,
    profile: str = "default",
    run: str | None = None,
    runs_root: Path | None = None,
    force: bool = False,
    jobs: int | None = None,
) -> list[str]:
    """Run the examples whose inputs changed as notebooks, ``jobs`` at a time; return the names that ran.

    ``jobs`` defaults to the pipeline's (:func:`llmkb.pipeline.default_jobs`: 2 on two or more cores),
    each notebook's kernel with its share of the cores as torch threads. The slowest examples of the
    last build start first, so that a long one does not begin when the others are done.
    """
    docs_out = root / "docs" / "generated"
    runs_root = runs_root or root / "runs"
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    env = example_env(profile, run, runs_root, docs_out)
    # Every stage first: an example that ran a missing stage would change the run folder, and with it
    # the input digest of every example that ran before it (their outputs would look stale).
    run_dir = RunDir.named(env["LLMKB_RUN"], runs_root)
    for stage in stages():
        if not (run_dir.root / stage.name / "metrics.json").exists():
            run_stage(stage.name, run_dir, profile)
    stale, last_seconds = [], {}
    for example in list_examples(root):
        notebook = docs_out / "notebooks" / f"{example.name}.ipynb"
        stamp = read_json(stamp_path(docs_out, example)) if stamp_path(docs_out, example).exists() else {}
        last_seconds[example.name] = stamp.get("seconds", 0.0)
        if force or not notebook.exists() or stamp.get("inputs_sha256") != inputs_digest(example, env):
            stale.append(example)
    stale.sort(key=lambda example: -last_seconds[example.name])
    kernel_env = {**env, "OMP_NUM_THREADS": threads_per_job(jobs)}

    def execute(example) -> str:
        started = time.perf_counter()
        try:
            execute_notebook(example, kernel_env, docs_out / "notebooks" / f"{example.name}.ipynb")
        except Exception as error:  # with two running at once, say which one failed
            raise RuntimeError(f"{example.path}: the example failed as a notebook:\n{error}") from error
        write_stamp(docs_out, example, inputs_digest(example, env), time.perf_counter() - started)
        return example.name

    ran = []
    with (
        ThreadPoolExecutor(max_workers=jobs) as pool,
        tqdm(total=len(stale), desc="page examples", unit="example") as bar,
    ):
        futures = [pool.submit(execute, example) for example in stale]
        try:
            for future in as_completed(futures):
                ran.append(future.result())  # a failed example raises here, with its cell's error
                bar.update()
        except BaseException:
            for future in futures:  # do not start the rest; the running ones finish
                future.cancel()
            raise
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
