"""The stage registry and run folders: how stages hand off through files.

In: a stage name, a run name and a profile. Out: ``runs/<run>/<stage>/`` holding the stage's
artifacts, the ``config.json`` it ran with and the ``metrics.json`` of its key numbers.

Every stage module registers itself with :func:`register`; ``STAGE_MODULES`` lists them in
pipeline order, so importing this module stays cheap (torch is imported only when a stage runs).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmkb.io import read_json, write_json

# Pipeline order. Each module calls register() at import time.
STAGE_MODULES = [
    "llmkb.data.stage",
    "llmkb.tokenizer.stage",
    "llmkb.pretrain.stage",
    "llmkb.sft.stage",
    "llmkb.rl.stage",
    "llmkb.psychology.stage",
]

#: Profiles every config understands: "quick" for tests and CI, "default" for the main job (sized
#: for a 2-core CPU), "gpu" for one large GPU (stages without a GPU setting use their default).
PROFILES = ("quick", "default", "gpu")


class StageStopped(Exception):
    """A stage stopped early because it was asked to (e.g. ``--stop-after``); running it again resumes.

    Not an error, but the stage has not finished: no ``metrics.json`` is written, so later stages
    cannot take its half-made artifacts.
    """


@dataclass
class Stage:
    name: str  # also the folder name under runs/<run>/
    summary: str  # one line for `llmkb --help` and the report card
    config_cls: type  # a dataclass; its defaults are the "default" profile
    run: Callable[[Any, "RunDir"], dict]  # (config, run dir) -> key numbers for the report card
    needs: tuple[str, ...] = ()  # stages whose artifacts this one reads by default (run.require names them)
    profiles: dict[str, dict] = dataclasses.field(default_factory=dict)  # profile -> field overrides
    # When several stages are ready at once, the pipeline starts higher ones first: a long stage
    # started last would leave one core idle while it finishes alone.
    priority: int = 0

    def config(self, profile: str = "default", **overrides) -> Any:
        """The stage's config for ``profile``, with explicit ``overrides`` applied last."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        fields = {**self.profiles.get(profile, {}), **overrides}
        return self.config_cls(**fields)


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_value(annotation: Any, text: str) -> Any:
    """``text`` as a value of ``annotation`` (a config field's type); ValueError if it is not one.

    >>> parse_value(int, "8"), parse_value(float, "3e-4"), parse_value(bool, "no"), parse_value(int | None, "none")
    (8, 0.0003, False, None)
    >>> (parse_value(list[str], "a.txt,b.txt"), parse_value(tuple[str, ...], "q,v"),
    ...  parse_value(dict[str, int], "a:1,b:2"))
    (['a.txt', 'b.txt'], ('q', 'v'), {'a': 1, 'b': 2})
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() in ("none", "null") and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return parse_value(inner, text)
    if origin in (list, tuple):
        items = [parse_value(args[0] if args else str, part.strip()) for part in text.split(",") if part.strip()]
        return items if origin is list else tuple(items)
    if origin is dict:
        key_type, value_type = args or (str, str)
        pairs = [part.split(":", 1) for part in text.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"expected KEY:VALUE pairs separated by commas, got {text!r}")
        return {parse_value(key_type, k.strip()): parse_value(value_type, v.strip()) for k, v in pairs}
    if annotation is bool:
        if text.strip().lower() in _TRUE + _FALSE:
            return text.strip().lower() in _TRUE
        raise ValueError(f"expected one of {', '.join(_TRUE + _FALSE)}, got {text!r}")
    if annotation in (int, float, str):
        return annotation(text)
    raise ValueError(f"fields of type {annotation} cannot be set from the command line")


def type_name(annotation: Any) -> str:
    """How a field's type reads in messages: ``int``, ``list[str]``, ``int | None``."""
    return annotation.__name__ if isinstance(annotation, type) and not typing.get_args(annotation) else str(annotation)


