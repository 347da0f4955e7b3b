"""Run every registered stage in order and print the report card.

In: a run name and a profile. Out: every stage's folder under ``runs/<run>/`` and
``runs/<run>/report_card.json`` (each stage's key numbers), which the site's home page shows.
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
    for name, metrics in card["stages"].items():
        table.add_row(name, ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items()))
    table.caption = f"total wall time {card['wall_s']} s"
    return table


def report_markdown(card: dict) -> str:
    """The report card as a Markdown table (the site's home page includes it)."""
    lines = [
        f"Run `{card['run']}`, {card['profile']} profile, {card['wall_s']} s in all.",
        "",
        "| stage | key numbers |",
        "|---|---|",
    ]
    for name, metrics in card["stages"].items():
        lines.append(f"| {name} | " + ", ".join(f"{k} = {_fmt(v)}" for k, v in metrics.items()) + " |")
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
