"""The GPU check without a GPU: its arguments, the carry folder, the wheel list, the plain "no GPU" path,
every phase at toy sizes on the CPU, and the static-cache decoder it times."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmkb import gpu_check
from llmkb.gpu_check import (
    CARRIED,
    copy_carried,
    missing_wheels,
    parse_args,
    prepare_carry,
    read_wheel_list,
    summary_markdown,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def carry(quick_run, tmp_path) -> Path:
    """A carry folder holding the quick run's data and tokenizer, as --prepare leaves it."""
    copy_carried(quick_run, tmp_path / "carry" / "run")
    return tmp_path / "carry"


def run_check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """scripts/gpu_check.sh with ``args``, CUDA hidden so that a machine with a GPU tests the same path."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), *args], capture_output=True, text=True, env=env, timeout=900
    )


def test_wheel_list_pins_one_version_each_as_installed_here():
    pins = read_wheel_list()
    assert {"trl", "datasets"} <= set(pins)
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, f"{name}: gpu-wheels.txt pins {version}"


def test_a_bad_wheel_list_names_the_line(tmp_path):
    path = tmp_path / "wheels.txt"
    path.write_text("# comment\ntrl==1.16.0  # why\ndatasets\n")
    with pytest.raises(ValueError, match=r"wheels.txt:3: expected NAME==VERSION, got 'datasets'"):
        read_wheel_list(path)
    path.write_text("trl==1.16.0\nTRL==1.15.0\n")
    with pytest.raises(ValueError, match="wheels.txt:2: TRL is pinned twice"):
        read_wheel_list(path)


def test_missing_wheels_compares_names_and_versions(tmp_path):
    (tmp_path / "multiprocess-0.70.19-py312-none-any.whl").touch()
    (tmp_path / "trl-1.15.0-py3-none-any.whl").touch()  # the wrong version counts as missing
    pins = {"multiprocess": "0.70.19", "trl": "1.16.0"}
    assert missing_wheels(pins, tmp_path) == ["trl==1.16.0"]


def test_arguments(monkeypatch, capsys):
    monkeypatch.setenv("OUT", "/somewhere/out")
    args = parse_args(["--phases", "environment, pretrain", "--steps", "50"])
    assert (args.phases, args.steps, args.out, args.smoke) == (["environment", "pretrain"], 50, "/somewhere/out", False)
    for bad, message in (
        (["--phases", "pretrain,train"], "unknown phase(s) train"),
        (["--steps", "0"], "--steps must be >= 1"),
    ):
        with pytest.raises(SystemExit) as stop:
            parse_args(bad)
        assert stop.value.code == 2 and message in capsys.readouterr().err


def test_prepare_runs_data_then_tokenizer_and_keeps_only_what_pretraining_reads(quick_run, tmp_path, monkeypatch):
    import shutil

    import llmkb.stages

    asked = []

    def fake_run_stage(name, run, profile="default", **overrides):  # the quick run's folders stand in
        asked.append((name, profile))
        shutil.copytree(quick_run.root / name, run.root / name)

    monkeypatch.setattr(llmkb.stages, "run_stage", fake_run_stage)
    made = prepare_carry(tmp_path / "carry")
    assert asked == [("data", "quick"), ("tokenizer", "default")]
    run = tmp_path / "carry" / "run"
    assert sorted(p.name for p in (run / "data").iterdir()) == sorted(CARRIED["data"])
    assert (run / "tokenizer" / "tokenizer.json").exists() and not (tmp_path / "carry" / "work").exists()
    assert 0 < made["megabytes"] < 16  # it travels with the working tree: 64 MiB in all


def test_without_a_gpu_it_prepares_skips_and_says_so(carry, tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    done = run_check("--carry", str(carry), "--runs", str(runs), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No CUDA GPU found" in done.stdout
    results = json.loads((out / "results.json").read_text())
    phases = results["phases"]
    assert [phases[p]["status"] for p in ("environment", "prepare", "imports")] == ["ok", "ok", "ok"]
    for name in gpu_check.NEEDS_GPU:
        assert phases[name] == {"status": "skipped", "reason": "no CUDA GPU found"}
    assert (runs / "data" / "train.jsonl").exists() and (runs / "tokenizer" / "metrics.json").exists()
    # The wheel folder was never filled here: the environment phase lists every pin as missing.
    assert sorted(phases["environment"]["wheels_missing_from_carry"]) == sorted(read_wheel_list())
    assert "no CUDA GPU found" in (out / "summary.md").read_text()


def test_bad_arguments_fail_before_anything_runs(tmp_path):
    done = run_check("--phases", "warmup", "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "unknown phase(s) warmup" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_every_phase_runs_at_toy_sizes_on_the_cpu_and_imports_only_what_travels(carry, tmp_path):
    out = tmp_path / "out"
    done = run_check("--smoke", "--carry", str(carry), "--runs", str(tmp_path / "runs"), "--out", str(out))
    results = json.loads((out / "results.json").read_text())
    statuses = {name: phase["status"] for name, phase in results["phases"].items()}
    assert done.returncode == 0, json.dumps({k: v.get("error") for k, v in results["phases"].items()}, indent=1)
    assert statuses == {**{p: "ok" for p in gpu_check.PHASES}, "pytest": "skipped"}
    assert results["phases"]["imports"]["not_preinstalled_nor_wheeled"] == []
    assert {"torch", "trl", "datasets"} <= set(results["phases"]["imports"]["distributions"])
    generation = results["phases"]["generation"]
    assert generation["batch_1"]["same_tokens"] == 1.0 and generation["batch_2"]["same_tokens"] == 1.0


def test_the_gpu_tests_import_only_what_travels():
    code = (
        "import sys; sys.path.insert(0, 'tests'); import llmkb.gpu_check as g\n"
        "for f in g.gpu_test_files(): __import__(f.split('/')[-1][:-3])\n"
        "print(sorted(g.imported_distributions() - g.requirement_closure(g.GPU_PREINSTALLED)"
        " - set(g.read_wheel_list())))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert "tests/test_pretrain_gpu.py" in gpu_check.gpu_test_files()


def test_summary_shows_each_phase_and_the_last_line_of_an_error():
    results = {
        "started": "2026-12-03T10:00:00+00:00",
        "finished": None,
        "smoke": False,
        "phases": {
            "environment": {"status": "ok", "seconds": 0.1, "gpu": "NVIDIA H200", "torch": "2.11.0", "summary": "H200"},
            "pretrain": {"status": "failed", "seconds": 3.0, "error": "Traceback ...\nRuntimeError: out of memory | x"},
        },
    }
    page = summary_markdown(results)
    assert page.startswith("# llmkb GPU check: NVIDIA H200")
    assert "| pretrain | failed | 3.0 | RuntimeError: out of memory / x |" in page


def test_static_decoder_gives_generates_greedy_tokens_eager_and_traced():
    from llmkb.inference.generate import GenerationConfig, generate_ids
    from llmkb.inference.static import StaticDecoder, compiled_step, greedy
    from llmkb.model.gpt import GPT, ModelConfig

    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=97, context=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=64))
    prompt = torch.randint(0, 97, (3, 9))
    expected = generate_ids(model, prompt, None, GenerationConfig(max_new_tokens=12), eos_ids=[-1])
    decoder = StaticDecoder(model, 3, 21)
    assert torch.equal(greedy(decoder, prompt, 12), expected)
    assert torch.equal(greedy(decoder, prompt, 12, compiled_step(decoder)), expected)  # fullgraph: no graph break
    with pytest.raises(ValueError, match="do not fit the cache's 21 positions"):
        greedy(decoder, prompt, 13)
    with pytest.raises(ValueError, match="the decoder's cache has 3 rows; the prompt has 1"):
        greedy(decoder, prompt[:1], 4)
    with pytest.raises(ValueError, match="longer than the model's context of 64"):
        StaticDecoder(model, 1, 65)
