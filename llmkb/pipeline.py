"""Run every registered stage and print the report card.

In: a run folder, a profile and how many stages may run at once (``jobs``). Out: every stage's
folder under ``runs/<run>/`` and ``runs/<run>/report_card.json`` (every stage's metrics, the
pipeline's wall time, the sum of the stages' own times and ``jobs``); the terminal and the site's
home page show the key numbers of each stage (:data:`KEY_NUMBERS`) and a few plots (:data:`CARD_PLOTS`).

With ``jobs == 1`` the stages run one after another in this process. With more, each stage runs as
``llmkb <stage>`` in a subprocess as soon as the stages it needs have finished (after SFT, several
stages need nothing else), its output in ``runs/<run>/<stage>/log.txt`` (:func:`run_parallel`). A
stage that starts alone (data, tokenizer, pretraining: every other stage waits for them) gets all
the cores as torch threads; stages that run side by side split them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmkb.doctor import machine, machine_line
from llmkb.io import read_json, write_json
from llmkb.stages import RunDir, run_stage, stages

POLL_S = 0.2  # how often the scheduler checks its children: a finished stage's dependents start this soon after
STOP_GRACE_S = 5.0  # after Ctrl-C, how long children get to exit on SIGTERM before they are killed
LOG_TAIL = 20  # lines of a failed stage's log shown in the terminal


def default_jobs() -> int:
    """Stages run at once by default: 2 on a machine with 2 or more cores (each stage uses one torch thread), else 1."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def run_pipeline(
    run: RunDir, profile: str = "default", console: Console | None = None, jobs: int | None = None
) -> dict:
    """Run all stages into ``run``, up to ``jobs`` at once (default: :func:`default_jobs`); return the report card.

    The card is also written as JSON, with the stages that finished even when some failed; then a
    failure raises ``RuntimeError`` naming the failed stages, their logs and the stages skipped.
    """
    console = console or Console()
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    t0 = time.perf_counter()
    status = _run_in_process(run, profile, console) if jobs == 1 else _run_subprocesses(run, profile, jobs, console)
    card = collect_card(run, [name for name, state in status.items() if state == "finished"])
    card.update(wall_s=round(time.perf_counter() - t0, 2), jobs=jobs)
    card["machine"] = machine()  # the wall times hold for this machine: name it and its speed per core
    write_json(run.root / "report_card.json", card)
    console.print(report_table(card))
    console.print(f"report card: {run.root / 'report_card.json'}")
    if "failed" in status.values():
        raise RuntimeError(_failure_message(status, lambda name: run.root / name / "log.txt"))
    return card


def _run_in_process(run: RunDir, profile: str, console: Console) -> dict[str, str]:
    """One stage after another in this process, with their progress bars in the terminal; the first error raises."""
    all_stages = stages()
    for stage in all_stages:
        console.rule(f"[bold]{stage.name}[/bold]: {stage.summary}")
        run_stage(stage.name, run, profile)
    return dict.fromkeys((stage.name for stage in all_stages), "finished")


def _run_subprocesses(run: RunDir, profile: str, jobs: int, console: Console) -> dict[str, str]:
    """Every stage as ``python -m llmkb <stage>`` (the same config as :func:`run_stage`), through
    :func:`run_parallel`."""
    all_stages = stages()

    def command(name: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llmkb",
            name,
            "--run",
            run.root.name,
            "--runs-root",
            str(run.root.parent),
            "--profile",
            profile,
        ]

    console.print(f"running up to {jobs} stages at once; each stage's output goes to {run.root}/<stage>/log.txt")
    by_priority = sorted(all_stages, key=lambda s: -s.priority)  # stable: pipeline order among equals
    return run_parallel(
        [s.name for s in by_priority],
        {s.name: s.needs for s in all_stages},
        command,
        lambda name: run.root / name / "log.txt",
        jobs,
        console,
    )


def _failure_message(status: dict[str, str], log_path: Callable[[str], Path]) -> str:
    failed = [f"{name} (log: {log_path(name)})" for name, state in status.items() if state == "failed"]
    skipped = [name for name, state in status.items() if state == "skipped"]
    return (
        f"stages failed: {', '.join(failed)}; skipped because they need them: {', '.join(skipped) or 'none'}; "
        "the report card holds the stages that finished"
    )


@dataclass
class _Child:
    process: subprocess.Popen
    started: float
    task: TaskID  # its line in the live status


