"""Our GPT as a Hugging Face ``LlamaForCausalLM``, and back: the model's way into the HF ecosystem.

In: a :class:`~llmkb.model.gpt.GPT` (and, for a saved folder, the project's tokenizer).
Out: a ``transformers.LlamaForCausalLM`` with the same weights and the same logits, or a
``save_pretrained`` folder (``config.json``, ``model.safetensors``, tokenizer files) that
``AutoModelForCausalLM`` and ``AutoTokenizer`` load offline; and the way back, from such a model
or folder to our GPT.

Why: the pretraining pages teach with the readable :mod:`llmkb.model.gpt`, while fine-tuning (trl),
generation and evaluation tools expect a Hugging Face model. Our parameter names are HF Llama's
without the ``model.`` prefix and RoPE uses HF's "rotate half" layout, so converting is renaming
only, and the tests check that both models give the same logits.

Only what our GPT implements is accepted from the HF side: a Llama config with no biases, SiLU,
plain RoPE and ``head_dim == hidden_size / num_attention_heads``; anything else is a ValueError that
says which setting is the problem, rather than a model that silently computes something else.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from llmkb.model.gpt import GPT, ModelConfig

HF_PREFIX = "model."  # HF keeps the transformer under `.model`; only lm_head sits outside it
EOS_TOKEN = "<|endoftext|>"  # the project's one document separator: bos, eos and pad at once
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


# ----------------------------------------------------------------------------------------------
# configs


# Our ModelConfig field -> LlamaConfig field, for the settings that map one to one.
FIELDS = {
    "vocab_size": "vocab_size",
    "context": "max_position_embeddings",
    "d_model": "hidden_size",
    "n_layer": "num_hidden_layers",
    "n_head": "num_attention_heads",
    "n_kv_head": "num_key_value_heads",
    "d_ff": "intermediate_size",
    "norm_eps": "rms_norm_eps",
    "tie_embeddings": "tie_word_embeddings",
}


def to_hf_config(
    config: ModelConfig,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
):
    """The ``transformers.LlamaConfig`` that describes the same network as ``config``.

    transformers 5 keeps RoPE's base in ``rope_parameters`` (a dict with ``rope_type`` and
    ``rope_theta``); the top-level ``rope_theta`` of 4.x is gone.

    Examples:
        >>> hf = to_hf_config(ModelConfig(vocab_size=300, n_head=4, n_kv_head=2))
        >>> hf.model_type, hf.num_key_value_heads, hf.head_dim, hf.rope_parameters["rope_theta"]
        ('llama', 2, 32, 10000.0)
    """
    from transformers import LlamaConfig

    return LlamaConfig(
        **{hf_name: getattr(config, ours) for ours, hf_name in FIELDS.items()},
        head_dim=config.head_dim,
        rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_theta)},
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        # LlamaConfig defaults to bos=1, eos=2 (Llama 2's ids); in our vocabulary those are bytes
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )


def _rope_theta(hf_config) -> float:
    """RoPE's base from a config, refusing the scaled variants (llama3, yarn, ...) we do not implement."""
    params = getattr(hf_config, "rope_parameters", None) or {}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        raise ValueError(f"rope_type {rope_type!r} is not implemented; only plain RoPE ('default') is")
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError(f"partial_rotary_factor {params['partial_rotary_factor']} is not implemented; only 1.0 is")
    return float(params.get("rope_theta", getattr(hf_config, "rope_theta", None) or 10_000.0))


def _check_supported(hf_config) -> None:
    """Raise a ValueError naming the first setting our GPT cannot reproduce."""
    model_type = getattr(hf_config, "model_type", None)
    if model_type != "llama":
        raise ValueError(f"model_type {model_type!r} is not supported; only 'llama' converts to our GPT")
    for flag in ("attention_bias", "mlp_bias"):
        if getattr(hf_config, flag, False):
            raise ValueError(f"{flag}=True is not implemented; our GPT has no biases")
    if hf_config.hidden_act != "silu":
        raise ValueError(f"hidden_act {hf_config.hidden_act!r} is not implemented; only 'silu' (SwiGLU) is")
    natural = hf_config.hidden_size // hf_config.num_attention_heads
    if hf_config.head_dim != natural:
        raise ValueError(f"head_dim {hf_config.head_dim} is not hidden_size / num_attention_heads = {natural}")


def from_hf_config(hf_config) -> ModelConfig:
    """Our :class:`ModelConfig` for a Llama config; a ValueError names anything we do not implement.

    >>> from_hf_config(to_hf_config(ModelConfig(vocab_size=300))) == ModelConfig(vocab_size=300)
    True
    """
    _check_supported(hf_config)
    fields = {ours: getattr(hf_config, hf_name) for ours, hf_name in FIELDS.items()}
    fields["n_kv_head"] = fields["n_kv_head"] or fields["n_head"]  # None in old configs means no GQA
    fields["tie_embeddings"] = bool(fields["tie_embeddings"])
    return ModelConfig(**fields, rope_theta=_rope_theta(hf_config))


# ----------------------------------------------------------------------------------------------
# weights


