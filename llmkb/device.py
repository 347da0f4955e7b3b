"""Which device a stage runs on, and what that device is good at.

In: a requested device (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``) or a model. Out: the device
string, the autocast context to compute in (bf16 on CUDA, plain fp32 on CPU), the dense bf16 peak
FLOP/s of known GPUs for model FLOPs utilization (MFU), where a model's tensors live, and the CPU's
name for benchmark reports.
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path

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


def device_of(model: torch.nn.Module) -> torch.device:
    """Where the model's tensors live (its first parameter, else its first buffer, else the CPU)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for benchmark reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
