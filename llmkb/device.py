"""Which device a stage runs on, and what that device is good at.

In: a requested device (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``). Out: the device string,
the autocast context to compute in (bf16 on CUDA, plain fp32 on CPU) and the dense bf16 peak
FLOP/s of known GPUs, for model FLOPs utilization (MFU).
"""

from __future__ import annotations

import contextlib

import torch

# Dense (not sparse) bf16 tensor-core peaks from the vendors' data sheets, FLOP/s.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def pick_device(requested: str = "auto") -> str:
    """``"cuda"`` when a CUDA device is present and ``requested`` is ``"auto"``, else ``requested`` or ``"cpu"``.

    >>> pick_device("cpu")
    'cpu'
    """
    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {requested!r} was asked for but torch sees no CUDA device")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def autocast(device: str):
    """bf16 autocast on CUDA (matmuls in bf16, reductions in fp32); nothing on CPU, which trains in fp32."""
    if device.startswith("cuda"):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def peak_flops(device: str) -> float | None:
    """The device's dense bf16 peak FLOP/s, or None when unknown (every CPU)."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    matches = [key for key in PEAK_BF16_FLOPS if key in name]
    return PEAK_BF16_FLOPS[max(matches, key=len)] if matches else None
