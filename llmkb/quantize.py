"""Post-training weight quantization: store a trained model's matrices in 8 or 4 bits.

In: a trained model (our :class:`~llmkb.model.gpt.GPT`, or any module tree with ``nn.Linear``
layers). Out: a copy whose linear layers keep integer weights plus a few floats per row or per group
(:class:`QuantizedLinear`), its size in bytes (:func:`model_bytes`), and a table of size against
perplexity for every method (:func:`compare_methods`, :func:`to_markdown`).

Quantizing maps each float weight ``w`` to a small integer ``q`` and back, ``w ~= (q - zero) * scale``:

- **absmax (symmetric)**: ``scale = max|w| / 127``, ``q = round(w / scale)`` in ``[-127, 127]``,
  zero is 0. The largest weight maps to 127 exactly; every weight is off by at most ``scale / 2``.
  One outlier makes ``scale`` large and crushes every other weight onto a few levels.
- **zero-point (asymmetric)**: the range ``[min, max]`` (stretched to contain 0, as GPTQ and
  PyTorch do, so that 0 stays exactly representable) is spread over all 256 levels of a ``uint8``;
  ``zero`` is the level that stands for 0. A tensor that is all positive then uses every level,
  where absmax would waste the negative half.
- **granularity**: one scale for the whole tensor, one per row (per output channel: a row of an
  ``(out, in)`` weight feeds one output) or one per *group* of consecutive inputs within a row. The
  smaller the unit, the fewer weights an outlier can spoil, and the more scales to store.
- **4-bit groups** (what GPTQ/AWQ checkpoints and llama.cpp's ``Q4_1`` store): zero-point with 16
  levels per group of ``group_size`` inputs, two 4-bit values packed in each byte.

This is round-to-nearest (RTN), the baseline that GPTQ and AWQ improve on by choosing the rounding
with the help of calibration data; LLM.int8() instead keeps the few outlier features in 16 bits.
In the same spirit, :func:`quantize_model` leaves the embedding table and the LM head in full
precision: our GPT ties them into one table, which both reads every input token and writes every
logit, so its errors reach every prediction directly. Keeping sensitive parts in higher precision
is common practice: transformers' bitsandbytes integration leaves the LM head and tied weights
unconverted "for numerical stability reasons". (Here that table is also 43% of the weights, so
the whole model shrinks far less than its linear layers; :func:`compare_methods` reports both.)

:class:`QuantizedLinear` is simple and honest rather than fast: it stores the integers and
dequantizes the whole weight to float at every forward pass, then multiplies as usual. The memory
saving is in what is stored (on disk, and resident between calls); the computation is float and a
little slower. Real int8/int4 kernels (bitsandbytes, GPTQ/Marlin, llama.cpp) multiply without
materializing the float matrix.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

# method -> (kind, granularity): "tensor" or "row" scales, or the group size along the input dim
METHODS = {
    "int8-absmax-tensor": ("absmax", "tensor"),
    "int8-absmax-row": ("absmax", "row"),
    "int8-zeropoint-row": ("zeropoint", "row"),
    "int4-group128": ("int4", 128),
}
SKIP = ("lm_head", "embed_tokens")  # the tied embedding / LM head stays in float (module docstring)


def _safe(scale: torch.Tensor) -> torch.Tensor:
    """``scale`` with zeros replaced by 1: an all-zero row quantizes to zeros either way, without 0/0."""
    return torch.where(scale == 0, torch.ones_like(scale), scale)


# ----------------------------------------------------------------------------------------------
# symmetric: absmax


def absmax_int8(w: torch.Tensor, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric 8-bit: ``q = round(w / scale)`` with ``scale = max|w| / 127``.

    ``dim=None`` uses one scale for the tensor; ``dim=1`` one per row (the max is taken along the
    input dimension, so each output channel gets its own scale). Returns ``(q int8, scale float32)``,
    ``scale`` shaped to broadcast against ``w``.

    Examples:
        >>> w = torch.tensor([[0.5, -1.0, 0.25], [0.01, 0.02, -0.03]])
        >>> q, scale = absmax_int8(w)
        >>> q.tolist(), round(float(scale), 6)
        ([[64, -127, 32], [1, 3, -4]], 0.007874)
        >>> float((dequantize_absmax(q, scale) - w).abs().max()) <= float(scale) / 2
        True
    """
    w = w.detach().float()
    amax = w.abs().amax() if dim is None else w.abs().amax(dim=dim, keepdim=True)
    scale = _safe(amax / 127)
    q = torch.round(w / scale).clamp(-127, 127).to(torch.int8)  # -128 unused: keeps the range symmetric
    return q, scale


