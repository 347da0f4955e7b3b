"""How fast is generation, and what do the KV cache, batching and speculative decoding buy?

In: a model (a ``save_pretrained`` folder such as ``runs/<run>/pretrain/model``, or our
:class:`~llmkb.model.gpt.GPT`) and, for speculative decoding, the token shards it was trained on.
Out: a dict of timings and ratios; :func:`to_markdown` turns it into the tables on the inference
page. Everything runs on the CPU, in fp32, with ``threads`` torch threads (1 by default), in one
process, greedy, batch rows of equal length (no padding). Each figure is the **median of
``repeat`` timed runs**, after one untimed warm-up run of a few tokens.

What is timed, exactly:

* **KV cache vs no cache.** One call of :func:`~llmkb.inference.generate.generate_ids` producing
  ``new_tokens`` (256) tokens for ``B`` random prompts of ``prompt_tokens`` tokens each, with
  ``GenerationConfig(max_new_tokens=new_tokens)`` and with ``use_cache=False``: prefill, every
  decoding step, picking the tokens and the loop's bookkeeping; not building the prompts. No end
  token can stop a row (``eos_ids=[]``), so every run makes all ``B * new_tokens`` tokens. The trained
  model's context (128) is too short for 256 new tokens, so this part uses the **same
  architecture with a context of** ``context`` **(512) and random weights**: a forward pass costs
  the same whatever the weights are, and without an end token the number of steps is fixed too.
  Reported at batch 1 and batch 8, as new tokens per second and the ratio no cache / cache time,
  plus one batch-1 row with prompts of ``long_prompt_tokens`` (128): what the cache saves grows
  with the sequence (without it, step ``t`` recomputes all ``prompt + t`` positions), while a
  cached step of a model this small costs mostly per-operation overhead (about 120 small PyTorch
  operations per step), not arithmetic, whatever the length.
* **Batch 8 vs batch 1.** New tokens per second with the cache at the largest batch over batch 1:
  a decoding step of a small model costs about the same for 1 row or 8 (the weights are read once
  and the per-operation overhead is paid once), so the throughput grows with the batch.
* **Ours vs Hugging Face.** The same random model as a ``LlamaForCausalLM``
  (:func:`llmkb.model.hf.to_hf`, the same weights) decoded by ``model.generate(input_ids,
  attention_mask, max_new_tokens=new_tokens, do_sample=False, use_cache=True)``; its config has no
  end token, so it also makes all ``new_tokens`` tokens. Timed: that one call. Ratio = our tokens/s
  (our loop, our GPT) / HF's (HF's loop, HF's Llama); ``loop_ratio`` isolates the loop: our loop
  driving the *HF* model vs HF's ``generate`` on it, the same network under both.
* **Speculative decoding.** The *trained* target (its real context) and a draft trained by
  :func:`~llmkb.inference.speculative.train_draft` on the same shards (into a temporary folder),
  on ``spec_prompts`` prompts of ``spec_prompt_tokens`` tokens cut at evenly spaced offsets from
  each split in ``spec_splits``: held-out text (``val``) and training text (``train``, which the
  small target has seen about 12 times and partly recites, so the draft guesses it more often).
  Each prompt is continued by ``spec_new_tokens`` tokens (up to the target's context; end tokens
  disabled, so both methods make the same number). Timed: the sum over the prompts of one
  :func:`~llmkb.inference.generate.generate_ids` call each (target alone, KV cache, batch 1) vs
  one :func:`~llmkb.inference.speculative.speculative_generate` call each, for every ``k`` in
  ``spec_ks``; the draft's training is not timed. Also measured, taking turns: single forward
  passes on a filled cache (target on one token, target on ``k + 1`` tokens, draft on one
  token), and from them the *predicted* speedup for the counted passes, which explains the
  measured one.

Run it on the default run's base model with::

    OMP_NUM_THREADS=1 python -c "from llmkb.inference.bench import *; \\
        print(to_markdown(run_benchmark('runs/default/pretrain/model', repeat=3)))"
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from llmkb.device import cpu_name
from llmkb.inference.backend import backend_for
from llmkb.inference.generate import GenerationConfig, generate_ids
from llmkb.inference.speculative import _forward, crop_cache, speculative_generate, train_draft
from llmkb.model.gpt import GPT

# The goals, shown next to each measurement in the tables.
GOALS = {"kv_cache": {1: 5.0, 8: 10.0}, "batching": 3.0, "vs_hf": 1.0}


# ----------------------------------------------------------------------------------------------
# timing


def median_time(run: Callable[[int], object], tokens: int, repeat: int, warmup_tokens: int = 8) -> tuple[float, object]:
    """Seconds of ``run(tokens)``: the median of ``repeat`` runs, after one untimed ``run(warmup_tokens)``.

    Returns the median and the last run's result.

    >>> seconds, out = median_time(lambda n: n * 2, 5, repeat=3)
    >>> seconds >= 0, out
    (True, 10)
    """
    run(min(warmup_tokens, tokens))  # first calls allocate buffers and warm the caches
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run(tokens)
        if torch.cuda.is_initialized():
            torch.cuda.synchronize()  # CUDA returns before the kernels finish: wait for them inside the timing
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _load(model) -> tuple[GPT, str]:
    if isinstance(model, (str, Path)):
        from llmkb.model.hf import load_pretrained

        return load_pretrained(model), str(model)
    if not isinstance(getattr(model, "_orig_mod", model), GPT):
        raise TypeError(f"run_benchmark takes a model folder or our GPT, not a {type(model).__name__}")
    return getattr(model, "_orig_mod", model).eval(), "GPT"


def _random_ids(vocab: int, rows: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(0, vocab, (rows, length), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------
# the parts


def _greedy(model, ids: torch.Tensor, n: int, use_cache: bool = True) -> torch.Tensor:
    """``n`` new tokens for every row of ``ids``, greedy, no end token, no padding."""
    return generate_ids(model, ids, None, GenerationConfig(max_new_tokens=n, use_cache=use_cache), [], pad_id=0)


def _hf_generate(hf_model, ids: torch.Tensor, n: int) -> torch.Tensor:
    out = hf_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False, use_cache=True)
    return out[:, ids.shape[1] :]


def _decoding(
    model: GPT,
    batch_sizes,
    prompt_tokens: int,
    long_prompt_tokens: int,
    new_tokens: int,
    repeat: int,
    hf: bool,
    seed: int,
    say: Callable[[str], None],
) -> tuple[list[dict], list[dict]]:
    """KV cache vs no cache, and (if ``hf``) ours vs HF's ``generate``, at each batch size."""
    from transformers.utils import logging as hf_logging

    from llmkb.model.hf import to_hf

    hf_model = to_hf(model) if hf else None  # no bos/eos/pad ids: HF's generate has no end token either
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # generate() would warn about the missing pad token on every call
    try:
        return _decoding_rows(
            model, hf_model, batch_sizes, prompt_tokens, long_prompt_tokens, new_tokens, repeat, seed, say
        )
    finally:
        hf_logging.set_verbosity(verbosity)


