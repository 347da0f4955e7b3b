"""Stages, run folders, the pipeline, the text sources and the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from llmkb.cli import main
from llmkb.corpus import build_corpus, load_split, split_heldout
from llmkb.io import read_json
from llmkb.stages import RunDir, get_stage, run_stage, stages


def test_stages_are_registered_in_pipeline_order():
    names = [s.name for s in stages()]
    assert names[:2] == ["data", "tokenizer"]
    assert get_stage("tokenizer").needs == ("data",)
    with pytest.raises(KeyError, match="no stage named 'nope'"):
        get_stage("nope")


def test_corpus_is_deterministic_and_multilingual():
    a, b = build_corpus(150_000, seed=3), build_corpus(150_000, seed=3)
    assert a == b
    assert {d["source"] for d in a} == {"shakespeare", "python-docstrings", "faker"}
    assert {"en", "vi", "zh"} <= {d["lang"] for d in a}
    assert build_corpus(150_000, seed=4) != a
    train, heldout = split_heldout(a, 0.2)
    assert heldout and not {d["id"] for d in train} & {d["id"] for d in heldout}


def test_quick_run_writes_configs_metrics_and_hf_tokenizer(quick_run):
    for stage in ("data", "tokenizer"):
        assert read_json(quick_run.root / stage / "config.json")["profile"] == "quick"
        assert read_json(quick_run.root / stage / "metrics.json")["wall_s"] >= 0
    metrics = quick_run.metrics("tokenizer")
    assert metrics["vocab_size"] == 1024 and metrics["roundtrip_ok"] and metrics["hf_ids_equal"]
    assert (quick_run.root / "tokenizer" / "tokenizer.json").exists()
    assert (quick_run.root / "tokenizer" / "bpe.json").exists()


def test_a_stage_without_its_input_names_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="stage 'data' has not finished.*llmkb data"):
        run_stage("tokenizer", RunDir(tmp_path / "empty"), "quick")


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "train.jsonl").write_text("")
    with pytest.raises(ValueError, match="train.jsonl: the corpus is empty"):
        load_split(tmp_path, "train")


def test_pipeline_command_writes_the_report_card(tmp_path, capsys):
    assert main(["pipeline", "--profile", "quick", "--runs-root", str(tmp_path)]) == 0
    card = read_json(tmp_path / "quick" / "report_card.json")
    assert list(card["stages"]) == [s.name for s in stages()]
    assert card["stages"]["tokenizer"]["hf_ids_equal"] is True
    assert "report card" in capsys.readouterr().out
    # The home page's version: one row per stage with its key numbers, and the plots copied beside it.
    from llmkb.docs_site import write_report_card
    from llmkb.pipeline import CARD_PLOTS

    page = write_report_card(RunDir(tmp_path / "quick"), tmp_path / "docs" / "report_card.md").read_text()
    for stage in stages():
        assert f"| {stage.name} | " in page
    assert "held-out perplexity" in page and "labeler judgements" in page
    for stage, filename, _ in CARD_PLOTS:
        assert (tmp_path / "docs" / "report_card" / f"{stage}_{filename}").stat().st_size > 0
        assert f"(generated/report_card/{stage}_{filename})" in page


def test_tokenizer_command_on_text_files(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(d["text"] for d in build_corpus(60_000)), encoding="utf-8")
    code = main(["tokenizer", "--input", str(text), "--vocab-size", "300", "--runs-root", str(tmp_path), "--run", "files"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["vocab_size"] == 300


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("caf\xe9".encode("latin-1"), [], r"bad\.txt: not UTF-8 text \(byte 0xe9 at offset 3\)"),
        (b"", [], "empty"),
        (b"hello world", ["--vocab-size", "100"], "100"),
    ],
    ids=["not-utf8", "empty", "vocab-too-small"],
)
def test_tokenizer_command_bad_input(tmp_path, capsys, content, args, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    assert main(["tokenizer", "--input", str(bad), "--runs-root", str(tmp_path), *args]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_examples_command_lists_and_runs(tmp_path):
    listed = subprocess.run([sys.executable, "-m", "llmkb", "examples"], capture_output=True, text=True, check=True)
    assert "tokenization" in listed.stdout and "pipeline" in listed.stdout
    ran = subprocess.run(
        [sys.executable, "-m", "llmkb", "examples", "run", "pipeline", "--profile", "quick", "--runs-root", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    assert "| tokenizer |" in ran.stdout
    unknown = subprocess.run([sys.executable, "-m", "llmkb", "examples", "run", "nope"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "no example named 'nope'" in unknown.stderr


def test_doctor_reports_versions_and_device(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "transformers" in out and ("cpu" in out or "cuda" in out)