def dequantize_absmax(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q * scale`` as float32."""
    return q.float() * scale


# ----------------------------------------------------------------------------------------------
# asymmetric: zero-point


def _zeropoint(w: torch.Tensor, dim: int | None, levels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric quantization to ``0 .. levels - 1``: (q as int64, scale, zero), reduced along ``dim``."""
    lo = w.amin() if dim is None else w.amin(dim=dim, keepdim=True)
    hi = w.amax() if dim is None else w.amax(dim=dim, keepdim=True)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)  # the range always contains 0, so 0 is a level
    scale = _safe((hi - lo) / (levels - 1))
    zero = torch.round(-lo / scale).clamp(0, levels - 1)  # the level that stands for 0.0
    q = (torch.round(w / scale) + zero).clamp(0, levels - 1)
    return q.long(), scale, zero.long()


def zeropoint_int8(w: torch.Tensor, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric 8-bit: ``[min, max]`` (stretched to contain 0) onto the 256 levels of a uint8.

    Returns ``(q uint8, scale float32, zero uint8)``; ``w ~= (q - zero) * scale``. ``dim`` as in
    :func:`absmax_int8`. Every weight is off by at most ``scale / 2``, and ``scale`` is at most
    absmax's (``max - min <= 2 max|w|`` spread over 255 steps instead of 254).

    Examples:
        >>> w = torch.tensor([0.0, 0.1, 0.2, 1.0])  # all positive: absmax would waste the negative half
        >>> q, scale, zero = zeropoint_int8(w)
        >>> q.tolist(), int(zero), round(float(scale), 6)
        ([0, 25, 51, 255], 0, 0.003922)
        >>> float((dequantize_zeropoint(q, scale, zero) - w).abs().max()) <= float(scale) / 2
        True
    """
    q, scale, zero = _zeropoint(w.detach().float(), dim, 256)
    return q.to(torch.uint8), scale, zero.to(torch.uint8)


def dequantize_zeropoint(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """``(q - zero) * scale`` as float32 (the subtraction in float: uint8 would wrap around)."""
    return (q.float() - zero.float()) * scale


# ----------------------------------------------------------------------------------------------
# 4 bits, in groups along the input dimension


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Two values in ``0 .. 15`` per byte: even positions in the low nibble, odd ones in the high one.

    Examples:
        >>> pack_int4(torch.tensor([[1, 2, 15, 0]])).tolist()  # 1 + 2 * 16, 15 + 0 * 16
        [[33, 15]]
        >>> unpack_int4(pack_int4(torch.tensor([[1, 2, 15, 0]]))).tolist()
        [[1, 2, 15, 0]]
    """
    if q.shape[-1] % 2:
        raise ValueError(f"cannot pack an odd number of 4-bit values (last dim {q.shape[-1]})")
    q = q.to(torch.uint8)
    return q[..., 0::2] | (q[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`pack_int4`: uint8 values in ``0 .. 15``, twice as many along the last dim."""
    return torch.stack([packed & 0x0F, packed >> 4], dim=-1).flatten(-2)


def groupwise_int4(w: torch.Tensor, group_size: int = 128) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric 4-bit quantization of an ``(out, in)`` weight, one scale and zero per group of
    ``group_size`` consecutive inputs of a row.

    Returns ``(packed uint8 (out, in / 2), scales float32 (out, in / group_size), zeros uint8 (same))``;
    the 4-bit values ``0 .. 15`` are packed two per byte (:func:`pack_int4`). Every weight is off by
    at most its group's ``scale / 2``.

    Examples:
        >>> w = torch.tensor([[0.0, 0.3, -0.6, 0.9, 10.0, 20.0, 30.0, 40.0]])  # two very different groups
        >>> packed, scales, zeros = groupwise_int4(w, group_size=4)
        >>> packed.shape, scales.shape, [round(s, 3) for s in scales[0].tolist()], zeros.tolist()
        (torch.Size([1, 4]), torch.Size([1, 2]), [0.1, 2.667], [[6, 0]])
        >>> error = (dequantize_int4(packed, scales, zeros) - w).abs().view(1, 2, 4)  # (row, group, value)
        >>> bool((error <= scales[..., None] / 2 + 1e-6).all())
        True
    """
    if w.dim() != 2:
        raise ValueError(f"groupwise_int4 quantizes a 2-D (out, in) weight; got shape {tuple(w.shape)}")
    out_features, in_features = w.shape
    if group_size < 2 or group_size % 2 or in_features % group_size:
        raise ValueError(
            f"weight of shape ({out_features}, {in_features}): in_features {in_features} is not a "
            f"multiple of group_size {group_size} (which must be even, for packing)"
        )
    groups = w.detach().float().view(out_features, in_features // group_size, group_size)  # (out, n_groups, g)
    q, scale, zero = _zeropoint(groups, dim=2, levels=16)  # q (out, n_groups, g); scale, zero (out, n_groups, 1)
    return pack_int4(q.view(out_features, in_features)), scale.squeeze(2), zero.squeeze(2).to(torch.uint8)


def dequantize_int4(packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> torch.Tensor:
    """The float32 ``(out, in)`` weight back from :func:`groupwise_int4`'s three tensors."""
    q = unpack_int4(packed)  # (out, in)
    out_features, in_features = q.shape
    n_groups = scales.shape[1]
    q = q.view(out_features, n_groups, in_features // n_groups).float()  # (out, n_groups, g)
    return ((q - zeros.float()[..., None]) * scales[..., None]).view(out_features, in_features)


# ----------------------------------------------------------------------------------------------
# the layer and the model


def check_method(method: str) -> tuple[str, str | int]:
    """``METHODS[method]``, or a ValueError that lists the methods.

    Examples:
        >>> check_method("int8-absmax-row")
        ('absmax', 'row')
    """
    if method not in METHODS:
        raise ValueError(f"unknown quantization method {method!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[method]


def group_size_for(in_features: int, group_size: int) -> int:
    """``group_size`` when it divides ``in_features``, else the largest size that divides both.

    Our MLP's ``down_proj`` reads ``d_ff = 320`` inputs, which groups of 128 do not divide; it gets
    groups of 64 (= gcd(128, 320)): smaller groups, so slightly more precise and slightly bigger.

    >>> group_size_for(128, 128), group_size_for(320, 128), group_size_for(96, 128)
    (128, 64, 32)
    """
    return group_size if in_features % group_size == 0 else math.gcd(in_features, group_size)


class QuantizedLinear(nn.Module):
    """An ``nn.Linear`` whose weight is stored as integers (+ scales, zeros), dequantized in ``forward``.

    ``QuantizedLinear(linear, method)`` quantizes ``linear.weight`` with one of :data:`METHODS`;
    ``group_size`` overrides the group size of the 4-bit method. Buffers: ``qweight`` (int8,
    uint8, or uint8 packing two 4-bit values), ``scale`` and, for zero-point methods, ``zero``. A
    bias, if any, stays in float.
    """

    def __init__(self, linear: nn.Linear, method: str, group_size: int | None = None):
        super().__init__()
        kind, granularity = check_method(method)
        self.method, self.kind = method, kind
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.group_size = group_size or (granularity if kind == "int4" else None)
        w = linear.weight.detach()
        if kind == "absmax":
            q, scale = absmax_int8(w, dim=None if granularity == "tensor" else 1)
            zero = None
        elif kind == "zeropoint":
            q, scale, zero = zeropoint_int8(w, dim=None if granularity == "tensor" else 1)
        else:
            q, scale, zero = groupwise_int4(w, self.group_size)
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale)
        self.register_buffer("zero", zero)  # None for absmax: then not a buffer at all
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())

    def dequantized_weight(self) -> torch.Tensor:
        """The float32 ``(out, in)`` weight the integers stand for."""
        if self.kind == "absmax":
            return dequantize_absmax(self.qweight, self.scale)
        if self.kind == "zeropoint":
            return dequantize_zeropoint(self.qweight, self.scale, self.zero)
        return dequantize_int4(self.qweight, self.scale, self.zero)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.dequantized_weight().to(x.dtype)  # (out, in): rebuilt every call, then an ordinary matmul
        return F.linear(x, weight, None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        group = f", group_size={self.group_size}" if self.kind == "int4" else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, method={self.method}{group}"


def _skipped(name: str, skip: Iterable[str]) -> bool:
    """True when module ``name`` (dotted) is, or ends with, one of the ``skip`` names.

    >>> _skipped("lm_head", SKIP), _skipped("layers.0.mlp.down_proj", SKIP), _skipped("layers.0.mlp", ["mlp"])
    (True, False, True)
    """
    return any(name == s or name.endswith("." + s) for s in skip)


def quantize_model(model: nn.Module, method: str, skip: Iterable[str] = SKIP, shrink_groups: bool = True) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` not named in ``skip`` replaced by :class:`QuantizedLinear`.

    ``model`` itself is left as it was (the copy keeps its tied weights tied). ``skip`` names
    modules by their last name or full dotted name; by default the LM head (tied to the embedding in
    our GPT) stays float. For the 4-bit method a layer whose ``in_features`` the group size does
    not divide gets :func:`group_size_for`'s smaller group (``shrink_groups``), or, with
    ``shrink_groups=False``, a ValueError naming the layer and its shape.
    """
    kind, granularity = check_method(method)
    skip = tuple(skip)
    model = copy.deepcopy(model)
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not _skipped(name, skip)
    ]
    for name, linear in targets:
        group_size = None
        if kind == "int4":
            group_size = group_size_for(linear.in_features, granularity) if shrink_groups else granularity
        try:
            quantized = QuantizedLinear(linear, method, group_size)
        except ValueError as e:
            raise ValueError(f"layer {name!r} (weight {tuple(linear.weight.shape)}): {e}") from e
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, quantized)
    return model


LINEARS = (nn.Linear, QuantizedLinear)


def model_bytes(model: nn.Module, only: type | tuple[type, ...] | None = None, skip: Iterable[str] = ()) -> int:
    """Bytes of ``model``'s parameters and buffers at their real dtypes, each tensor once.

    A tied table (our embedding = LM head) is one tensor, counted once. Packed 4-bit weights are
    uint8 tensors of half the values, so they count 0.5 byte per weight by themselves. With
    ``only`` (module types), count just the tensors those modules own directly, leaving out modules
    named in ``skip``: ``model_bytes(m, LINEARS, SKIP)`` is the size of the quantizable linear layers.

    >>> model_bytes(nn.Linear(4, 3))  # 12 weights + 3 biases, float32
    60
    >>> model_bytes(QuantizedLinear(nn.Linear(4, 3, bias=False), "int8-absmax-row"))  # 12 int8 + 3 float32 scales
    24
    """
    if only is None:
        tensors = [*model.parameters(), *model.buffers()]
    else:
        skip = tuple(skip)
        tensors = [
            t
            for name, m in model.named_modules()
            if isinstance(m, only) and not _skipped(name, skip)
            for t in (*m.parameters(recurse=False), *m.buffers(recurse=False))
        ]
    unique = {id(t): t for t in tensors}
    return sum(t.numel() * t.element_size() for t in unique.values())


# ----------------------------------------------------------------------------------------------
# the comparison


def _linear_params(model: nn.Module, skip: Iterable[str]) -> int:
    """How many weights the quantizable linear layers hold (whatever their storage)."""
    return sum(
        m.in_features * m.out_features
        for name, m in model.named_modules()
        if isinstance(m, LINEARS) and not _skipped(name, skip)
    )


@torch.no_grad()
def max_weight_error(original: nn.Module, quantized: nn.Module) -> float:
    """The largest ``|w - dequantized w|`` over all quantized layers (0.0 when none is quantized)."""
    layers = dict(original.named_modules())
    errors = [
        float((layers[name].weight.float() - m.dequantized_weight()).abs().max())
        for name, m in quantized.named_modules()
        if isinstance(m, QuantizedLinear)
    ]
    return max(errors, default=0.0)


def compare_methods(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    context: int,
    methods: Iterable[str] = METHODS,
    skip: Iterable[str] = SKIP,
    stride: int | None = None,
    batch_size: int = 8,
) -> list[dict]:
    """Size and held-out perplexity of ``model`` in float32 and quantized with each of ``methods``.

    One row per model: ``method``, ``bytes`` / ``megabytes`` (whole model, 10^6 bytes),
    ``linear_bytes`` (the quantizable linear layers only), ``bits_per_weight`` (of those layers,
    scales and zeros included), ``perplexity`` on ``texts`` (:func:`~llmkb.evaluate.perplexity.perplexity_of_texts`
    with ``context`` and ``stride``), ``increase_pct`` over float32, ``max_abs_weight_error`` and,
    for 4 bits, ``group_sizes`` (layer name -> group size, where :func:`group_size_for` shrank it).
    """
    from llmkb.evaluate.perplexity import encode_documents, perplexity

    skip = tuple(skip)
    stream = encode_documents(tokenizer, texts)  # tokenized once, scored by every model
    n_weights = _linear_params(model, skip)
    rows = []
    for method in ["fp32", *methods]:
        quantized = model if method == "fp32" else quantize_model(model, method, skip)
        result = perplexity(quantized, stream, context, stride, batch_size)
        linear_bytes = model_bytes(quantized, LINEARS, skip)
        row = {
            "method": method,
            "bytes": model_bytes(quantized),
            "megabytes": model_bytes(quantized) / 1e6,
            "linear_bytes": linear_bytes,
            "bits_per_weight": 8 * linear_bytes / n_weights if n_weights else float("nan"),
            "perplexity": result["perplexity"],
            "tokens": result["tokens"],
            "max_abs_weight_error": max_weight_error(model, quantized),
        }
        if method.startswith("int4"):
            row["group_sizes"] = {
                name: m.group_size
                for name, m in quantized.named_modules()
                if isinstance(m, QuantizedLinear) and m.group_size != METHODS[method][1]
            }
        rows.append(row)
    base = rows[0]["perplexity"]
    for row in rows:
        row["increase_pct"] = 100 * (row["perplexity"] / base - 1)
    return rows


def to_markdown(rows: list[dict]) -> str:
    """:func:`compare_methods`'s rows as a Markdown table.

    >>> rows = [{"method": "fp32", "megabytes": 4.85, "linear_bytes": 2_752_512, "bits_per_weight": 32.0,
    ...          "perplexity": 40.0, "increase_pct": 0.0, "max_abs_weight_error": 0.0},
    ...         {"method": "int8-absmax-row", "megabytes": 2.80, "linear_bytes": 698_368, "bits_per_weight": 8.12,
    ...          "perplexity": 40.1, "increase_pct": 0.25, "max_abs_weight_error": 0.0012}]
    >>> print(to_markdown(rows).splitlines()[3])
    | int8-absmax-row | 2.80 | 0.70 | 8.12 | 40.10 | +0.25% | 0.00120 |
    """
    lines = [
        "| Method | Model (MB) | Linear layers (MB) | Bits per weight | Perplexity | Change | Max weight error |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['megabytes']:.2f} | {r['linear_bytes'] / 1e6:.2f} | {r['bits_per_weight']:.2f} "
            f"| {r['perplexity']:.2f} | {r['increase_pct']:+.2f}% | {r['max_abs_weight_error']:.5f} |"
        )
    return "\n".join(lines) + "\n"
