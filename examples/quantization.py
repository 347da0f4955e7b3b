"""Quantization: absmax and zero-point int8, per tensor and per row, 4-bit groups; size against perplexity.

Run it: ``llmkb examples run quantization --profile quick`` (or ``python examples/quantization.py``).
The quantization page includes its sections. The same table is ``llmkb quantize``.
"""

# %% [markdown]
# # Storing weights in 8 and 4 bits
# Round-to-nearest quantization of the base model's linear layers, and what it costs in perplexity.

# %%
# --8<-- [start:toy]
import torch

from llmkb.quantize import absmax_int8, dequantize_absmax, dequantize_zeropoint, zeropoint_int8

w = torch.tensor([0.12, -0.50, 0.03, 0.91, -0.27, 0.00])
q, scale = absmax_int8(w)
print("weights     ", [round(x, 4) for x in w.tolist()])
print("absmax int8 ", q.tolist(), f" scale = {float(scale):.5f} (max|w| / 127)")
print("back        ", [round(x, 4) for x in dequantize_absmax(q, scale).tolist()])
q, scale, zero = zeropoint_int8(w)
print("zero-point  ", q.tolist(), f" scale = {float(scale):.5f} ((max - min) / 255), zero = {int(zero)}")
print("back        ", [round(x, 4) for x in dequantize_zeropoint(q, scale, zero).tolist()])
# --8<-- [end:toy]
assert (dequantize_absmax(*absmax_int8(w)) - w).abs().max() <= float(absmax_int8(w)[1]) / 2 + 1e-7

# %%
# --8<-- [start:outlier]
torch.manual_seed(0)
matrix = torch.randn(64, 128) * 0.02
matrix[7, 3] = 1.5  # one outlier weight, as trained models have
errors = {}
for granularity, dim in (("one scale per tensor", None), ("one scale per row", 1)):
    q, scale = absmax_int8(matrix, dim=dim)
    err = (dequantize_absmax(q, scale) - matrix).abs()
    errors[granularity] = err
    print(
        f"{granularity:22}: mean error {err.mean():.2e}; "
        f"rows without the outlier {err[torch.arange(64) != 7].mean():.2e}"
    )
# --8<-- [end:outlier]
assert errors["one scale per row"].mean() < errors["one scale per tensor"].mean() / 10

# %%
# --8<-- [start:compare]
from llmkb.corpus import load_split
from llmkb.examples import context
from llmkb.model.hf import load_pretrained as load_model
from llmkb.quantize import compare_methods, to_markdown
from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

ctx = context("quantization")
model_dir = ctx.ensure("pretrain") / "model"
model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
heldout = [d["text"] for d in load_split(ctx.run.require("data"), "heldout")]
rows = compare_methods(model, tokenizer, heldout, context=model.config.context)
table = to_markdown(rows)
ctx.save_text("compare.md", table)
print(table)
# --8<-- [end:compare]
by_method = {r["method"]: r for r in rows}

# %%
# --8<-- [start:compare-train]
from llmkb.pretrain.stage import training_mix
from llmkb.stages import get_stage

texts, _ = training_mix(ctx.run.require("data"), get_stage("pretrain").config(ctx.profile))
known = texts[:40]  # pages the model trained on: it predicts them well, so damage shows clearly
rows_known = compare_methods(model, tokenizer, known, context=model.config.context)
table_known = to_markdown(rows_known)
ctx.save_text("compare_train.md", table_known)
print(table_known)
# --8<-- [end:compare-train]
assert rows_known[0]["perplexity"] < rows[0]["perplexity"]  # training text is far more predictable
assert (
    by_method["int4-group128"]["linear_bytes"]
    < by_method["int8-absmax-row"]["linear_bytes"]
    < by_method["fp32"]["linear_bytes"]
)

# %%
# --8<-- [start:run]
from llmkb.pretrain.probes import sample
from llmkb.quantize import QuantizedLinear, quantize_model

small = quantize_model(model, "int4-group128")
print(sum(isinstance(m, QuantizedLinear) for m in small.modules()), "linear layers now hold 4-bit weights")
prompt = "The guild of"
for name, m in (("fp32", model), ("int4", small)):
    print(f"{name}: {prompt}{sample(m, tokenizer, prompt, max_new_tokens=20, temperature=0)!r}")
# --8<-- [end:run]
assert isinstance(small.layers[0].mlp.up_proj, QuantizedLinear)
