"""Stages, run folders, the pipeline, the text sources and the command line."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading

import pytest
from rich.console import Console

from llmkb.cli import main
from llmkb.corpus import build_corpus, load_split, split_heldout
from llmkb.io import read_json, write_json
from llmkb.pipeline import run_parallel
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


@pytest.mark.parametrize("jobs", [1, 2])
def test_pipeline_command_writes_the_report_card(tmp_path, capsys, jobs):
    assert main(["pipeline", "--profile", "quick", "--jobs", str(jobs), "--runs-root", str(tmp_path)]) == 0
    card = read_json(tmp_path / "quick" / "report_card.json")
    assert list(card["stages"]) == [s.name for s in stages()]
    assert card["jobs"] == jobs and card["stages_s"] > 0 and card["wall_s"] > 0
    assert card["stages"]["tokenizer"]["hf_ids_equal"] is True
    assert "report card" in capsys.readouterr().out
    for stage in stages():
        log = tmp_path / "quick" / stage.name / "log.txt"
        # With more than one job each stage is a subprocess `llmkb <stage>`: same config, its output in a log.
        assert log.exists() == (jobs > 1) and (jobs == 1 or log.stat().st_size > 0)
        expected = json.loads(
            json.dumps({"profile": "quick", **dataclasses.asdict(stage.config("quick"))}, default=str)
        )
        assert read_json(tmp_path / "quick" / stage.name / "config.json") == expected
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
    assert f"{card['stages_s']:,.0f} s" in page
    if jobs > 1:  # the pipeline's wall time, as long as no stage has run again since
        assert "stages at once" in page
        metrics = read_json(tmp_path / "quick" / "tokenizer" / "metrics.json")
        write_json(tmp_path / "quick" / "tokenizer" / "metrics.json", {**metrics, "wall_s": metrics["wall_s"] + 1})
        assert (
            "stages at once"
            not in write_report_card(RunDir(tmp_path / "quick"), tmp_path / "docs" / "again.md").read_text()
        )


def test_pipeline_jobs_must_be_at_least_one(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["pipeline", "--jobs", "0"])
    assert exit_.value.code == 2 and "--jobs: expected a whole number >= 1, got '0'" in capsys.readouterr().err


# A fake stage for the scheduler: marks its start and end in a trace file, says hello, sleeps, exits with a code.
FAKE_STAGE = """
import sys, time
name, trace, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
def mark(what):
    with open(trace, "a") as f:
        f.write(f"{what} {name} {time.time()}\\n")
mark("start")
import os
print(f"hello from {name}")
with open(trace + ".threads", "a") as f:
    f.write(f"{name} {os.environ['OMP_NUM_THREADS']}\\n")
time.sleep(0.3)
mark("end")
sys.exit(code)
"""


def run_fakes(tmp_path, needs, jobs, failing=()):
    """Run fake stages through the scheduler; return their statuses, (start, end) times and the terminal's text."""
    trace, out = tmp_path / "trace.txt", io.StringIO()
    status = run_parallel(
        list(needs),
        needs,
        lambda name: [sys.executable, "-c", FAKE_STAGE, name, str(trace), "3" if name in failing else "0"],
        lambda name: tmp_path / name / "log.txt",
        jobs,
        Console(file=out, width=200),
    )
    times = {}
    for line in trace.read_text().splitlines():
        what, name, t = line.split()
        times.setdefault(name, {})[what] = float(t)
    return status, {name: (t["start"], t["end"]) for name, t in times.items()}, out.getvalue()


DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}


def test_scheduler_runs_independent_stages_side_by_side_after_their_needs(tmp_path):
    status, times, out = run_fakes(tmp_path, DIAMOND, jobs=2)
    assert status == dict.fromkeys(DIAMOND, "finished")
    for name, needed in DIAMOND.items():
        assert all(times[name][0] >= times[need][1] for need in needed)
    (b_start, b_end), (c_start, c_end) = times["b"], times["c"]
    assert b_start < c_end and c_start < b_end  # b and c overlapped
    assert "start c (with: b)" in out and "end d: finished" in out
    assert (tmp_path / "d" / "log.txt").read_text() == "hello from d\n"


def test_a_stage_that_runs_alone_gets_every_core_and_side_by_side_ones_share(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    run_fakes(tmp_path, DIAMOND, jobs=2)
    threads = dict(line.split() for line in (tmp_path / "trace.txt.threads").read_text().splitlines())
    # a and d start with nothing else running or ready; b and c start together
    assert threads == {"a": "4", "b": "1", "c": "1", "d": "4"}


def test_scheduler_with_one_job_runs_one_stage_at_a_time(tmp_path):
    status, times, _ = run_fakes(tmp_path, DIAMOND, jobs=1)
    assert status == dict.fromkeys(DIAMOND, "finished")
    spans = sorted(times.values())
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:]))


def test_ready_stages_start_in_the_order_given_and_the_pipeline_puts_priority_first(tmp_path):
    status, times, _ = run_fakes(tmp_path, {"a": (), "slow": ("a",), "b": ("a",), "c": ("a",)}, jobs=1)
    assert [name for name, _ in sorted(times.items(), key=lambda kv: kv[1])] == ["a", "slow", "b", "c"]
    # The real stages: the search fine-tune, the longest after SFT, starts before the others SFT unlocks.
    assert get_stage("search").priority > max(s.priority for s in stages() if s.name != "search")


def test_scheduler_skips_what_needs_a_failed_stage(tmp_path):
    needs = {"a": (), "b": ("a",), "c": ("b",), "free": ()}
    status, times, out = run_fakes(tmp_path, needs, jobs=2, failing={"a"})
    assert status == {"a": "failed", "b": "skipped", "c": "skipped", "free": "finished"}
    assert set(times) == {"a", "free"} and not (tmp_path / "b").exists()
    assert (tmp_path / "a" / "log.txt").read_text() == "hello from a\n"
    assert "end a: FAILED" in out and "hello from a" in out and str(tmp_path / "a" / "log.txt") in out
    assert "skipped (they need a stage that failed): b, c" in out


def test_ctrl_c_stops_the_running_stages(tmp_path):
    sleeper = "import os, time; print(os.getpid()); time.sleep(60)"
    threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        run_parallel(
            ["slow"],
            {},
            lambda name: [sys.executable, "-c", sleeper],
            lambda name: tmp_path / "log.txt",
            1,
            Console(file=io.StringIO()),
        )
    pid = int((tmp_path / "log.txt").read_text())
    with pytest.raises(ProcessLookupError):  # terminated and reaped
        os.kill(pid, 0)


def test_tokenizer_command_on_text_files(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(d["text"] for d in build_corpus(60_000)), encoding="utf-8")
    code = main(
        ["tokenizer", "--input", str(text), "--vocab-size", "300", "--runs-root", str(tmp_path), "--run", "files"]
    )
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
        [
            sys.executable,
            "-m",
            "llmkb",
            "examples",
            "run",
            "pipeline",
            "--profile",
            "quick",
            "--runs-root",
            str(tmp_path),
        ],
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
    assert re.search(r"machine .*, \d+ cores, [\d.]+ GFLOP/s fp32 per core", out)


def test_core_gflops_is_a_plausible_speed():
    from llmkb.doctor import core_gflops

    assert 0.1 < core_gflops(n=128, seconds=0.05) < 10_000  # a tiny matmul, timed: some speed, not zero or absurd