def _cache_row(model: GPT, ids: torch.Tensor, new_tokens: int, repeat: int, say) -> tuple[dict, float, torch.Tensor]:
    """KV cache vs no cache for the prompts ``ids`` ``(B, P)``: the row, the cached seconds and tokens."""
    B, P = ids.shape
    say(f"batch {B}, prompt {P}: {new_tokens} new tokens with the KV cache ...")
    cached_s, cached = median_time(lambda n: _greedy(model, ids, n), new_tokens, repeat)
    say(f"batch {B}, prompt {P}: {new_tokens} new tokens without the cache ...")
    uncached_s, uncached = median_time(lambda n: _greedy(model, ids, n, use_cache=False), new_tokens, repeat)
    if cached.shape != (B, new_tokens):
        raise RuntimeError(f"generation stopped early: {tuple(cached.shape)} tokens instead of {(B, new_tokens)}")
    made = B * new_tokens
    row = {
        "batch_size": B,
        "prompt_tokens": P,
        "cache_s": round(cached_s, 6),  # microseconds: a tiny smoke run takes milliseconds
        "no_cache_s": round(uncached_s, 6),
        "cache_tokens_per_s": round(made / cached_s, 1),
        "no_cache_tokens_per_s": round(made / uncached_s, 1),
        "speedup": round(uncached_s / cached_s, 2),
        "same_tokens": bool(torch.equal(cached, uncached)),
    }
    return row, cached_s, cached