def run_parallel(
    names: list[str],
    needs: dict[str, tuple[str, ...]],
    command: Callable[[str], list[str]],
    log_path: Callable[[str], Path],
    jobs: int,
    console: Console,
) -> dict[str, str]:
    """Run each of ``names`` as the subprocess ``command(name)``, up to ``jobs`` at once; return each one's status.

    A name starts once every name it ``needs`` has finished (several ready ones start in the order of
    ``names``: put the ones to start first, first); its stdout and stderr go to ``log_path(name)``.
    Status: "finished", "failed" (it exited non-zero) or "skipped" (something it needs, directly or
    not, failed or never ran).
    Ctrl-C terminates the running children and re-raises.
    """
    status = dict.fromkeys(names, "waiting")
    running: dict[str, _Child] = {}
    env = _child_env(jobs)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        try:
            while True:
                ready = _ready(names, needs, status)
                for name in ready[: jobs - len(running)]:
                    # Alone: nothing runs and nothing else is ready, so nothing can start before this
                    # stage ends. It gets every core as torch threads (measured on 2 idle cores: pretraining
                    # 1.5x faster than on one thread, a little faster than two DDP processes, same losses).
                    alone = not running and len(ready) == 1
                    child_env = {**env, "OMP_NUM_THREADS": str(os.cpu_count() or 1)} if alone else env
                    running[name] = _start(name, command(name), log_path(name), child_env, list(running), progress)
                    status[name] = "running"
                if not running:
                    break
                time.sleep(POLL_S)
                for name in [n for n, child in running.items() if child.process.poll() is not None]:
                    status[name] = _finish(name, running.pop(name), log_path(name), progress)
        except KeyboardInterrupt:
            _stop([child.process for child in running.values()])
            raise
    skipped = [name for name, state in status.items() if state == "waiting"]
    if skipped:
        console.print(f"skipped (they need a stage that failed): {', '.join(skipped)}")
    return {name: "skipped" if state == "waiting" else state for name, state in status.items()}


def _ready(names: list[str], needs: dict[str, tuple[str, ...]], status: dict[str, str]) -> list[str]:
    """The waiting names whose needs have all finished, in the order of ``names``."""
    return [n for n in names if status[n] == "waiting" and all(status.get(d) == "finished" for d in needs.get(n, ()))]


def threads_per_job(jobs: int) -> str:
    """Torch threads for each of ``jobs`` processes side by side: ``OMP_NUM_THREADS`` when set, else the cores split."""
    return os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))


def _child_env(jobs: int) -> dict[str, str]:
    """This environment, unbuffered (so a log shows a stage's output as it goes), with the cores split among
    the jobs."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads_per_job(jobs)}


def _start(name: str, argv: list[str], log: Path, env: dict[str, str], others: list[str], progress: Progress) -> _Child:
    """Start ``argv`` with its output in ``log``; say so, and which ``others`` are running beside it."""
    progress.console.print(f"start {name}" + (f" (with: {', '.join(others)})" if others else ""))
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:  # the child writes through its own copy of the file
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    return _Child(process, time.perf_counter(), progress.add_task(name))


def _finish(name: str, child: _Child, log: Path, progress: Progress) -> str:
    """Report a child that exited; on failure, the end of its log. Returns its status."""
    progress.remove_task(child.task)
    seconds = time.perf_counter() - child.started
    if child.process.returncode == 0:
        progress.console.print(f"end {name}: finished in {seconds:,.0f} s")
        return "finished"
    progress.console.print(
        f"[bold red]end {name}: FAILED[/bold red] in {seconds:,.0f} s (exit code {child.process.returncode})"
    )
    progress.console.print("\n".join(log_tail(log)), markup=False, highlight=False)
    progress.console.print(f"its whole log: {log}")
    return "failed"


def log_tail(path: Path, lines: int = LOG_TAIL) -> list[str]:
    """The last ``lines`` lines of a log as a terminal shows them: of a progress bar redrawn with ``\\r``,
    its last state.

    >>> import tempfile; log = Path(tempfile.mkdtemp()) / "log.txt"
    >>> _ = log.write_text("a\\n\\rstep 1\\rstep 2\\nb\\nc\\n")
    >>> log_tail(log, 3)
    ['step 2', 'b', 'c']
    """
    text = path.read_bytes().decode("utf-8", errors="replace")  # read_text would turn each "\r" into a line break
    return [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.rstrip("\n").split("\n")[-lines:]]


def _stop(processes: list[subprocess.Popen]) -> None:
    """Terminate the children, then kill those still alive after :data:`STOP_GRACE_S`."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def collect_card(run: RunDir, names: Collection[str] | None = None) -> dict:
    """The report card of a run folder: every finished stage's metrics (of ``names`` only, if given), in pipeline order.

    ``stages_s`` is the sum of the stages' own times; so is ``wall_s`` here (:func:`run_pipeline`
    replaces it with the time the whole pipeline took).
    """
    card = {"run": run.root.name, "profile": "?", "stages": {}}
    for stage in stages():
        folder = run.root / stage.name
        if (folder / "metrics.json").exists() and (names is None or stage.name in names):
            card["stages"][stage.name] = read_json(folder / "metrics.json")
            card["profile"] = read_json(folder / "config.json").get("profile", "?")
    card["stages_s"] = card["wall_s"] = round(sum(m.get("wall_s", 0) for m in card["stages"].values()), 2)
    return card


