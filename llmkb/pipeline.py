"""Run every registered stage in order and print the report card.

In: a run name and a profile. Out: every stage's folder under ``runs/<run>/`` and
``runs/<run>/report_card.json`` (every stage's metrics); the terminal and the site's home page show
the key numbers of each (:data:`KEY_NUMBERS`) and a few plots (:data:`CARD_PLOTS`).
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from llmkb.io import read_json, write_json
from llmkb.stages import RunDir, run_stage, stages


def run_pipeline(run: RunDir, profile: str = "default", console: Console | None = None) -> dict:
    """Run all stages into ``run``; return the report card (also written as JSON)."""
    console = console or Console()
    t0 = time.perf_counter()
    for stage in stages():
        console.rule(f"[bold]{stage.name}[/bold]: {stage.summary}")
        run_stage(stage.name, run, profile)
    card = collect_card(run)
    card["wall_s"] = round(time.perf_counter() - t0, 2)
    write_json(run.root / "report_card.json", card)
    console.print(report_table(card))
    console.print(f"report card: {run.root / 'report_card.json'}")
    return card


def collect_card(run: RunDir) -> dict:
    """The report card of a run folder: every finished stage's metrics, in pipeline order."""
    card = {"run": run.root.name, "profile": "?", "stages": {}}
    for stage in stages():
        folder = run.root / stage.name
        if (folder / "metrics.json").exists():
            card["stages"][stage.name] = read_json(folder / "metrics.json")
            card["profile"] = read_json(folder / "config.json").get("profile", "?")
    card["wall_s"] = round(sum(m.get("wall_s", 0) for m in card["stages"].values()), 2)
    return card


def report_table(card: dict) -> Table:
    """The report card as a terminal table: one row per stage, its key numbers in one cell."""
    table = Table(title=f"llmkb report card: run {card['run']!r} ({card['profile']} profile)")
    table.add_column("stage")
    table.add_column("key numbers")
    table.add_column("time", justify="right")
    for name, metrics in card["stages"].items():
        table.add_row(name, key_numbers(name, metrics), f"{metrics.get('wall_s', 0):,.0f} s")
    table.caption = f"total wall time {card['wall_s']} s (every metric: report_card.json)"
    return table


# The numbers a reader wants first from each stage: (metric, how to say it). A stage not listed
# shows all its metrics; every metric stays in report_card.json.
KEY_NUMBERS = {
    "data": [("crawled", "{:,} pages crawled"), ("kept", "{:,} kept"), ("megabytes", "{:.2f} MB of text")],
    "tokenizer": [("vocab_size", "{:,} tokens"), ("heldout_bytes_per_token", "{:.2f} bytes per token on held-out text")],
    "pretrain": [("params", "{:,} parameters"), ("steps", "{:,} steps"), ("val_perplexity", "held-out perplexity {:.0f}"),
                 ("unigram_val_perplexity", "(unigram baseline {:.0f})")],
    "sft": [("sft_format", "format followed {:.0%}"), ("base_format", "(base model {:.0%})"),
            ("sft_correct", "answers right {:.0%}"), ("identity_sft", "says its own name {:.0%}")],
    "reward": [("judgements", "{:,} labeler judgements"), ("test_accuracy", "reward model held-out accuracy {:.0%}")],
    "ppo": [("win_rate_vs_sft", "win rate vs SFT {:.2f} with the KL penalty"),
            ("no_kl_win_rate_vs_sft", "{:.2f} without it"), ("no_kl_kl_end", "(KL {:.1f}: reward hacking)")],
    "dpo": [("eval_win_rate", "win rate vs SFT {:.2f}"), ("eval_tie", "ties {:.0%}")],
    "grpo": [("steps_accuracy", "sums right with worked steps {:.0%}"), ("direct_accuracy", "direct answers {:.0%}"),
             ("calc_accuracy", "with a calculator tool {:.0%}"),
             ("before_sampled_accuracy", "sampled {:.0%}"), ("after_sampled_accuracy", "-> {:.0%} after GRPO")],
    "psychology": [("never_before_made_up", "made-up answers about unknown people {:.0%}"),
                   ("never_after_refused", "refused after training refusals {:.0%}"),
                   ("frequent_sft_after_right", "known people still right {:.0%}")],
}  # fmt: skip
# Plots from the run folder that the home page shows under the table: (stage, file, caption).
CARD_PLOTS = [("pretrain", "loss.png", "pretraining loss"), ("sft", "loss.png", "SFT loss"),
              ("ppo", "reward_hacking.png", "PPO: reward model vs the labeler"), ("grpo", "grpo.png", "GRPO rewards")]  # fmt: skip


def key_numbers(stage: str, metrics: dict) -> str:
    """One stage's key numbers in words, from :data:`KEY_NUMBERS` (all metrics for a stage not listed there).

    Examples:
        >>> key_numbers("dpo", {"eval_win_rate": 0.4525, "eval_tie": 0.785, "steps": 150})
        'win rate vs SFT 0.45, ties 78%'
        >>> key_numbers("new", {"a": 1, "b": 0.5})
        'a = 1, b = 0.5'
    """
    if stage not in KEY_NUMBERS:
        return ", ".join(f"{k} = {_fmt(v)}" for k, v in metrics.items() if k != "wall_s")
    return ", ".join(text.format(metrics[key]) for key, text in KEY_NUMBERS[stage] if metrics.get(key) is not None)


def report_markdown(card: dict, plots: dict[str, str] | None = None) -> str:
    """The report card as Markdown for the home page: a table of key numbers and times, then ``plots``.

    ``plots`` maps an image path (relative to the page) to its caption.
    """
    lines = [
        f"Run `{card['run']}`, {card['profile']} profile; the stages' own times add up to {card['wall_s']:,.0f} s.",
        "",
        "| stage | key numbers | time |",
        "|---|---|---:|",
    ]
    for name, metrics in card["stages"].items():
        lines.append(f"| {name} | {key_numbers(name, metrics)} | {metrics.get('wall_s', 0):,.0f} s |")
    for path, caption in (plots or {}).items():
        lines += ["", f"![{caption}]({path})"]
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    """Short numbers for a table.

    >>> _fmt(0.123456), _fmt(1234567), _fmt("x")
    ('0.1235', '1,234,567', 'x')
    """
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
