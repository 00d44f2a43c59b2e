"""The `llama` architecture: GGUF metadata and tensors -> mlx-lm's `llama` model.

Covers Llama 1-3, SmolLM, Mistral-style dense models and anything else llama.cpp files as `llama`.
"""

from typing import Any

import numpy as np

from .errors import GGUFImportError
from .reader import GGUFFile

MODEL_TYPE = "llama"

_GLOBAL_TENSORS = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}

_LAYER_TENSORS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}

# Not a weight: llama.cpp stores Llama 3's RoPE frequency factors as a tensor; they go into the config.
_ROPE_FREQS = "rope_freqs.weight"


def build_config(gguf: GGUFFile) -> dict[str, Any]:
    """mlx-lm's `config.json` for this file."""
    if gguf.arch_key("expert_count", 0):
        raise GGUFImportError("llama GGUFs with experts (Mixtral-style MoE) are not supported yet")
    hidden_size = gguf.arch_key("embedding_length")
    n_head = gguf.arch_key("attention.head_count")
    head_dim = gguf.arch_key("attention.key_length", hidden_size // n_head)
    if gguf.arch_key("rope.dimension_count", head_dim) != head_dim:
        raise GGUFImportError(
            "llama GGUFs with partial rotary embeddings (rope.dimension_count != head_dim) are not supported"
        )
    names = set(gguf.tensor_names)
    context_length = gguf.arch_key("context_length")
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": MODEL_TYPE,
        "hidden_size": hidden_size,
        "num_hidden_layers": gguf.arch_key("block_count"),
        "intermediate_size": gguf.arch_key("feed_forward_length"),
        "num_attention_heads": n_head,
        "num_key_value_heads": gguf.arch_key("attention.head_count_kv", n_head),
        "head_dim": head_dim,
        "rms_norm_eps": gguf.arch_key("attention.layer_norm_rms_epsilon"),
        "rope_theta": gguf.arch_key("rope.freq_base", 10000.0),
        "max_position_embeddings": context_length,
        "vocab_size": gguf.shape("token_embd.weight")[0],
        "attention_bias": "blk.0.attn_q.bias" in names,
        "mlp_bias": "blk.0.ffn_up.bias" in names,
        "tie_word_embeddings": "output.weight" not in names,
    }
    rope_scaling = _rope_scaling(gguf, context_length)
    if rope_scaling is not None:
        config["rope_scaling"] = rope_scaling
    return config


def _rope_scaling(gguf: GGUFFile, context_length: int) -> dict[str, Any] | None:
    if _ROPE_FREQS in gguf.tensor_names:
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
    kind = gguf.arch_key("rope.scaling.type", "none")
    if kind == "none":
        return None
    factor = gguf.arch_key("rope.scaling.factor")
    if kind == "linear":
        return {"type": "linear", "factor": factor}
    if kind == "yarn":
        original = gguf.arch_key("rope.scaling.original_context_length")
        return {"type": "yarn", "factor": factor, "original_max_position_embeddings": original}
    raise GGUFImportError(f"llama GGUF uses RoPE scaling {kind!r}; supported: none, linear, yarn, rope_freqs")


def convert_tensor(name: str, values: np.ndarray, config: dict[str, Any]) -> tuple[str, np.ndarray] | None:
    """The mlx-lm name and values for one GGUF tensor, or None for tensors folded into the config."""
    if name == _ROPE_FREQS:
        return None
    stem, _, suffix = name.rpartition(".")
    if stem in _GLOBAL_TENSORS:
        return f"{_GLOBAL_TENSORS[stem]}.{suffix}", values
    parts = stem.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _LAYER_TENSORS:
        kind = parts[2]
        if kind == "attn_q":
            values = _unpermute(values, config["num_attention_heads"])
        elif kind == "attn_k":
            values = _unpermute(values, config["num_key_value_heads"])
        return f"model.layers.{parts[1]}.{_LAYER_TENSORS[kind]}.{suffix}", values
    raise GGUFImportError(f"Unsupported tensor {name!r} in a llama GGUF")


def _unpermute(values: np.ndarray, n_head: int) -> np.ndarray:
    """Undo `LlamaModel.permute` from llama.cpp's converter.

    llama.cpp rotates interleaved pairs (GPT-J style), so its converter reorders the rows of each Q/K head
    from HF's half-split layout; mlx-lm's llama expects the HF layout back.
    """
    rows = values.shape[0]
    return values.reshape(n_head, rows // n_head // 2, 2, *values.shape[1:]).swapaxes(1, 2).reshape(values.shape)
