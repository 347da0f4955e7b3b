"""Every stage's GPU path in one command, measured: ``bash scripts/gpu_check.sh`` (about 8 minutes on an H100/H200).

In: a CUDA machine with torch, transformers and peft, the wheels of ``scripts/gpu-wheels.txt`` (installed by
the script from ``.gpu-carry/wheels``) and ``.gpu-carry/run/``, the data and tokenizer stages' outputs,
made on a CPU machine by ``bash scripts/gpu_check.sh --prepare`` (the GPU machine may have no internet
and not all of llmkb's dependencies). Out, in ``--out`` (default ``$OUT``, else ``gpu-check/``):
``results.json`` (every phase's status, seconds and numbers) and ``summary.md`` (the same, readable),
both rewritten after each phase, so a phase that fails or a run that is cut short keeps what came before.

The phases, in order (the most wanted numbers first, the test suite last so it gets what time is left):

- ``environment``: Python, torch, CUDA, the device and its dense bf16 peak (:data:`llmkb.device.PEAK_BF16_FLOPS`);
- ``prepare``: the run folder (``--runs``) gets the carried data and tokenizer (on a CPU machine it makes them);
- ``pretrain``: the ``gpu`` profile (GPT-2 small's shape: 12 layers, width 768, context 1024) for
  ``--steps`` steps with bf16 autocast and ``torch.compile``: tokens/s and MFU after warm-up, where MFU
  counts ``6N + 12·L·d·T`` FLOPs per token (:meth:`~llmkb.model.gpt.GPT.flops_per_token`) against the peak;
- ``sft``, ``reward``, ``dpo``, ``grpo``: a few steps of each on a model of the same shape: seconds per step;
- ``generation``: greedy decoding at batch 1 and 32 with the static KV cache (:mod:`llmkb.inference.static`),
  eager against compiled (CUDA graphs), and our usual loop at batch 1 for comparison;
- ``pytest``: the ``gpu``-marked tests;
- ``imports``: every distribution the phases imported is on the GPU machine or in the wheel list.

Without CUDA the check runs what needs no GPU (environment, prepare, the wheel folder's completeness),
skips the rest and says plainly that no GPU was found; that is not a failure (exit 0). ``--smoke`` runs
every phase but pytest on the CPU at toy sizes instead, compiling with the ``eager`` backend: a graph
break or a missing import fails here, before scarce GPU minutes are spent on it. Exit 1 if a phase failed.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import importlib.metadata
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from llmkb.io import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
WHEEL_LIST = ROOT / "scripts" / "gpu-wheels.txt"

#: What the GPU machine has installed (with whatever those need). Everything else the check imports
#: must be in the wheel list.
GPU_PREINSTALLED = (
    "torch",
    "transformers",
    "triton",
    "peft",
    "accelerate",
    "safetensors",
    "tokenizers",
    "tiktoken",
    "sentencepiece",
    "numpy",
    "pandas",
    "pyarrow",
    "xxhash",
    "tqdm",
    "pytest",
    "pytest-timeout",
    "pyyaml",
    "jinja2",
    "rich",
    "matplotlib",
    "requests",
    "httpx",
    "huggingface-hub",
    "fsspec",
    "psutil",
    "regex",
)

#: Imported when present, not needed: the libraries that use them go on without them.
OPTIONAL = {"pytz": "pandas", "brotli": "urllib3, httpx and aiohttp"}

#: Modules loaded before the check started (site's .pth files, this module's own imports): not the check's to carry.
AT_START = frozenset(sys.modules)

#: The files of the data and tokenizer stages that pretraining on the whole corpus reads (a few MB).
CARRIED = {"data": ("train.jsonl", "heldout.jsonl", "config.json", "metrics.json"), "tokenizer": None}

PHASES = ("environment", "prepare", "pretrain", "sft", "reward", "dpo", "grpo", "generation", "pytest", "imports")
NEEDS_GPU = {"pretrain", "sft", "reward", "dpo", "grpo", "generation", "pytest"}
NEEDS_RUN = {"pretrain", "sft", "reward", "dpo", "grpo"}  # they read the run folder's tokenizer (and corpus)
GOALS = {"pretrain_mfu": 0.40, "compiled_speedup_batch1": 3.0}  # the targets on an H100/H200


@dataclass
class Sizes:
    """How much each phase does. The defaults fit about 8 minutes on one H100/H200."""

    pretrain_steps: int = 300
    post_steps: int = 12  # SFT, reward and DPO optimizer steps
    grpo_steps: int = 3
    batch: int = 16  # conversations or pairs per post-training step
    group: int = 4  # GRPO: answers per prompt (and prompts per step)
    grpo_new_tokens: int = 32
    gen_batches: tuple[int, ...] = (1, 32)
    prompt_tokens: int = 128
    new_tokens: int = 256
    shape: dict = field(default_factory=dict)  # overrides of the gpu profile's model shape (--smoke: a toy one)


SMOKE = Sizes(
    pretrain_steps=4,
    post_steps=2,
    grpo_steps=1,
    batch=4,
    group=2,
    grpo_new_tokens=8,
    gen_batches=(1, 2),
    prompt_tokens=8,
    new_tokens=8,
    shape={"context": 128, "d_model": 64, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "d_ff": 160, "batch_size": 4},
)


# ----------------------------------------------------------------------------------------------
# the wheel list and the distributions the check imports


def canonical(name: str) -> str:
    """A distribution's name as pip compares them.

    >>> canonical("Huggingface_Hub"), canonical("pytest.timeout")
    ('huggingface-hub', 'pytest-timeout')
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def read_wheel_list(path: Path = WHEEL_LIST) -> dict[str, str]:
    """``NAME==VERSION`` lines (``#`` comments allowed) as {canonical name: version}; errors name the line."""
    pins = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        name, sep, version = text.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(f"{path}:{number}: expected NAME==VERSION, got {text!r}")
        if canonical(name) in pins:
            raise ValueError(f"{path}:{number}: {name.strip()} is pinned twice; keep one version")
        pins[canonical(name)] = version.strip()
    return pins