def _decoding_rows(
    model: GPT,
    hf_model,
    batch_sizes,
    prompt_tokens: int,
    long_prompt_tokens: int,
    new_tokens: int,
    repeat: int,
    seed: int,
    say: Callable[[str], None],
) -> tuple[list[dict], list[dict]]:
    cache_rows, hf_rows = [], []
    for B in batch_sizes:
        ids = _random_ids(model.config.vocab_size, B, prompt_tokens, seed + B)
        row, cached_s, cached = _cache_row(model, ids, new_tokens, repeat, say)
        cache_rows.append(row)
        if hf_model is not None:
            say(f"batch {B}: HF generate() and our loop on the HF model ...")
            made = B * new_tokens
            hf_s, theirs = median_time(lambda n: _hf_generate(hf_model, ids, n), new_tokens, repeat)
            loop_s, _ = median_time(lambda n: _greedy(hf_model, ids, n), new_tokens, repeat)
            hf_rows.append(
                {
                    "batch_size": B,
                    "ours_tokens_per_s": round(made / cached_s, 1),
                    "hf_tokens_per_s": round(made / hf_s, 1),
                    "ratio": round(hf_s / cached_s, 3),
                    "ours_loop_hf_model_tokens_per_s": round(made / loop_s, 1),
                    "loop_ratio": round(hf_s / loop_s, 3),
                    "same_tokens": bool(torch.equal(cached, theirs)),
                }
            )
    if long_prompt_tokens:  # the saving grows with the sequence: one more row, batch 1 with a long prompt
        ids = _random_ids(model.config.vocab_size, 1, long_prompt_tokens, seed + 1000)
        cache_rows.append(_cache_row(model, ids, new_tokens, repeat, say)[0])
    return cache_rows, hf_rows


def _pass_ms(
    passes: dict[str, tuple[object, int]], prefix: list[int], repeat: int = 50, warmup: int = 10
) -> dict[str, float]:
    """Milliseconds of one forward pass of each ``name: (model, tokens)`` after a cache holding ``prefix``.

    The passes take turns (one of each per round, then each cache is cropped back to ``prefix``), so
    that a machine getting busier or quieter affects all of them alike; the median of ``repeat``
    rounds after ``warmup`` untimed ones.
    """
    setups = {}
    with torch.no_grad():
        for name, (model, n) in passes.items():
            backend = backend_for(model)
            cache = backend.start(1, len(prefix) + n)
            _forward(backend, prefix[:-1], cache, 0)
            setups[name] = (backend, cache, prefix[-1:] * n)
        times: dict[str, list[float]] = {name: [] for name in passes}
        for i in range(warmup + repeat):
            for name, (backend, cache, tokens) in setups.items():
                start = time.perf_counter()
                _forward(backend, tokens, cache, len(prefix) - 1)
                if i >= warmup:
                    times[name].append(time.perf_counter() - start)
                crop_cache(cache, len(prefix) - 1)
    return {name: round(1000 * statistics.median(t), 3) for name, t in times.items()}


