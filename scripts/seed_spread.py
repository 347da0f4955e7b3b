"""How much a stage's key numbers move with its seed: the spread a page's conclusion must survive.

In: a finished run (``runs/<run>/``) and the stages to measure. Out: for each stage and seed, a
sibling run ``runs/<run>-seed<N>/`` (the finished stages it needs are linked, not copied), and a
table of each numeric metric's value per seed with its min and max, printed and written as JSON.

    OMP_NUM_THREADS=1 python scripts/seed_spread.py --run default --stages grpo psychology --seeds 0 1 2

Seed 0 is the run itself, and a seed whose sibling run already holds the stage's metrics is read, not
rerun (so seeds can run as separate processes side by side, then one call tabulates them all). A
different seed changes a stage's own random draws (initialization, data order, sampling): about
what another CPU's float results do to a trajectory, which is why the pages claim only what holds
across the seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from llmkb.io import write_json
from llmkb.stages import RunDir, get_stage, run_stage


def seeded_run(run: RunDir, stage: str, seed: int) -> RunDir:
    """``runs/<run>-seed<seed>/`` with the stages ``stage`` needs linked in from ``run``."""
    sibling = RunDir(run.root.parent / f"{run.root.name}-seed{seed}")
    sibling.root.mkdir(parents=True, exist_ok=True)
    for name in get_stage(stage).needs + ("data", "tokenizer", "pretrain", "sft"):
        link = sibling.root / name
        if not link.exists():
            link.symlink_to((run.root / name).resolve(), target_is_directory=True)
    return sibling


def flatten(metrics: dict, prefix: str = "") -> dict:
    """Nested metrics as one level of dotted keys.

    >>> flatten({"search": {"never": {"refused": 1.0}}, "steps": 600})
    {'search.never.refused': 1.0, 'steps': 600}
    """
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def is_timing(key: str) -> bool:
    name = key.rsplit(".", 1)[-1]
    return name.endswith("_s") or name.endswith("_per_step") or "per_s" in name or "tokens_per" in name


def spread(rows: dict[int, dict]) -> dict[str, dict]:
    """Per numeric metric (nested ones by dotted key): the value per seed, min, median, max; timings left out.

    >>> spread({0: {"acc": 0.5, "wall_s": 3}, 1: {"acc": 0.7, "wall_s": 4}})
    {'acc': {'per_seed': {0: 0.5, 1: 0.7}, 'min': 0.5, 'median': 0.6, 'max': 0.7}}
    """
    flat = {seed: flatten(metrics) for seed, metrics in rows.items()}
    first = next(iter(flat.values()))
    keys = [k for k, v in first.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and not is_timing(k)]
    out = {}
    for key in keys:
        values = {seed: m[key] for seed, m in flat.items() if key in m}
        out[key] = {
            "per_seed": values,
            "min": min(values.values()),
            "median": statistics.median(values.values()),
            "max": max(values.values()),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="default")
    parser.add_argument("--runs-root", default="runs")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--stages", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default=None, help="JSON file (default: runs/<run>/seed_spread.json)")
    args = parser.parse_args()
    run = RunDir.named(args.run, args.runs_root)
    report = {}
    for stage in args.stages:
        rows = {}
        for seed in args.seeds:
            sibling = seeded_run(run, stage, seed) if seed else run
            if (sibling.root / stage / "metrics.json").exists():  # seed 0 is the run; a finished seed is reused
                rows[seed] = sibling.metrics(stage)
            else:
                rows[seed] = run_stage(stage, sibling, args.profile, seed=seed)
            print(f"{stage} seed {seed}: done", flush=True)
        report[stage] = spread(rows)
        for key, s in report[stage].items():
            values = " ".join(f"{v:g}" for v in s["per_seed"].values())
            print(f"{stage:12} {key:32} {values:30} min {s['min']:g}  max {s['max']:g}")
    write_json(Path(args.out) if args.out else run.root / "seed_spread.json", report)
    print(json.dumps({s: {k: [v["min"], v["max"]] for k, v in r.items()} for s, r in report.items()}))


if __name__ == "__main__":
    main()
