"""Field checks for config dataclasses: the rules each config's ``__post_init__`` applies.

In: a config object and the names of some of its fields. Out: nothing when the values are fine, else
a ValueError naming the config class, the field and the bad value, e.g.
``PretrainConfig.lr must be > 0, got -0.001``.

Every config checks itself in ``__post_init__`` (as trl's configs do), so none can exist in an
invalid state: not one built directly, by a profile, by ``--set FIELD=VALUE`` or by
``dataclasses.replace``. Torch-free, so the stage configs that use it stay cheap to import.
"""

from __future__ import annotations

from collections.abc import Iterable


def require(config: object, name: str, ok: bool, expected: str) -> None:
    """Raise unless ``ok``: ``<Class>.<name> must be <expected>, got <value>``.

    >>> from dataclasses import make_dataclass
    >>> require(make_dataclass("Toy", [("n", int)])(0), "n", False, ">= 1")
    Traceback (most recent call last):
    ValueError: Toy.n must be >= 1, got 0
    """
    if not ok:
        raise ValueError(f"{type(config).__name__}.{name} must be {expected}, got {getattr(config, name)!r}")


def positive(config: object, *names: str) -> None:
    """Each field is > 0 (``not > 0`` also catches NaN)."""
    for name in names:
        require(config, name, getattr(config, name) > 0, "> 0")


def non_negative(config: object, *names: str) -> None:
    """Each field is >= 0."""
    for name in names:
        require(config, name, getattr(config, name) >= 0, ">= 0")


def fraction(config: object, *names: str) -> None:
    """Each field is in [0, 1]."""
    for name in names:
        require(config, name, 0 <= getattr(config, name) <= 1, "in [0, 1]")


def one_of(config: object, name: str, choices: Iterable) -> None:
    """The field is one of ``choices``."""
    choices = list(choices)
    require(config, name, getattr(config, name) in choices, "one of " + ", ".join(map(repr, choices)))


def integer(config: object, *names: str, minimum: int) -> None:
    """Each field is an int (not a bool) of at least ``minimum``: for values typed in by hand, as 2.5 beams."""
    for name in names:
        value = getattr(config, name)
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        require(config, name, ok, f"an integer >= {minimum}")


def attention_heads(config: object, d_model: int, n_head: int, n_kv_head: int) -> None:
    """The head layout a GPT can be built with: whole, even-sized heads, groups of query heads per KV head.

    Shared by :class:`~llmkb.model.gpt.ModelConfig` and the stage configs that describe one, so a
    bad shape is caught where it is set rather than when the model is built.
    """
    name = type(config).__name__
    if d_model % n_head:
        raise ValueError(f"{name}: d_model {d_model} is not divisible by n_head {n_head}")
    if n_head % n_kv_head:
        raise ValueError(f"{name}: n_head {n_head} is not a multiple of n_kv_head {n_kv_head}")
    if (d_model // n_head) % 2:
        raise ValueError(f"{name}: head size d_model / n_head = {d_model // n_head} must be even for RoPE")