def _spec_prompts(
    target: GPT, shards_dir: Path | None, split: str, count: int, length: int, seed: int
) -> list[torch.Tensor]:
    """``count`` prompts of ``length`` tokens from a split's first shard at evenly spaced offsets
    (``random``: random ids)."""
    if split == "random":
        return [_random_ids(target.config.vocab_size, 1, length, seed + i) for i in range(count)]
    from llmkb.pretrain.shards import TokenShards

    data = TokenShards.open(shards_dir, split)
    tokens = torch.from_numpy(data.arrays[0][:].astype("int64"))
    if len(tokens) < count * length:
        raise ValueError(
            f"{data.source}: the {split} split has {len(tokens)} tokens, fewer than {count} prompts of {length}"
        )
    step = len(tokens) // count
    return [tokens[i * step : i * step + length][None] for i in range(count)]


def _speculative(
    target: GPT,
    draft: GPT | None,
    shards_dir: Path | None,
    splits,
    ks,
    count: int,
    prompt_tokens: int,
    new_tokens: int,
    draft_steps: int,
    repeat: int,
    seed: int,
    progress: bool,
    say: Callable[[str], None],
) -> dict:
    """Target alone vs speculative decoding for every split of prompts and every ``k``; see the module docstring."""
    result: dict = {}
    if draft is None:
        if shards_dir is None:
            raise ValueError("speculative decoding needs a draft model or the shards to train one on")
        say(f"training a draft model for {draft_steps} steps on {shards_dir} ...")
        with tempfile.TemporaryDirectory(prefix="llmkb-bench-draft-") as tmp:
            start = time.perf_counter()
            draft = train_draft(shards_dir, tmp, draft_steps, context=target.config.context, progress=progress)
            result["draft_train_s"] = round(time.perf_counter() - start, 1)
            from llmkb.io import read_jsonl

            val = [r["val_loss"] for r in read_jsonl(Path(tmp) / "log.jsonl") if "val_loss" in r]
            result["draft_val_loss"] = val[-1] if val else None
        result["draft_steps"] = draft_steps
    draft = draft.eval()
    new_tokens = min(new_tokens, target.config.context - prompt_tokens)
    if new_tokens < 1:
        raise ValueError(
            f"prompts of {prompt_tokens} tokens leave no room in the target's context of {target.config.context}"
        )
    splits = list(splits) if shards_dir is not None else ["random"]
    probe = _spec_prompts(target, shards_dir, splits[0], 1, prompt_tokens, seed)[0][0].tolist()
    costs = _pass_ms({"target": (target, 1), "draft": (draft, 1), **{k: (target, k + 1) for k in ks}}, probe)
    target_ms, draft_ms = costs["target"], costs["draft"]  # one token on a filled cache
    verify_ms = {k: costs[k] for k in ks}  # the target on k + 1 tokens in one pass
    result.update(
        {
            "target_params": target.num_params(),
            "draft_params": draft.num_params(),
            "prompts": count,
            "prompt_tokens": prompt_tokens,
            "new_tokens": new_tokens,
            "target_step_ms": target_ms,
            "draft_step_ms": draft_ms,
            "verify_step_ms": {str(k): ms for k, ms in verify_ms.items()},
            "texts": [],
        }
    )
    for split in splits:
        prompts = _spec_prompts(target, shards_dir, split, count, prompt_tokens, seed)
        say(f"{split} prompts: {count} x {new_tokens} new tokens, target alone ...")

        def alone(n: int) -> list[torch.Tensor]:
            return [_greedy(target, p, n)[0] for p in prompts]

        base_s, reference = median_time(alone, new_tokens, repeat)
        text = {
            "split": split,
            "baseline_s": round(base_s, 6),
            "baseline_tokens_per_s": round(count * new_tokens / base_s, 1),
            "runs": [],
        }
        for k in ks:
            say(f"{split} prompts: speculative decoding with k={k} ...")
            stats: list[dict] = []

            def spec(n: int, k=k) -> list[torch.Tensor]:
                stats.clear()
                outs = []
                for p in prompts:
                    out, s = speculative_generate(target, draft, p, n, k=k)
                    outs.append(out)
                    stats.append(s)
                return outs

            spec_s, outs = median_time(spec, new_tokens, repeat)
            keys = ("proposed", "accepted", "new_tokens", "target_forward_passes", "draft_forward_passes")
            total = {key: sum(s[key] for s in stats) for key in keys}
            # What the pass costs above predict: target-alone time / (verify passes + draft passes).
            predicted = (
                total["new_tokens"]
                * target_ms
                / (total["target_forward_passes"] * verify_ms[k] + total["draft_forward_passes"] * draft_ms)
            )
            text["runs"].append(
                {
                    "k": k,
                    "seconds": round(spec_s, 6),
                    "tokens_per_s": round(count * new_tokens / spec_s, 1),
                    "speedup": round(base_s / spec_s, 3),
                    "predicted_speedup": round(predicted, 3),
                    **total,
                    "acceptance_rate": round(total["accepted"] / max(1, total["proposed"]), 4),
                    "tokens_per_target_pass": round(total["new_tokens"] / total["target_forward_passes"], 3),
                    "identical": all(torch.equal(a, b) for a, b in zip(outs, reference)),
                }
            )
        result["texts"].append(text)
    return result