def missing_wheels(pins: dict[str, str], folder: Path) -> list[str]:
    """The ``NAME==VERSION`` pins with no wheel file in ``folder``."""
    have = set()
    for wheel in folder.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        have.add((canonical(name), version))
    return [f"{name}=={version}" for name, version in pins.items() if (name, version) not in have]


def requirement_closure(names) -> set[str]:
    """``names`` and every distribution they require (no extras), as installed here; canonical names."""
    seen, todo = set(), [canonical(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" not in req:
                todo.append(canonical(re.split(r"[ ;<>=!~\[(]", req.strip(), maxsplit=1)[0]))
    return seen


def imported_distributions() -> set[str]:
    """The distributions (canonical names) of the modules imported since the check started, less llmkb,
    the standard library and :data:`OPTIONAL`."""
    owners = importlib.metadata.packages_distributions()
    found = set()
    for module in set(sys.modules) - AT_START:
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top == "llmkb":
            continue
        found.update(canonical(d) for d in owners.get(top, ()))
    return found - {"llmkb", *OPTIONAL}


# ----------------------------------------------------------------------------------------------
# the phases: each takes the Check and returns its numbers, with a one-line "summary"


@dataclass
class Check:
    args: argparse.Namespace
    sizes: Sizes
    device: str
    run: object = None  # llmkb.stages.RunDir, set by the prepare phase
    started: float = field(default_factory=time.perf_counter)

    @property
    def progress(self) -> bool:
        return not self.args.smoke


def environment(check: Check) -> dict:
    import torch

    from llmkb.device import PEAK_BF16_FLOPS, peak_flops

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "device": check.device,
    }
    for dist in ("transformers", "peft", "accelerate", "triton", *read_wheel_list()):
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = None
    pins = read_wheel_list()
    wheels = Path(check.args.carry) / "wheels"
    info["wheels_missing_from_carry"] = missing_wheels(pins, wheels) if wheels.exists() else sorted(pins)
    if not check.device.startswith("cuda"):
        info["summary"] = f"no CUDA GPU found (torch {torch.__version__}); wheels missing from {wheels}: " + (
            ", ".join(info["wheels_missing_from_carry"]) or "none"
        )
        return info
    props = torch.cuda.get_device_properties(0)
    peak = peak_flops("cuda")
    info.update(
        {
            "gpu": props.name,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
            "gpus": torch.cuda.device_count(),
            "bf16": torch.cuda.is_bf16_supported(),
            "peak_bf16_flops": peak,
            "peak_table": PEAK_BF16_FLOPS,
        }
    )
    if peak is None:
        info["mfu_note"] = f"{props.name} is not in llmkb.device.PEAK_BF16_FLOPS: MFU is null"
    tflops = f"{peak / 1e12:.0f} TFLOP/s dense bf16" if peak else "peak unknown, MFU null"
    info["summary"] = f"{props.name} ({tflops}), torch {torch.__version__}, CUDA {torch.version.cuda}"
    return info


def prepare_carry(carry: Path, data_profile: str = "quick") -> dict:
    """Run the data and tokenizer stages and copy what pretraining reads into ``carry/run`` (on the CPU machine).

    The data stage runs in ``data_profile`` ("quick": 300 pages, about a minute; the numbers this check
    measures do not depend on the corpus's size), the tokenizer in its default profile (a 4,096-token
    vocabulary, the one the gpu profile trains with).
    """
    from llmkb.stages import RunDir, run_stage

    work = RunDir(carry / "work")
    for stage, profile in (("data", data_profile), ("tokenizer", "default")):
        print(f"gpu check: running the {stage} stage ({profile} profile) into {work.root}", flush=True)
        run_stage(stage, work, profile)
    target = copy_carried(work, carry / "run")
    shutil.rmtree(work.root)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return {"carry": str(target), "megabytes": round(size / 1e6, 2)}


def copy_carried(run, target: Path) -> Path:
    """Copy the :data:`CARRIED` files of finished run ``run`` (a RunDir) into ``target``, replacing it."""
    shutil.rmtree(target, ignore_errors=True)
    for stage, names in CARRIED.items():
        source = run.require(stage)
        if names is None:
            shutil.copytree(source, target / stage)
        else:
            (target / stage).mkdir(parents=True)
            for name in names:
                shutil.copy2(source / name, target / stage / name)
    return target


def prepare(check: Check) -> dict:
    from llmkb.stages import RunDir

    carry = Path(check.args.carry)
    made = None
    if not (carry / "run" / "tokenizer" / "metrics.json").exists():
        if check.device.startswith("cuda"):
            raise FileNotFoundError(
                f"{carry / 'run'}: no prepared data and tokenizer; run `bash scripts/gpu_check.sh --prepare` on a "
                f"CPU machine that has llmkb's dependencies and carry {carry} here"
            )
        made = prepare_carry(carry)
    run = RunDir(Path(check.args.runs))
    shutil.rmtree(run.root, ignore_errors=True)  # an old checkpoint would be resumed, not trained
    shutil.copytree(carry / "run", run.root)
    check.run = run
    return {"run": str(run.root), "prepared_here": made, "summary": f"run folder {run.root} from {carry / 'run'}"}


def pretrain(check: Check) -> dict:
    from llmkb.io import read_jsonl
    from llmkb.stages import run_stage

    steps = check.sizes.pretrain_steps
    overrides = {
        "max_steps": steps,
        "warmup_steps": min(200, steps // 3 or 1),
        "eval_every": steps,
        "checkpoint_every": steps,
        "eval_tokens": 65_536,
        "progress": check.progress,
        **check.sizes.shape,
    }
    metrics = run_stage("pretrain", check.run, "gpu", **overrides)
    log = list(read_jsonl(check.run.require("pretrain") / "log.jsonl"))
    config = check.run.config("pretrain")
    tokens_per_step = config.batch_size * config.context
    mfu = metrics.get("mfu")
    out = {
        **{k: metrics.get(k) for k in ("params", "tokens_per_s", "mfu", "val_loss", "train_s", "wall_s")},
        "steps": steps,
        "tokens_per_step": tokens_per_step,
        "first_step_s": round(tokens_per_step / log[0]["tokens_per_s"], 2),
        "shape": {
            k: getattr(config, k)
            for k in ("context", "d_model", "n_layer", "n_head", "n_kv_head", "d_ff", "batch_size")
        },
        "mfu_goal": GOALS["pretrain_mfu"],
        "mfu_goal_met": None if mfu is None else mfu >= GOALS["pretrain_mfu"],
    }
    shown = f"MFU {mfu:.1%}" if mfu is not None else "MFU null (unknown peak)"
    out["summary"] = (
        f"{out['params'] / 1e6:.1f}M params, {out['tokens_per_s']:,.0f} tokens/s, {shown} "
        f"(median of steps after the first fifth; first step {out['first_step_s']} s with compilation)"
    )
    return out


def _tokenizer(check: Check):
    from llmkb.tokenizer.hf import load_pretrained

    return load_pretrained(check.run.require("tokenizer"))


def _model(check: Check, vocab_size: int):
    """A fresh model of the pretraining phase's shape: post-training's time per step depends on the shape only."""
    import torch

    from llmkb.model.gpt import GPT
    from llmkb.stages import get_stage

    config = get_stage("pretrain").config("gpu", **check.sizes.shape)
    torch.manual_seed(0)
    return GPT(config.model_config(vocab_size))


def _sums(n: int, seed: int = 0) -> list[dict]:
    from llmkb.sft.data import reasoning

    return reasoning(seed=seed, digits=2, n=n)


def _pairs(records: list[dict]) -> list[dict]:
    """Preference pairs from worked sums: the right answer chosen, another sum's rejected."""
    return [
        {
            "prompt": r["messages"][:1],
            "chosen": r["messages"][1]["content"],
            "rejected": records[(i + 1) % len(records)]["messages"][1]["content"],
        }
        for i, r in enumerate(records)
    ]


def sft(check: Check) -> dict:
    from llmkb.sft.config import SFTConfig
    from llmkb.sft.train import fine_tune

    tokenizer = _tokenizer(check)
    s = check.sizes
    config = SFTConfig(
        max_steps=s.post_steps, batch_size=s.batch, warmup_steps=1, eval_every=s.post_steps, progress=check.progress
    )
    t0 = time.perf_counter()
    _, log, summary = fine_tune(_model(check, len(tokenizer)), tokenizer, _sums(s.post_steps * s.batch), [], config)
    out = {
        "steps": s.post_steps,
        "s_per_step": summary["s_per_step"],
        "wall_s": round(time.perf_counter() - t0, 2),
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in log[1:] or log),
        "cuda_peak_gib": round(summary.get("cuda_peak_bytes", 0) / 2**30, 2),
    }
    out["summary"] = f"{out['s_per_step']} s/step (median after the first, which compiles), batch {s.batch}"
    return out


def reward(check: Check) -> dict:
    from llmkb.rl.config import RewardConfig
    from llmkb.rl.reward import train_reward_model

    tokenizer = _tokenizer(check)
    s = check.sizes
    pairs = _pairs(_sums(s.post_steps * s.batch))
    config = RewardConfig(max_steps=s.post_steps, batch_size=s.batch, progress=check.progress)
    t0 = time.perf_counter()
    _, _, summary = train_reward_model(_model(check, len(tokenizer)), tokenizer, pairs, [], config)
    out = {"steps": s.post_steps, "s_per_step": summary["s_per_step"], "wall_s": round(time.perf_counter() - t0, 2)}
    out["summary"] = f"{out['s_per_step']} s/step (median after the first), {s.batch} pairs per step"
    return out


def dpo(check: Check) -> dict:
    from llmkb.rl.config import DPOConfig
    from llmkb.rl.dpo import train_dpo

    tokenizer = _tokenizer(check)
    s = check.sizes
    policy = _model(check, len(tokenizer))
    config = DPOConfig(max_steps=s.post_steps, batch_size=s.batch, progress=check.progress)
    t0 = time.perf_counter()
    train_dpo(policy, copy.deepcopy(policy), tokenizer, _pairs(_sums(s.post_steps * s.batch)), config)
    wall = time.perf_counter() - t0
    out = {"steps": s.post_steps, "s_per_step": round(wall / s.post_steps, 4), "wall_s": round(wall, 2)}
    out["summary"] = f"{out['s_per_step']} s/step (whole call / steps), {s.batch} pairs per step"
    return out


def grpo(check: Check) -> dict:
    from llmkb.rl.config import GRPOSettings
    from llmkb.rl.grpo import train_grpo_trl

    tokenizer = _tokenizer(check)
    s = check.sizes
    settings = GRPOSettings(
        group_size=s.group,
        prompts_per_step=s.group,
        max_new_tokens=s.grpo_new_tokens,
        max_steps=s.grpo_steps,
        progress=check.progress,
    )
    t0 = time.perf_counter()
    _, log = train_grpo_trl(_model(check, len(tokenizer)), tokenizer, _sums(s.group * s.grpo_steps), settings)
    wall = time.perf_counter() - t0
    out = {
        "steps": len(log),
        "s_per_step": round(wall / max(len(log), 1), 3),
        "wall_s": round(wall, 2),
        "answers_per_step": s.group * s.group,
        "max_new_tokens": s.grpo_new_tokens,
    }
    out["summary"] = (
        f"{out['s_per_step']} s/step (trl's GRPOTrainer, whole call / steps), "
        f"{out['answers_per_step']} sampled answers of up to {s.grpo_new_tokens} tokens per step"
    )
    return out


def generation(check: Check) -> dict:
    import torch

    from llmkb.inference.bench import median_time
    from llmkb.inference.generate import GenerationConfig, generate_ids
    from llmkb.inference.static import StaticDecoder, compiled_step, greedy

    s = check.sizes
    vocab = 4096  # the default tokenizer's size: the speed depends on the shape, not on which words
    model = _model(check, vocab).to(check.device)
    if check.device.startswith("cuda"):
        model = model.to(torch.bfloat16)  # served in bf16, as inference engines do
    new = s.new_tokens
    out: dict = {"prompt_tokens": s.prompt_tokens, "new_tokens": new, "dtype": str(next(model.parameters()).dtype)}
    for batch in s.gen_batches:
        prompt = torch.randint(0, vocab, (batch, s.prompt_tokens), generator=torch.Generator().manual_seed(batch))
        decoder = StaticDecoder(model, batch, s.prompt_tokens + new)
        eager_s, eager = median_time(lambda _: greedy(decoder, prompt, new), new, repeat=3)
        step = compiled_step(decoder)
        t0 = time.perf_counter()
        greedy(decoder, prompt, new, step)  # compiles, then records the CUDA graph
        compile_s = time.perf_counter() - t0
        compiled_s, compiled = median_time(lambda _: greedy(decoder, prompt, new, step), new, repeat=3)
        out[f"batch_{batch}"] = {
            "eager_tokens_per_s": round(batch * new / eager_s, 1),
            "compiled_tokens_per_s": round(batch * new / compiled_s, 1),
            "speedup": round(eager_s / compiled_s, 2),
            "compile_s": round(compile_s, 1),
            "same_tokens": round(float((eager == compiled).float().mean()), 4),
        }
    prompt = torch.randint(0, vocab, (1, s.prompt_tokens), generator=torch.Generator().manual_seed(0))
    config = GenerationConfig(max_new_tokens=new)
    loop_s, _ = median_time(
        lambda n: generate_ids(model, prompt, None, dataclasses.replace(config, max_new_tokens=n), eos_ids=[-1]),
        new,
        repeat=2,
    )
    out["generate_loop_batch_1_tokens_per_s"] = round(new / loop_s, 1)
    skips = {k: v for k, v in torch._dynamo.utils.counters["inductor"].items() if "cudagraph" in k}
    out["cudagraph_counters"] = skips  # a "cudagraph_skips" count means the graphs were not used
    first = out[f"batch_{s.gen_batches[0]}"]
    out["speedup_goal"] = GOALS["compiled_speedup_batch1"]
    out["speedup_goal_met"] = first["speedup"] >= GOALS["compiled_speedup_batch1"]
    out["summary"] = "; ".join(
        f"batch {b}: eager {out[f'batch_{b}']['eager_tokens_per_s']:,.0f}, compiled "
        f"{out[f'batch_{b}']['compiled_tokens_per_s']:,.0f} tokens/s ({out[f'batch_{b}']['speedup']}x)"
        for b in s.gen_batches
    )
    return out


def gpu_test_files() -> list[str]:
    """The test files that hold ``gpu``-marked tests."""
    return sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").glob("test_*.py")
        if re.search(r"mark\.gpu\b", p.read_text(encoding="utf-8"))
    )