def report_table(card: dict) -> Table:
    """The report card as a terminal table: one row per stage, its key numbers in one cell."""
    table = Table(title=f"llmkb report card: run {card['run']!r} ({card['profile']} profile)")
    table.add_column("stage")
    table.add_column("key numbers")
    table.add_column("time", justify="right")
    for name, metrics in card["stages"].items():
        table.add_row(name, key_numbers(name, metrics), f"{metrics.get('wall_s', 0):,.0f} s")
    machine_note = f" on {machine_line(card['machine'])}" if "machine" in card else ""
    table.caption = f"{time_summary(card)}{machine_note} (every metric: report_card.json)"
    return table


# The numbers a reader wants first from each stage: (metric, how to say it). A stage not listed
# shows all its metrics; every metric stays in report_card.json.
KEY_NUMBERS = {
    "data": [("crawled", "{:,} pages crawled"), ("kept", "{:,} kept"), ("megabytes", "{:.2f} MB of text")],
    "tokenizer": [
        ("vocab_size", "{:,} tokens"),
        ("heldout_bytes_per_token", "{:.2f} bytes per token on held-out text"),
    ],
    "pretrain": [
        ("params", "{:,} parameters"),
        ("steps", "{:,} steps"),
        ("val_perplexity", "held-out perplexity {:.0f}"),
        ("unigram_val_perplexity", "(unigram baseline {:.0f})"),
    ],
    "sft": [
        ("sft_format", "format followed {:.0%}"),
        ("base_format", "(base model {:.0%})"),
        ("sft_correct", "answers right {:.0%}"),
        ("identity_sft", "says its own name {:.0%}"),
    ],
    "reward": [("judgements", "{:,} labeler judgements"), ("test_accuracy", "reward model held-out accuracy {:.0%}")],
    "ppo": [
        ("win_rate_vs_sft", "win rate vs SFT {:.2f} with the KL penalty"),
        ("no_kl_win_rate_vs_sft", "{:.2f} without it"),
        ("no_kl_kl_end", "(KL {:.1f}: reward hacking)"),
    ],
    "dpo": [("eval_win_rate", "win rate vs SFT {:.2f}"), ("eval_tie", "ties {:.0%}")],
    "grpo": [
        ("steps_accuracy", "sums right with worked steps {:.0%}"),
        ("direct_accuracy", "direct answers {:.0%}"),
        ("calc_accuracy", "with a calculator tool {:.0%}"),
        ("before_sampled_accuracy", "sampled {:.0%}"),
        ("after_sampled_accuracy", "-> {:.0%} after GRPO"),
    ],
    "psychology": [
        ("never_before_made_up", "made-up answers about unknown people {:.0%}"),
        ("never_after_refused", "refused after training refusals {:.0%}"),
        ("frequent_sft_after_right", "known people still right {:.0%}"),
    ],
    "search": [
        ("once_found", "searches found {:.0%} of once-mentioned people"),
        ("once_with_right", "answered right {:.0%}"),
        ("once_without_right", "(without the tool {:.0%})"),
        ("never_with_refused", "unknown people refused {:.0%}"),
        ("frequent_sft_called", "searched for known people {:.0%}"),
    ],
    "spelling": [
        ("taught_spell_several", "taught words spelled {:.0%}"),
        ("held_out_spell_one", "new one-token words {:.0%}"),
        ("held_out_spell_several", "new words of several tokens {:.0%}"),
    ],
}
# Plots from the run folder that the home page shows under the table: (stage, file, caption).
CARD_PLOTS = [
    ("pretrain", "loss.png", "pretraining loss"),
    ("sft", "loss.png", "SFT loss"),
    ("ppo", "reward_hacking.png", "PPO: reward model vs the labeler"),
    ("grpo", "grpo.png", "GRPO rewards"),
]


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


def time_summary(card: dict) -> str:
    """How long a run took, in words: the stages' own times, and the pipeline's wall time where it differs.

    Examples:
        >>> time_summary({"stages_s": 789.6, "wall_s": 789.6})
        "the stages' own times add up to 790 s"
        >>> time_summary({"stages_s": 789.6, "wall_s": 612.2, "jobs": 2})
        "the pipeline took 612 s of wall time running up to 2 stages at once; the stages' own times add up to 790 s"
    """
    own = f"the stages' own times add up to {card['stages_s']:,.0f} s"
    if round(card["wall_s"]) == round(card["stages_s"]):
        return own
    at_once = f"running up to {card['jobs']} stages at once" if card.get("jobs", 1) > 1 else "one stage at a time"
    return f"the pipeline took {card['wall_s']:,.0f} s of wall time {at_once}; {own}"


def report_markdown(card: dict, plots: dict[str, str] | None = None) -> str:
    """The report card as Markdown for the home page: a table of key numbers and times, then ``plots``.

    ``plots`` maps an image path (relative to the page) to its caption.
    """
    lines = [
        f"Run `{card['run']}`, {card['profile']} profile; {time_summary(card)}.",
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
