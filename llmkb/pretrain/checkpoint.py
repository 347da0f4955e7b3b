"""Training checkpoints: model weights, optimizer state and progress, written so a crash loses nothing.

In: a model, its optimizer and a small state dict (step, model config, ...). Out: a folder

- ``model.safetensors`` the weights (a tied LM head is stored once, as the embedding);
- ``optimizer.pt`` AdamW's moments and step counts;
- ``state.json`` the step, the model config and whatever else the loop needs to resume.

The folder is written beside the old one under a temporary name and swapped in with renames, so an
interrupted save leaves the previous checkpoint intact. Loading checks that the checkpoint was made
for the same model shape and says which file and which field differ.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from llmkb.io import read_json, write_json

FILES = ("model.safetensors", "optimizer.pt", "state.json")


def save_checkpoint(
    folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, state: dict
) -> Path:
    """Write a checkpoint to ``folder`` atomically (temp folder, then rename over the old one)."""
    folder = Path(folder)
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_embeddings", False):
        weights.pop("lm_head.weight", None)  # the same tensor as embed_tokens.weight
    save_file(weights, tmp / "model.safetensors")
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    write_json(tmp / "state.json", state)
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def recover(folder: str | Path) -> None:
    """Finish a swap that a crash interrupted: the previous checkpoint waits under ``<name>.old``."""
    folder = Path(folder)
    old = folder.with_name(folder.name + ".old")
    if not folder.exists() and (old / "state.json").exists():
        old.rename(folder)


def read_state(folder: str | Path) -> dict:
    """``state.json`` of a checkpoint, with an error naming the folder when it is not one."""
    folder = Path(folder)
    if not (folder / "state.json").exists():
        raise FileNotFoundError(f"{folder}: not a checkpoint (no state.json)")
    return read_json(folder / "state.json")


def check_config(folder: str | Path, expected: dict) -> None:
    """Raise a ValueError listing every model-config field where the checkpoint differs from ``expected``."""
    saved = read_state(folder).get("model_config", {})
    diff = [f"{k}: checkpoint {saved.get(k)!r}, now {v!r}" for k, v in expected.items() if saved.get(k) != v]
    if diff:
        raise ValueError(
            f"{Path(folder) / 'state.json'}: the checkpoint was made for another model ({'; '.join(diff)}); "
            "use the same config or a new run folder"
        )


def load_checkpoint(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Load weights (and optimizer state) from ``folder`` into ``model``; returns ``state.json``."""
    folder = Path(folder)
    state = read_state(folder)
    check_config(folder, model.config.to_dict())
    path = folder / "model.safetensors"
    try:
        weights = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the weights ({e}); the file is missing or corrupt") from e
    if getattr(model.config, "tie_embeddings", False):
        weights["lm_head.weight"] = weights["embed_tokens.weight"]
    missing, unexpected = set(model.state_dict()) - set(weights), set(weights) - set(model.state_dict())
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit the model (missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    model.load_state_dict(weights)
    if optimizer is not None:
        opt_path = folder / "optimizer.pt"
        try:
            optimizer.load_state_dict(torch.load(opt_path, map_location="cpu", weights_only=True))
        except Exception as e:  # a truncated pickle raises many different types
            raise ValueError(f"{opt_path}: cannot read the optimizer state ({type(e).__name__}: {e})") from e
    return state