def parse_override(stage: "Stage", text: str) -> tuple[str, Any]:
    """``FIELD=VALUE`` as (field, value), the value parsed by the type of ``stage``'s config field.

    An unknown field, a missing ``=`` or a value of the wrong type is a ValueError that says what was expected.

    >>> from dataclasses import make_dataclass
    >>> toy = Stage("toy", "a toy stage", make_dataclass("ToyConfig", [("n_layer", int, 2), ("lr", float, 1e-3)]),
    ...             run=None)
    >>> parse_override(toy, "n_layer=8"), parse_override(toy, "lr=0.01")
    (('n_layer', 8), ('lr', 0.01))
    >>> parse_override(toy, "layers=8")
    Traceback (most recent call last):
    ValueError: stage 'toy' has no config field 'layers'; its fields: lr, n_layer
    >>> parse_override(toy, "n_layer=eight")
    Traceback (most recent call last):
    ValueError: stage 'toy': field n_layer is int; cannot read 'eight' as one
    """
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    hints = typing.get_type_hints(stage.config_cls)
    if not sep or not name:
        raise ValueError(f"stage {stage.name!r}: expected FIELD=VALUE, got {text!r}")
    if name not in hints or name not in {f.name for f in dataclasses.fields(stage.config_cls)}:
        raise ValueError(f"stage {stage.name!r} has no config field {name!r}; its fields: {', '.join(sorted(hints))}")
    try:
        return name, parse_value(hints[name], value)
    except ValueError as e:
        raise ValueError(
            f"stage {stage.name!r}: field {name} is {type_name(hints[name])}; cannot read {value!r} as one"
        ) from e


_REGISTRY: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    _REGISTRY[stage.name] = stage
    return stage


def stages() -> list[Stage]:
    """All stages in pipeline order (the order of ``STAGE_MODULES``, whatever order they were imported in)."""
    for module in STAGE_MODULES:
        importlib.import_module(module)
    rank = {module: i for i, module in enumerate(STAGE_MODULES)}
    return sorted(_REGISTRY.values(), key=lambda stage: rank.get(stage.run.__module__, len(rank)))


def get_stage(name: str) -> Stage:
    by_name = {s.name: s for s in stages()}
    if name not in by_name:
        raise KeyError(f"no stage named {name!r}; stages: {', '.join(by_name)}")
    return by_name[name]


@dataclass
class RunDir:
    """``runs/<run>/``: one folder per stage. Stages find each other's artifacts through it."""

    root: Path

    @classmethod
    def named(cls, run: str = "default", runs_root: str | os.PathLike = "runs") -> "RunDir":
        return cls(Path(runs_root) / run)

    def stage(self, name: str) -> Path:
        """The folder of stage ``name`` (created on demand)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def require(self, name: str) -> Path:
        """The folder of a finished earlier stage; a clear error if it has not run yet."""
        path = self.root / name
        if not (path / "metrics.json").exists():
            raise FileNotFoundError(
                f"{path}: stage {name!r} has not finished in this run; run `llmkb {name} --run {self.root.name}` first"
            )
        return path

    def metrics(self, name: str) -> dict:
        return read_json(self.require(name) / "metrics.json")

    def config(self, name: str) -> Any:
        """The settings a finished stage ran with, as its config dataclass (``config.json`` less the profile)."""
        saved = read_json(self.require(name) / "config.json")
        fields = {f.name for f in dataclasses.fields(get_stage(name).config_cls)}
        return get_stage(name).config_cls(**{k: v for k, v in saved.items() if k in fields})


def run_stage(name: str, run: RunDir, profile: str = "default", **overrides) -> dict:
    """Run one stage into ``run``: save its config, call it, save its metrics (with wall time)."""
    stage = get_stage(name)
    config = stage.config(profile, **overrides)
    out = run.stage(name)
    main = os.environ.get("RANK", "0") == "0"  # under torchrun, process 0 alone writes the files
    if main:
        (out / "metrics.json").unlink(missing_ok=True)  # until this run finishes, the stage is not done
        write_json(out / "config.json", {"profile": profile, **dataclasses.asdict(config)})
    t0 = time.perf_counter()
    metrics = stage.run(config, run)
    metrics = {**metrics, "wall_s": round(time.perf_counter() - t0, 2)}
    if main:
        write_json(out / "metrics.json", metrics)
    return metrics