def _to_hf_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``layers.0...`` -> ``model.layers.0...``; ``lm_head.weight`` stays as it is."""
    return {k if k.startswith("lm_head.") else HF_PREFIX + k: v for k, v in state.items()}


def _from_hf_names(state: dict[str, torch.Tensor], tied: bool) -> dict[str, torch.Tensor]:
    """The inverse rename; a tied checkpoint may omit ``lm_head.weight``, which is the embedding."""
    ours = {k.removeprefix(HF_PREFIX): v for k, v in state.items()}
    if tied:
        ours["lm_head.weight"] = ours.get("embed_tokens.weight")
    return ours


def to_hf(
    model: GPT,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
):
    """A ``LlamaForCausalLM`` (float32, eval mode, on the CPU) holding a copy of ``model``'s weights.

    The token ids go into the config and so into the generation config that ``generate`` reads.
    """
    from transformers import LlamaForCausalLM

    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper prefixes every name with _orig_mod.

    hf_config = to_hf_config(model.config, bos_token_id, eos_token_id, pad_token_id)
    hf_model = LlamaForCausalLM(hf_config)  # random init, overwritten next: cheap next to training
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    hf_model.load_state_dict(_to_hf_names(state), strict=True)
    return hf_model.float().eval()


def _load_state(model: GPT, state: dict[str, torch.Tensor], source: str) -> GPT:
    """Copy ``state`` (our names) into ``model``; missing, extra or misshapen tensors name ``source``."""
    try:
        model.load_state_dict({k: v.float() for k, v in state.items() if v is not None}, strict=True)
    except RuntimeError as e:  # torch lists every missing/unexpected key and shape mismatch
        raise ValueError(f"{source}: weights do not fit the config ({e})") from e
    return model.eval()


def from_hf(hf_model) -> GPT:
    """Our GPT (float32, eval mode, on the CPU) with the weights of a Llama ``*ForCausalLM``."""
    config = from_hf_config(hf_model.config)
    state = {k: v.detach().cpu() for k, v in hf_model.state_dict().items()}
    return _load_state(GPT(config), _from_hf_names(state, config.tie_embeddings), type(hf_model).__name__)


# ----------------------------------------------------------------------------------------------
# folders


def _tokenizer(tokenizer):
    """A ``PreTrainedTokenizerFast`` from itself or from a tokenizer folder."""
    if isinstance(tokenizer, (str, Path)):
        from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

        return load_tokenizer(tokenizer)
    return tokenizer


def _special_ids(tokenizer) -> dict[str, int | None]:
    """bos/eos/pad = ``<|endoftext|>``, the id our documents are separated by, when the vocabulary has it."""
    if tokenizer is None:
        return {}
    eos = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    if eos is None or eos == tokenizer.unk_token_id:  # unknown token: convert_tokens_to_ids gives unk or None
        return {}
    return {"bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos}


def replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` onto ``out_dir``; an old ``out_dir`` is moved aside first, then deleted.

    A folder cannot be renamed over a non-empty one, so there are two renames; between them the
    target is briefly absent, but it is never half written.
    """
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-"))
        out_dir.rename(old / out_dir.name)
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_pretrained(model: GPT, out_dir: str | Path, tokenizer=None) -> Path:
    """Write ``model`` (and ``tokenizer``, a ``PreTrainedTokenizerFast`` or a tokenizer folder) to ``out_dir``.

    The folder holds ``config.json``, ``generation_config.json`` and ``model.safetensors`` (and the
    tokenizer's files), so ``AutoModelForCausalLM.from_pretrained(out_dir)`` and
    ``AutoTokenizer.from_pretrained(out_dir)`` work offline. Everything is written into a temporary
    sibling folder first and renamed into place, so an interrupted save leaves the old folder or
    none, never a mix.
    """
    tokenizer = _tokenizer(tokenizer)
    return save_hf_folder(to_hf(model, **_special_ids(tokenizer)), out_dir, tokenizer)


def save_hf_folder(hf_model, out_dir: str | Path, tokenizer=None) -> Path:
    """``hf_model.save_pretrained`` (and the tokenizer's) into a temporary sibling, then renamed onto ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        hf_model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _read_config(path: Path) -> ModelConfig:
    """Our config from ``path/config.json``; errors name the file."""
    from transformers import AutoConfig

    from llmkb.io import read_json

    file = path / CONFIG_FILE
    raw = read_json(file)  # FileNotFoundError / ValueError naming the file
    if not isinstance(raw, dict) or raw.get("model_type") != "llama":
        model_type = raw.get("model_type") if isinstance(raw, dict) else None
        raise ValueError(f"{file}: model_type {model_type!r} is not supported; only 'llama' converts to our GPT")
    try:
        return from_hf_config(AutoConfig.from_pretrained(str(path), local_files_only=True))
    except Exception as e:  # strict config validation, our own checks, ModelConfig's checks
        raise ValueError(f"{file}: {e}") from e


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a missing or damaged file names itself."""
    from safetensors.torch import load_file

    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing; is {file.parent} a save_pretrained model folder?")
    try:
        return load_file(str(file))
    except Exception as e:  # safetensors raises its own SafetensorError on a truncated header or body
        raise ValueError(f"{file}: not a readable safetensors file ({e})") from e


def load_pretrained(path: str | Path) -> GPT:
    """Our GPT (float32, eval mode) from a ``save_pretrained`` folder, ours or any plain Llama one.

    Reads ``config.json`` and ``model.safetensors`` directly, so every error can name the file at fault.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such model folder")
    config = _read_config(path)
    file = path / WEIGHTS_FILE
    state = _from_hf_names(_read_weights(file), config.tie_embeddings)
    return _load_state(GPT(config), state, str(file))