def pytest_phase(check: Check) -> dict:
    budget = max(60, int(check.args.budget - (time.perf_counter() - check.started)))
    # addopts cleared: its --benchmark-disable needs pytest-benchmark, which the GPU machine lacks.
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu",
        "-o",
        "addopts=",
        "-p",
        "no:cacheprovider",
        "-q",
        "--strict-markers",
        *gpu_test_files(),
    ]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=budget)
    except subprocess.TimeoutExpired as e:
        raise TimeoutError(f"the gpu tests ran past the {budget} s left of the budget") from e
    tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", "\n".join(tail))}
    out = {"returncode": done.returncode, "counts": counts, "tail": tail, "files": gpu_test_files()}
    if done.returncode != 0:
        raise RuntimeError(f"pytest -m gpu exited {done.returncode}: " + " | ".join(tail[-3:]))
    out["summary"] = ", ".join(f"{n} {word}" for word, n in counts.items())
    return out


def imports(check: Check) -> dict:
    used = imported_distributions()
    available = requirement_closure(GPU_PREINSTALLED) | set(read_wheel_list())
    missing = sorted(used - available)
    out = {"distributions": sorted(used), "not_preinstalled_nor_wheeled": missing}
    if missing:
        raise RuntimeError(f"imported but neither on the GPU machine nor in {WHEEL_LIST.name}: {', '.join(missing)}")
    out["summary"] = f"{len(used)} distributions imported, all on the GPU machine or in {WHEEL_LIST.name}"
    return out