# ----------------------------------------------------------------------------------------------
# the benchmark


def run_benchmark(
    model: str | Path | GPT,
    shards_dir: str | Path | None = None,
    *,
    new_tokens: int = 256,
    prompt_tokens: int = 16,
    long_prompt_tokens: int = 128,
    batch_sizes: tuple[int, ...] = (1, 8),
    context: int = 512,
    repeat: int = 3,
    threads: int | None = 1,
    hf: bool = True,
    speculative: bool = True,
    draft: GPT | None = None,
    draft_steps: int = 300,
    spec_ks: tuple[int, ...] = (2, 4),
    spec_splits: tuple[str, ...] = ("val", "train"),
    spec_prompts: int = 4,
    spec_prompt_tokens: int = 32,
    spec_new_tokens: int = 96,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Measure decoding speed (see the module docstring for what each number times); return a dict.

    ``model``: a ``save_pretrained`` folder or our GPT. Its *architecture* (with ``context`` as the
    context and random weights, seeded by ``seed``) is used for the KV-cache, batching and HF parts,
    at each of ``batch_sizes`` with prompts of ``prompt_tokens``, plus one batch-1 row with prompts
    of ``long_prompt_tokens`` (0: none); the model *itself* is the target of speculative decoding.
    ``shards_dir`` (default: the ``shards`` folder beside a model folder, when there is one) gives
    the draft's training data and the prompts, cut from each split in ``spec_splits`` (held-out
    ``val`` text, and ``train`` text the target has seen many times); ``draft`` skips the training
    and uses that model; without shards the prompts are random ids. ``hf=False`` skips the Hugging
    Face comparison, ``speculative=False`` the speculative part. ``threads`` sets torch's intra-op
    threads for the run (restored after); ``None`` keeps the current setting.
    """
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be an integer >= 1 (got {repeat!r})")
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch_sizes must be positive integers (got {batch_sizes})")
    if max(prompt_tokens, long_prompt_tokens) + new_tokens > context:
        raise ValueError(
            f"{max(prompt_tokens, long_prompt_tokens)} prompt + {new_tokens} new tokens do not fit "
            f"a context of {context}"
        )
    import transformers

    target, source = _load(model)
    if (
        shards_dir is None
        and isinstance(model, (str, Path))
        and (Path(model).parent / "shards" / "shards.json").is_file()
    ):
        shards_dir = Path(model).parent / "shards"
    shards_dir = Path(shards_dir) if shards_dir is not None else None
    if speculative and draft is None and shards_dir is None:
        raise ValueError(
            "speculative decoding needs a draft model or the shards to train one on "
            "(pass draft=..., shards_dir=..., or speculative=False)"
        )

    def say(message: str) -> None:
        if progress:
            print(message, file=sys.stderr, flush=True)

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        bench_config = dataclasses.replace(target.config, context=context)
        random_model = GPT(bench_config).eval()  # same shape, longer context, random weights
        cache_rows, hf_rows = _decoding(
            random_model, batch_sizes, prompt_tokens, long_prompt_tokens, new_tokens, repeat, hf, seed, say
        )
        spec = None
        if speculative:
            spec = _speculative(
                target,
                draft,
                shards_dir,
                spec_splits,
                spec_ks,
                spec_prompts,
                spec_prompt_tokens,
                spec_new_tokens,
                draft_steps,
                repeat,
                seed,
                progress,
                say,
            )
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)

    short = [r for r in cache_rows if r["prompt_tokens"] == prompt_tokens]
    one = next((r for r in short if r["batch_size"] == 1), short[0])
    big = max(short, key=lambda r: r["batch_size"])
    return {
        "device": "cpu",
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": used_threads,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "model": source,
        "model_config": target.config.to_dict(),
        "model_params": target.num_params(),
        "bench_context": context,
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "repeat": repeat,
        "kv_cache": cache_rows,
        "batching": {
            "batch_size": big["batch_size"],
            "tokens_per_s": big["cache_tokens_per_s"],
            "batch1_tokens_per_s": one["cache_tokens_per_s"],
            "speedup": round(big["cache_tokens_per_s"] / one["cache_tokens_per_s"], 2),
        },
        "vs_hf": hf_rows,
        "speculative": spec,
        "loadavg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "goals": {
            "kv_cache": {str(b): g for b, g in GOALS["kv_cache"].items()},
            "batching": GOALS["batching"],
            "vs_hf": GOALS["vs_hf"],
        },
    }


def _goal(value: float, goal: float | None) -> str:
    if goal is None:
        return ""
    return f"≥ {goal:g}x {'✓' if value >= goal else '✗'}"


SPLIT_NAMES = {"val": "held-out text", "train": "training text", "random": "random ids"}


def to_markdown(results: dict) -> str:
    """The benchmark as Markdown tables for the inference page, with what was measured below each.

    >>> r = {"cpu": "Some CPU", "torch_threads": 1, "model_params": 1000, "bench_context": 512, "prompt_tokens": 16,
    ...      "new_tokens": 256, "repeat": 3, "torch_version": "2.0", "transformers_version": "5.0",
    ...      "kv_cache": [{"batch_size": 1, "prompt_tokens": 16, "cache_tokens_per_s": 600.0,
    ...                    "no_cache_tokens_per_s": 100.0, "speedup": 6.0, "same_tokens": True}],
    ...      "batching": {"batch_size": 1, "tokens_per_s": 600.0, "batch1_tokens_per_s": 600.0, "speedup": 1.0},
    ...      "vs_hf": [], "speculative": None, "goals": {"kv_cache": {"1": 5.0}, "batching": 3.0, "vs_hf": 1.0}}
    >>> print(to_markdown(r).splitlines()[2])
    | 1 | 16 | 100 | 600 | **6.0x** | ≥ 5x ✓ |
    """
    r, goals = results, results["goals"]
    setup = (
        f"Decoding {r['new_tokens']} new tokens per row with the {r['model_params']:,}-parameter architecture, "
        f"context {r['bench_context']}, random weights (the cost of a step does not depend on the weights), "
        f"greedy, no end token; fp32 on {r['cpu']} with {r['torch_threads']} torch thread(s), median of "
        f"{r['repeat']} runs (torch {r['torch_version']}, transformers {r['transformers_version']})."
    )
    lines = [
        "| Batch | Prompt (tokens) | No cache (tokens/s) | KV cache (tokens/s) | Speedup | Goal |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for row in r["kv_cache"]:
        goal = goals["kv_cache"].get(str(row["batch_size"]))
        lines.append(
            f"| {row['batch_size']} | {row['prompt_tokens']} | {row['no_cache_tokens_per_s']:,.0f} "
            f"| {row['cache_tokens_per_s']:,.0f} | **{row['speedup']:.1f}x** | {_goal(row['speedup'], goal)} |"
        )
    same = all(row["same_tokens"] for row in r["kv_cache"])
    lines += ["", f"{setup} With and without the cache the tokens are {'identical' if same else 'NOT identical'}.", ""]
    b = r["batching"]
    lines += [
        f"Batch {b['batch_size']} vs batch 1, KV cache: {b['tokens_per_s']:,.0f} vs {b['batch1_tokens_per_s']:,.0f} "
        f"new tokens/s, **{b['speedup']:.1f}x**"
        + (f" ({_goal(b['speedup'], goals['batching'])})." if b["batch_size"] == 8 else "."),
        "",
    ]
    if r["vs_hf"]:
        lines += [
            "| Batch | llmkb loop + GPT (tokens/s) | HF `generate` + Llama (tokens/s) | Ours / HF | Goal "
            "| llmkb loop + HF Llama (tokens/s) | Loops only, ours / HF |",
            "|---:|---:|---:|---:|---|---:|---:|",
        ]
        for row in r["vs_hf"]:
            lines.append(
                f"| {row['batch_size']} | {row['ours_tokens_per_s']:,.0f} | {row['hf_tokens_per_s']:,.0f} "
                f"| **{row['ratio']:.2f}x** | {_goal(row['ratio'], goals['vs_hf'])} "
                f"| {row['ours_loop_hf_model_tokens_per_s']:,.0f} | {row['loop_ratio']:.2f}x |"
            )
        same = all(row["same_tokens"] for row in r["vs_hf"])
        lines += [
            "",
            f"Prompts of {r['prompt_tokens']} tokens; the same weights in both (`to_hf`), KV cache on both "
            f"sides; the tokens are {'identical' if same else 'NOT identical'}.",
            "",
        ]
    s = r["speculative"]
    if s:
        lines += [
            "| Prompts | Method | Tokens/s | Speedup | Predicted | Acceptance | Tokens per target pass "
            "| Target passes | Draft passes | Same tokens |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for text in s["texts"]:
            name = SPLIT_NAMES.get(text["split"], text["split"])
            lines.append(
                f"| {name} | target alone | {text['baseline_tokens_per_s']:,.0f} | 1.00x | 1.00x | | 1.00 "
                f"| {s['prompts'] * s['new_tokens']} | | |"
            )
            for run in text["runs"]:
                lines.append(
                    f"| {name} | speculative, k = {run['k']} | {run['tokens_per_s']:,.0f} "
                    f"| **{run['speedup']:.2f}x** | {run['predicted_speedup']:.2f}x | {run['acceptance_rate']:.0%} "
                    f"| {run['tokens_per_target_pass']:.2f} | {run['target_forward_passes']} "
                    f"| {run['draft_forward_passes']} | {'yes' if run['identical'] else 'NO'} |"
                )
        verify = ", ".join(f"{int(k) + 1} tokens {ms:.2f} ms" for k, ms in s["verify_step_ms"].items())
        trained = (
            f", trained {s['draft_steps']} steps in {s['draft_train_s']:.0f} s (val loss {s['draft_val_loss']:.2f})"
            if s.get("draft_val_loss") is not None
            else ""
        )
        lines += [
            "",
            f"Target {s['target_params']:,} parameters, draft {s['draft_params']:,}{trained}. "
            f"{s['prompts']} prompts of {s['prompt_tokens']} tokens each, continued by {s['new_tokens']} "
            "new tokens, no end token, batch 1. "
            f"One forward pass on a filled cache: target 1 token {s['target_step_ms']:.2f} ms, {verify}; "
            f"draft 1 token {s['draft_step_ms']:.2f} ms. *Predicted*: the speedup these costs give for the "
            "counted passes, new tokens x (target, 1 token) / (target passes x (target, k + 1 tokens) + "
            "draft passes x (draft, 1 token)).",
        ]
    return "\n".join(lines) + "\n"
