"""The `llama` architecture: GGUF metadata and tensors -> mlx-lm's `llama` model.

Covers Llama 1-3, SmolLM, Mistral-style dense models and anything else llama.cpp files as `llama`.
"""

from typing import Any

import numpy as np

from .dense import base_config, rope_scaling, split_name
from .reader import GGUFFile

MODEL_TYPE = "llama"

# Not a weight: llama.cpp stores Llama 3's RoPE frequency factors as a tensor; they go into the config.
_ROPE_FREQS = "rope_freqs.weight"


def build_config(gguf: GGUFFile) -> dict[str, Any]:
    """mlx-lm's `config.json` for this file."""
    config = base_config(gguf, MODEL_TYPE, "LlamaForCausalLM")
    names = set(gguf.tensor_names)
    config["attention_bias"] = "blk.0.attn_q.bias" in names
    config["mlp_bias"] = "blk.0.ffn_up.bias" in names
    scaling = _rope_freqs_scaling(gguf, config["max_position_embeddings"]) or rope_scaling(gguf)
    if scaling is not None:
        config["rope_scaling"] = scaling
    return config


def _rope_freqs_scaling(gguf: GGUFFile, context_length: int) -> dict[str, Any] | None:
    if _ROPE_FREQS not in gguf.tensor_names:
        return None
    # llama.cpp divides each RoPE frequency by these factors (Llama 3.1+ "llama3" scaling, precomputed).
    # mlx-lm's "longrope" multiplies the same per-dimension periods by `long_factor`, and with equal
    # context lengths it applies no extra attention scale, so it reproduces llama.cpp exactly.
    factors = gguf.load(_ROPE_FREQS).tolist()
    return {
        "type": "longrope",
        "long_factor": factors,
        "short_factor": factors,
        "original_max_position_embeddings": context_length,
    }


def convert_tensor(name: str, values: np.ndarray, config: dict[str, Any]) -> tuple[str, np.ndarray] | None:
    """The mlx-lm name and values for one GGUF tensor, or None for tensors folded into the config."""
    if name == _ROPE_FREQS:
        return None
    mlx_name, kind = split_name(name, MODEL_TYPE)
    if kind == "attn_q":
        values = _unpermute(values, config["num_attention_heads"])
    elif kind == "attn_k":
        values = _unpermute(values, config["num_key_value_heads"])
    return mlx_name, values


def _unpermute(values: np.ndarray, n_head: int) -> np.ndarray:
    """Undo `LlamaModel.permute` from llama.cpp's converter.

    llama.cpp rotates interleaved pairs (GPT-J style), so its converter reorders the rows of each Q/K head
    from HF's half-split layout; mlx-lm's llama expects the HF layout back.
    """
    rows = values.shape[0]
    return values.reshape(n_head, rows // n_head // 2, 2, *values.shape[1:]).swapaxes(1, 2).reshape(values.shape)
