"""Shared fixtures: a quick run folder, and the site built from a copy of the project.

Tests never write into the working tree: the site is built from a copy of ``mkdocs.yml``,
``docs/``, ``examples/`` and ``llmkb/`` (pages may include a module's named section) in a
temporary folder, with its own run folder, in the quick profile.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# One torch thread: with 2 busy cores, two threads can be many times slower than one.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Skip ``gpu`` tests where no CUDA device is present."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):  # not `"gpu" in item.keywords`: that also matches a folder named gpu
            item.add_marker(skip)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """A run folder with the data and tokenizer stages done in the quick profile."""
    from llmkb.stages import RunDir, run_stage

    run = RunDir(tmp_path_factory.mktemp("runs") / "quick")
    for stage in ("data", "tokenizer"):
        run_stage(stage, run, "quick")
    return run


@pytest.fixture(scope="session")
def site_project(tmp_path_factory) -> Path:
    """A copy of the project's site sources in which every example has run (quick profile)."""
    from llmkb.docs_site import generate_outputs

    root = tmp_path_factory.mktemp("project")
    for name in ("mkdocs.yml", "CONTRIBUTING.md"):  # the Contributing page includes CONTRIBUTING.md
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "docs", root / "docs", ignore=shutil.ignore_patterns("generated"))
    # Pages may include a package module's named section (the contract allows it): the textbook BPE loop.
    shutil.copytree(ROOT / "llmkb", root / "llmkb", ignore=shutil.ignore_patterns("__pycache__"))
    generate_outputs(root, profile="quick", runs_root=root / "runs")
    return root


@pytest.fixture(scope="session")
def built_site(site_project) -> Path:
    """The site built with ``mkdocs build --strict`` from ``site_project`` (raises on any warning)."""
    from llmkb.docs_site import build

    return build(site_project, site_project / "site", profile="quick", runs_root=site_project / "runs")