RUNNERS = {
    "environment": environment,
    "prepare": prepare,
    "pretrain": pretrain,
    "sft": sft,
    "reward": reward,
    "dpo": dpo,
    "grpo": grpo,
    "generation": generation,
    "pytest": pytest_phase,
    "imports": imports,
}


# ----------------------------------------------------------------------------------------------
# running and reporting


def summary_markdown(results: dict) -> str:
    """results.json as a page: the machine, then one row per phase."""
    env = results["phases"].get("environment", {})
    lines = [
        f"# llmkb GPU check: {env.get('gpu') or 'no CUDA GPU found'}",
        "",
        f"{results['finished'] or results['started']} · torch {env.get('torch')} · CUDA {env.get('cuda')} · "
        f"Python {env.get('python')} · {'smoke run on the CPU (toy sizes)' if results['smoke'] else ''}".rstrip(" ·"),
        "",
        "| phase | status | seconds | result |",
        "|---|---|---:|---|",
    ]
    for name, phase in results["phases"].items():
        detail = phase.get("summary") or phase.get("reason") or phase.get("error", "").splitlines()[-1:] or [""]
        detail = detail if isinstance(detail, str) else detail[0]
        lines.append(f"| {name} | {phase['status']} | {phase.get('seconds', '')} | {detail.replace('|', '/')} |")
    if results.get("note"):
        lines += ["", results["note"]]
    return "\n".join(lines) + "\n"


