"""The model: a Llama-style GPT's parameters, one forward pass shape by shape, its Hugging Face twin and attention maps.

Run it: ``llmkb examples run architecture --profile quick`` (or ``python examples/architecture.py``).
The architecture page includes its sections; the docs build saves its tables and plots.
"""

# %% [markdown]
# # Inside the model
# Where the parameters of our tiny GPT sit, what shape every tensor has on the way through, and
# what the trained model's attention heads look at.

# %%
# --8<-- [start:knobs]
from collections import Counter

from llmkb.model.gpt import GPT
from llmkb.stages import get_stage

config = get_stage("pretrain").config("default").model_config(vocab_size=4096)  # the main job's model
print(config)
model = GPT(config)
groups = Counter()
for name, p in model.named_parameters():  # a tied LM head is the embedding table, counted once
    part = name.split(".")[-2] if "layers" in name else name.split(".")[0]
    groups[part] += p.numel()
knobs_table = (
    "| part | parameters | share |\n|---|---:|---:|\n"
    + "\n".join(f"| `{part}` | {n:,} | {n / model.num_params():.1%} |" for part, n in groups.most_common())
    + f"\n| **total** | **{model.num_params():,}** | |\n"
)
print(knobs_table)
# --8<-- [end:knobs]
from llmkb.examples import context

ctx = context("architecture")
ctx.save_text("knobs.md", knobs_table)
assert sum(groups.values()) == model.num_params()

# %%
# --8<-- [start:shapes]
import torch

torch.manual_seed(0)
B, T = 2, 10
idx = torch.randint(0, config.vocab_size, (B, T))
block = model.layers[0]
x = model.embed_tokens(idx)
print("token ids        ", tuple(idx.shape))
print("embeddings       ", tuple(x.shape), "(B, T, d_model)")
h = block.input_layernorm(x)
attn = block.self_attn
q = attn.q_proj(h).view(B, T, config.n_head, config.head_dim).transpose(1, 2)
k = attn.k_proj(h).view(B, T, config.n_kv_head, config.head_dim).transpose(1, 2)
print("queries          ", tuple(q.shape), "(B, n_head, T, head_dim)")
print("keys and values  ", tuple(k.shape), "(B, n_kv_head, T, head_dim): two query heads share each")
print("MLP hidden       ", tuple(block.mlp.gate_proj(h).shape), "(B, T, d_ff)")
logits, _ = model(idx)
print("logits           ", tuple(logits.shape), "(B, T, vocab): a score for every possible next token")
# --8<-- [end:shapes]
assert logits.shape == (B, T, config.vocab_size)

# %%
# --8<-- [start:hf]
from transformers import LlamaForCausalLM

from llmkb.model.hf import from_hf, to_hf

hf_model = to_hf(model)
print(type(hf_model).__name__, "with", sum(p.numel() for p in hf_model.parameters()), "parameters")
with torch.no_grad():
    ours, theirs = model(idx)[0], hf_model(idx).logits
    back = from_hf(hf_model)(idx)[0]
print(f"largest logit difference, ours vs transformers: {(ours - theirs).abs().max().item():.2e}")
print(f"largest logit difference, after converting back: {(ours - back).abs().max().item():.2e}")
# --8<-- [end:hf]
assert isinstance(hf_model, LlamaForCausalLM) and (ours - theirs).abs().max() <= 1e-5

# %%
# --8<-- [start:attention]
import matplotlib.pyplot as plt

from llmkb.model.hf import load_pretrained as load_model
from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

model_dir = ctx.ensure("pretrain") / "model"
trained, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
sentence = "The guild of the city repairs the bridge at dusk, and the guild of the city lights the bell."
ids = torch.tensor([tokenizer(sentence, add_special_tokens=False)["input_ids"]])
with torch.no_grad():
    attention = trained.attention_maps(ids)  # per layer: (1, n_head, T, T)
labels = [tokenizer.decode([i]) for i in ids[0].tolist()]
layers = [0, trained.config.n_layer - 1]
fig, axes = plt.subplots(len(layers), trained.config.n_head, figsize=(3 * trained.config.n_head, 3 * len(layers)))
for row, layer in zip(axes, layers):
    for head, ax in enumerate(row):
        ax.imshow(attention[layer][0, head], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"layer {layer}, head {head}", fontsize=9)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=5)
        ax.set_yticks(range(len(labels)), labels, fontsize=5)
fig.tight_layout()
ctx.save_figure("attention.png", fig)
for layer in layers:
    weights = attention[layer][0].mean(0)  # averaged over heads: (T, T)
    print(
        f"layer {layer}: on average a token puts {weights.diagonal().mean():.0%} of its attention on itself "
        f"and {weights[1:, 0].mean():.0%} on the first token"
    )
# --8<-- [end:attention]
assert torch.allclose(attention[0][0].sum(-1), torch.ones(len(labels)))  # each row is a distribution
assert attention[0][0, 0].triu(1).abs().max() == 0  # and never looks ahead
