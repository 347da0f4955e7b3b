"""mkdocs-macros module: numbers in page prose read from the run the site is built from.

In: a page that opts in (front matter ``render_macros: true``) and writes, for example,
``{{ metric("psychology", "never_after_refused") | pct }}``; the run folder named by the
environment ``llmkb docs build`` gives mkdocs (``LLMKB_RUNS_ROOT`` and ``LLMKB_RUN``, as for the
examples; ``runs/default`` when mkdocs runs alone). Out: the value from
``runs/<run>/<stage>/metrics.json`` (``metric``) or ``config.json`` (``setting``), formatted by
the ``pct`` filter (0.955 -> "95.5%"), the ``num`` filter (1352 -> "1,352", 3.0421 -> "3.04") or
the ``millions`` filter (1152000 -> "1.2M").

A missing run, stage, file or key fails the build with a message naming the page, the stage and
the key: a sentence must never render with a blank where its number was.

Pages render macros only when they ask to, because other pages show Jinja text (a chat
template's ``{% generation %}``) that must stay as written. On a page that renders macros,
literal Jinja goes inside ``{% raw %}...{% endraw %}``.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path


class MissingFigure(KeyError):
    """A page asked for a number the run does not hold."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return self.args[0]


def run_folder(project: Path) -> Path:
    """The run being built: the folder ``llmkb docs build`` named, else ``runs/<profile or default>``."""
    runs_root = Path(os.environ.get("LLMKB_RUNS_ROOT") or project / "runs")
    return runs_root / os.environ.get("LLMKB_RUN", os.environ.get("LLMKB_PROFILE", "default"))


def load(path: Path) -> dict:
    """A run file, parsed once while it is unchanged: a page quotes many figures from the same few files
    (keyed by modification time too, so ``mkdocs serve`` picks up a stage that was run again)."""
    return _parsed(path, path.stat().st_mtime_ns)


@functools.cache
def _parsed(path: Path, mtime_ns: int) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def lookup(run: Path, stage: str, filename: str, key: str, page: str) -> object:
    """``key`` (dots step into nested objects) of ``run/stage/filename``; MissingFigure names what is missing."""
    path = run / stage / filename
    where = f"{page} asks for stage {stage!r}, key {key!r}"
    if not path.is_file():
        raise MissingFigure(f"{where}: {path} does not exist (has stage {stage!r} run in {run}?)")
    value = load(path)
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            known = ", ".join(sorted(value)) if isinstance(value, dict) else type(value).__name__
            raise MissingFigure(f"{where}: {path} has no {part!r} (it has: {known})")
        value = value[part]
    return value


def pct(value: float, digits: int = 1) -> str:
    """A share as a percentage, trailing zeros dropped.

    >>> pct(0.955), pct(0.5), pct(0.1234, 2), pct(1)
    ('95.5%', '50%', '12.34%', '100%')
    """
    return f"{num(100 * value, digits)}%"


def num(value: float, digits: int | None = None) -> str:
    """A number with thousands separators; a fraction rounded to ``digits`` (default 2), trailing zeros dropped.

    >>> num(1352), num(3.0421), num(2.5), num(1234.5, 0), num(7.0)
    ('1,352', '3.04', '2.5', '1,234', '7')
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number to format, got {value!r}")
    if isinstance(value, int) or float(value).is_integer():
        return f"{round(value):,}"
    text = f"{value:,.{2 if digits is None else digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def millions(value: float) -> str:
    """A count in millions (parameter counts): two significant digits, whole millions from ten up.

    >>> millions(1_152_000), millions(151_872), millions(124_440_000)
    ('1.2M', '0.15M', '124M')
    """
    m = value / 1e6
    return f"{m:.2g}M" if m < 10 else f"{num(round(m))}M"


def define_env(env) -> None:
    """The hook mkdocs-macros calls: register the macros and filters above."""
    project = Path(env.conf.config_file_path).resolve().parent

    def page() -> str:
        return f"docs/{env.page.file.src_uri}" if env.page else "a page"

    @env.macro
    def metric(stage: str, key: str):
        """A number the stage measured: ``runs/<run>/<stage>/metrics.json``'s ``key``."""
        return lookup(run_folder(project), stage, "metrics.json", key, page())

    @env.macro
    def setting(stage: str, key: str):
        """A setting the stage ran with: ``runs/<run>/<stage>/config.json``'s ``key``."""
        return lookup(run_folder(project), stage, "config.json", key, page())

    env.filter(pct)
    env.filter(num)
    env.filter(millions)