def write_results(out: Path, results: dict) -> None:
    write_json(out / "results.json", results)
    write_text(out / "summary.md", summary_markdown(results))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpu_check.sh",
        description="Run every stage's GPU path and measure it (see llmkb/gpu_check.py).",
        epilog=f"Needs beyond torch, transformers and peft: {', '.join(read_wheel_list())} ({WHEEL_LIST.name}; "
        "scripts/gpu_wheels.sh downloads them).",
    )
    parser.add_argument("--prepare", action="store_true", help="CPU machine: make the carry folder's run/ and stop")
    parser.add_argument(
        "--data-profile",
        choices=("quick", "default"),
        default="quick",
        help="--prepare: the data stage's profile (default quick: about a minute)",
    )
    parser.add_argument("--carry", default=str(ROOT / ".gpu-carry"), help="carry folder (default .gpu-carry)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-check", help="results folder (default $OUT)")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "gpu-check"), help="run folder the stages use")
    parser.add_argument("--steps", type=int, default=None, help="pretraining steps (default 300)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument(
        "--budget", type=int, default=480, help="seconds the whole check should take (pytest gets the rest)"
    )
    parser.add_argument("--smoke", action="store_true", help="every phase but pytest on the CPU at toy sizes")
    args = parser.parse_args(argv)
    chosen = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PHASES]
    if unknown:
        parser.error(f"--phases: unknown phase(s) {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    args.phases = chosen
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare:
        made = prepare_carry(Path(args.carry), args.data_profile)
        missing = missing_wheels(read_wheel_list(), Path(args.carry) / "wheels")
        print(f"gpu check: {made['carry']} holds the data and tokenizer ({made['megabytes']} MB)")
        print(
            "gpu check: wheels "
            + (f"missing: {', '.join(missing)}; run bash scripts/gpu_wheels.sh" if missing else "complete")
        )
        return 0
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    sizes = copy.deepcopy(SMOKE if args.smoke else Sizes())
    if args.steps:
        sizes.pretrain_steps = args.steps
    check = Check(args, sizes, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "finished": None,
        "smoke": args.smoke,
        "sizes": dataclasses.asdict(sizes),
        "goals": GOALS,
        "phases": {},
    }
    for name in PHASES:
        if name not in args.phases:
            continue
        if name in NEEDS_GPU and not cuda and not (args.smoke and name != "pytest"):
            results["phases"][name] = {"status": "skipped", "reason": "no CUDA GPU found"}
            continue
        if name in NEEDS_RUN and check.run is None:
            results["phases"][name] = {"status": "skipped", "reason": "no run folder (the prepare phase did not run)"}
            continue
        print(f"gpu check: {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            phase = {"status": "ok", **RUNNERS[name](check)}
        except Exception as e:  # recorded, and the next phase runs: one failure must not lose the other numbers
            phase = {"status": "failed", "error": "".join(traceback.format_exception(e))[-4000:]}
            print(f"gpu check: {name} FAILED: {e}", flush=True)
        phase["seconds"] = round(time.perf_counter() - t0, 1)
        results["phases"][name] = phase
        print(f"gpu check: {name} {phase['status']} ({phase['seconds']} s): {phase.get('summary', '')}", flush=True)
        write_results(out, results)
    results["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    if not cuda and not args.smoke:
        results["note"] = (
            "No CUDA GPU found: only the phases that need none ran (environment, prepare, imports); "
            "run this again on a machine with a CUDA GPU for the numbers."
        )
    write_results(out, results)
    print(summary_markdown(results))  # the note included
    return 1 if any(p["status"] == "failed" for p in results["phases"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
