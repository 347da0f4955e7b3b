"""Quantization round-trips within its error bounds, layers stay close to float, sizes shrink as promised."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llmkb.model.gpt import GPT, ModelConfig
from llmkb.quantize import (
    LINEARS,
    METHODS,
    SKIP,
    QuantizedLinear,
    absmax_int8,
    compare_methods,
    dequantize_absmax,
    dequantize_int4,
    dequantize_zeropoint,
    groupwise_int4,
    model_bytes,
    quantize_model,
    to_markdown,
    unpack_int4,
    zeropoint_int8,
)

SMALL = ModelConfig(vocab_size=64, context=16, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=64)
# the default run's shapes (d_model 128, d_ff 320), with a tiny vocabulary: groups of 128 do not divide 320
RUN_SHAPES = ModelConfig(vocab_size=64, context=16, d_model=128, n_layer=1, n_head=4, n_kv_head=2, d_ff=320)
TOL = 1e-6  # float32 slack on bounds that are exact in real arithmetic


def make(config: ModelConfig = SMALL, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(config).eval()


def weight(rows: int = 16, cols: int = 64, seed: int = 0) -> torch.Tensor:
    return 0.02 * torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dim", [None, 1])
def test_absmax_error_is_at_most_half_a_step(dim):
    w = weight()
    q, scale = absmax_int8(w, dim)
    assert q.dtype == torch.int8 and int(q.abs().max()) == 127  # the largest weight uses the full range
    assert scale.shape == (() if dim is None else (16, 1))
    error = (dequantize_absmax(q, scale) - w).abs()
    assert torch.all(error <= scale / 2 + TOL)


def test_per_row_scales_contain_an_outlier_row():
    w = weight()
    w[3] *= 100  # one row of large weights
    tensor_error = (dequantize_absmax(*absmax_int8(w)) - w).abs()
    row_error = (dequantize_absmax(*absmax_int8(w, dim=1)) - w).abs()
    assert torch.all(row_error.amax(dim=1) <= tensor_error.amax(dim=1) + TOL)  # no row is worse ...
    others = [r for r in range(16) if r != 3]
    assert row_error[others].mean() < tensor_error[others].mean() / 20  # ... and the others far better


@pytest.mark.parametrize("dim", [None, 1])
def test_zeropoint_error_bound_and_exact_zero(dim):
    w = weight()
    w[0, 0] = 0.0
    q, scale, zero = zeropoint_int8(w, dim)
    assert q.dtype == torch.uint8 and zero.dtype == torch.uint8
    back = dequantize_zeropoint(q, scale, zero)
    assert torch.all((back - w).abs() <= scale / 2 + TOL)
    assert back[0, 0] == 0.0  # 0 is always one of the levels


def test_zeropoint_beats_absmax_on_an_all_positive_tensor():
    w = torch.rand(32, 64, generator=torch.Generator().manual_seed(0))  # all in [0, 1)
    absmax_error = (dequantize_absmax(*absmax_int8(w, dim=1)) - w).abs()
    zeropoint_error = (dequantize_zeropoint(*zeropoint_int8(w, dim=1)) - w).abs()
    assert zeropoint_error.mean() < 0.6 * absmax_error.mean()  # twice the levels on [0, max]
    assert zeropoint_error.max() < absmax_error.max()


@pytest.mark.parametrize("group_size", [8, 32, 64])
def test_int4_groups_error_bound_and_storage(group_size):
    w = weight(8, 64)
    w[2, 5] = 1.0  # an outlier spoils only its own group
    packed, scales, zeros = groupwise_int4(w, group_size)
    assert packed.dtype == torch.uint8 and packed.shape == (8, 32)  # two values per byte
    assert scales.shape == zeros.shape == (8, 64 // group_size)
    values = unpack_int4(packed)
    assert int(values.min()) >= 0 and int(values.max()) <= 15 and int(zeros.max()) <= 15
    back = dequantize_int4(packed, scales, zeros)
    error = (back - w).abs().view(8, 64 // group_size, group_size)  # (row, group, value)
    assert torch.all(error <= scales[..., None] / 2 + TOL)
    outlier_group = 5 // group_size
    calm = torch.ones_like(scales, dtype=torch.bool)
    calm[2, outlier_group] = False
    assert scales[calm].max() < scales[2, outlier_group] / 5


def test_int4_refuses_groups_that_do_not_divide_the_row():
    with pytest.raises(ValueError, match=r"\(4, 320\).*320 is not a multiple of group_size 128"):
        groupwise_int4(torch.randn(4, 320), 128)


@pytest.mark.parametrize(
    "method,tolerance",
    [("int8-absmax-tensor", 0.02), ("int8-absmax-row", 0.02), ("int8-zeropoint-row", 0.02), ("int4-group128", 0.15)],
)
def test_quantized_linear_is_close_to_the_float_linear(method, tolerance):
    torch.manual_seed(0)
    linear = nn.Linear(256, 64)
    layer = QuantizedLinear(linear, method)
    x = torch.randn(5, 256)
    expected, got = linear(x), layer(x)
    assert (got - expected).norm() / expected.norm() < tolerance
    buffers = {"qweight", "scale"} if "absmax" in method else {"qweight", "scale", "zero"}
    assert set(dict(layer.named_buffers())) == buffers
    assert layer.bias is not None and torch.equal(layer.bias, linear.bias)  # the bias stays float


def test_quantize_model_replaces_every_linear_but_the_tied_head():
    model = make()
    quantized = quantize_model(model, "int8-absmax-row")
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 7 * SMALL.n_layer + 1  # q k v o, gate up down per block, and lm_head
    for name in linears:
        replaced = quantized.get_submodule(name)
        if name == "lm_head":
            assert type(replaced) is nn.Linear and replaced.weight.dtype == torch.float32
        else:
            assert isinstance(replaced, QuantizedLinear) and replaced.qweight.dtype == torch.int8
    assert type(quantized.embed_tokens) is nn.Embedding
    assert quantized.lm_head.weight is quantized.embed_tokens.weight  # still tied in the copy
    assert all(type(m) is nn.Linear for n, m in model.named_modules() if n in linears)  # original untouched
    ids = torch.randint(0, SMALL.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(quantized(ids)[0], model(ids)[0], rtol=0, atol=2e-3)


def test_quantize_model_works_on_any_module_tree_and_honours_skip():
    tree = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 4)))
    quantized = quantize_model(tree, "int8-zeropoint-row", skip=("2.1",))
    assert isinstance(quantized[0], QuantizedLinear) and isinstance(quantized[2][0], QuantizedLinear)
    assert type(quantized[2][1]) is nn.Linear
    x = torch.randn(3, 8)
    torch.testing.assert_close(quantized(x), tree(x), rtol=0, atol=0.05)


def test_int4_shrinks_groups_where_128_does_not_divide():
    quantized = quantize_model(make(RUN_SHAPES), "int4-group128")
    assert quantized.layers[0].mlp.down_proj.group_size == 64  # in_features 320 = 5 x 64
    assert quantized.layers[0].mlp.up_proj.group_size == 128
    assert quantized.layers[0].self_attn.q_proj.group_size == 128
    with pytest.raises(ValueError, match=r"'layers.0.mlp.down_proj' \(weight \(128, 320\)\).*group_size 128"):
        quantize_model(make(RUN_SHAPES), "int4-group128", shrink_groups=False)


def test_unknown_method_lists_the_methods():
    with pytest.raises(ValueError, match="int8-absmax-tensor, int8-absmax-row, int8-zeropoint-row, int4-group128"):
        quantize_model(make(), "int3-magic")


def test_model_bytes_counts_real_dtypes_and_tied_tables_once():
    model = make(RUN_SHAPES)
    assert model_bytes(model) == 4 * model.num_params()  # the tied table once, all float32
    linear = model_bytes(model, LINEARS, SKIP)
    assert linear == 4 * sum(
        m.weight.numel() for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"
    )
    layers = [m for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"]
    int8 = quantize_model(model, "int8-absmax-row")
    # 1 byte per weight instead of 4, plus one float32 scale per row (output channel)
    assert model_bytes(int8, LINEARS, SKIP) == sum(m.weight.numel() + 4 * m.out_features for m in layers)
    assert 3.8 < linear / model_bytes(int8, LINEARS, SKIP) < 4.0
    int4 = quantize_model(model, "int4-group128")
    assert 7.0 < linear / model_bytes(int4, LINEARS, SKIP) < 8.0  # half a byte, plus scale and zero per group
    saved = model_bytes(model) - model_bytes(int8)
    assert saved == linear - model_bytes(int8, LINEARS, SKIP)  # only the linear layers changed


class CharTokenizer:
    unk_token_id = 0

    def convert_tokens_to_ids(self, token: str) -> int:
        return 63 if token == "<|endoftext|>" else 0

    def __call__(self, texts, add_special_tokens=False, verbose=False):
        return {"input_ids": [[1 + ord(c) % 60 for c in text] for text in texts]}


def test_compare_methods_rows_and_table():
    texts = ["the cat sat on the mat", "a dog ran in the park", "what is two plus two"]
    rows = compare_methods(make(), CharTokenizer(), texts, context=16)
    assert [r["method"] for r in rows] == ["fp32", *METHODS]
    fp32 = rows[0]
    assert fp32["increase_pct"] == 0.0 and fp32["max_abs_weight_error"] == 0.0 and fp32["bits_per_weight"] == 32.0
    for row in rows[1:]:
        assert row["bytes"] < fp32["bytes"] and row["linear_bytes"] < fp32["linear_bytes"] / 3.5
        assert 0 < row["max_abs_weight_error"] < 0.02 and abs(row["increase_pct"]) < 5
        assert row["tokens"] == fp32["tokens"] == sum(map(len, texts)) + len(texts)
    assert rows[-1]["group_sizes"] == {
        f"layers.{i}.{n}": 32
        for i in range(2)
        for n in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
        )
    } | {f"layers.{i}.mlp.down_proj": 64 for i in range(2)}
    table = to_markdown(rows)
    assert table.count("\n") == 2 + len(rows) and "| int4-group128 |" in table
