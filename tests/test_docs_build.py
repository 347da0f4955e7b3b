"""The docs build's runner: stale examples run as notebooks side by side, and a failed one is named."""

from __future__ import annotations

import pytest

from llmkb import docs_site
from llmkb.io import read_json, write_json
from llmkb.stages import stages


def project(tmp_path, examples: dict[str, str]):
    """A project folder with these examples and a run folder where every stage has finished."""
    for name, body in examples.items():
        (tmp_path / "examples").mkdir(exist_ok=True)
        (tmp_path / "examples" / f"{name}.py").write_text(f'"""{name}."""\n{body}\n')
    for stage in stages():
        write_json(tmp_path / "runs" / "quick" / stage.name / "metrics.json", {})
    return tmp_path


@pytest.fixture(autouse=True)
def no_report_card(monkeypatch):
    monkeypatch.setattr(docs_site, "write_report_card", lambda run, path: path)  # the fake stages have no metrics


def test_stale_examples_run_side_by_side_and_record_their_time(tmp_path):
    body = "import os\nprint('threads', os.environ['OMP_NUM_THREADS'])\nassert True"
    root = project(tmp_path, {"first": body, "second": body})
    ran = docs_site.generate_outputs(root, profile="quick", runs_root=root / "runs", jobs=2)
    assert sorted(ran) == ["first", "second"]
    for name in ran:
        stamp = read_json(root / "docs" / "generated" / name / "stamp.json")
        assert stamp["seconds"] > 0 and len(stamp["inputs_sha256"]) == 64
    assert docs_site.generate_outputs(root, profile="quick", runs_root=root / "runs", jobs=2) == []  # nothing stale


def test_a_failing_example_is_named(tmp_path):
    root = project(tmp_path, {"broken": "raise ValueError('no such column')"})
    with pytest.raises(RuntimeError, match=r"broken\.py: the example failed as a notebook(.|\n)*no such column"):
        docs_site.generate_outputs(root, profile="quick", runs_root=root / "runs", jobs=2)
    assert not (root / "docs" / "generated" / "notebooks" / "broken.ipynb").exists()


def test_jobs_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        docs_site.generate_outputs(project(tmp_path, {}), profile="quick", runs_root=tmp_path / "runs", jobs=0)
