"""What the decoder-only architectures llama.cpp files alike share: tensor names and the basic config.

llama.cpp names a layer's tensors the same way for llama, qwen2, qwen3 and gemma3 (`blk.N.attn_q`, ...),
and mlx-lm's models use Hugging Face's names; each architecture module adds only what differs.
"""

from typing import Any

from .errors import GGUFImportError
from .reader import GGUFFile

GLOBAL_TENSORS = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}

LAYER_TENSORS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}


def base_config(gguf: GGUFFile, model_type: str, hf_architecture: str) -> dict[str, Any]:
    """The config keys every one of these architectures needs, from the `<arch>.*` metadata."""
    if gguf.arch_key("expert_count", 0):
        raise GGUFImportError(f"{gguf.architecture} GGUFs with experts (MoE) are not supported")
    hidden_size = gguf.arch_key("embedding_length")
    n_head = gguf.arch_key("attention.head_count")
    head_dim = gguf.arch_key("attention.key_length", hidden_size // n_head)
    if gguf.arch_key("rope.dimension_count", head_dim) != head_dim:
        raise GGUFImportError(
            f"{gguf.architecture} GGUFs with partial rotary embeddings (rope.dimension_count != head_dim) are not supported"
        )
    return {
        "architectures": [hf_architecture],
        "model_type": model_type,
        "hidden_size": hidden_size,
        "num_hidden_layers": gguf.arch_key("block_count"),
        "intermediate_size": gguf.arch_key("feed_forward_length"),
        "num_attention_heads": n_head,
        "num_key_value_heads": gguf.arch_key("attention.head_count_kv", n_head),
        "head_dim": head_dim,
        "rms_norm_eps": gguf.arch_key("attention.layer_norm_rms_epsilon"),
        "rope_theta": gguf.arch_key("rope.freq_base", 10000.0),
        "max_position_embeddings": gguf.arch_key("context_length"),
        "vocab_size": gguf.shape("token_embd.weight")[0],
        "tie_word_embeddings": "output.weight" not in gguf.tensor_names,
    }


def rope_scaling(gguf: GGUFFile) -> dict[str, Any] | None:
    """mlx-lm's `rope_scaling` for the `<arch>.rope.scaling.*` metadata, None when unscaled."""
    kind = gguf.arch_key("rope.scaling.type", "none")
    if kind == "none":
        return None
    factor = gguf.arch_key("rope.scaling.factor")
    if kind == "linear":
        return {"type": "linear", "factor": factor}
    if kind == "yarn":
        original = gguf.arch_key("rope.scaling.original_context_length")
        return {"type": "yarn", "factor": factor, "original_max_position_embeddings": original}
    raise GGUFImportError(f"{gguf.architecture} GGUF uses RoPE scaling {kind!r}; supported: none, linear, yarn")


def split_name(name: str, architecture: str, layer_tensors: dict[str, str] = LAYER_TENSORS) -> tuple[str, str]:
    """(mlx-lm name, GGUF kind such as `attn_q`) for one tensor; unknown tensors are an error, not dropped."""
    stem, _, suffix = name.rpartition(".")
    if stem in GLOBAL_TENSORS:
        return f"{GLOBAL_TENSORS[stem]}.{suffix}", stem
    parts = stem.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in layer_tensors:
        return f"model.layers.{parts[1]}.{layer_tensors[parts[2]]}.{suffix}", parts[2]
    raise GGUFImportError(f"Unsupported tensor {name!r} in a {architecture} GGUF")
