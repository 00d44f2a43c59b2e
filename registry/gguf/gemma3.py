"""The `gemma3` architecture (text only): GGUF -> mlx-lm's `gemma3_text` model.

What differs from llama, and where llama.cpp keeps it:
- Norm weights: Gemma computes `x * (1 + w)`. llama.cpp's converter stores `w + 1` (`norm_shift`) so that
  its plain RMSNorm works; mlx-lm's `gemma3_text` adds the 1 itself, so we take it back off.
- Sliding window: the window size is metadata; llama.cpp hard-codes the rest for gemma3 (every 6th layer
  global, local layers on RoPE base 10000 without scaling), as mlx-lm's defaults do. A file without a
  window is global everywhere.
- Query scaling: llama.cpp scales by 1/sqrt(head_dim), except for the 62-layer 27B model, which uses
  1/sqrt(hidden_size / n_head) (gemma_pytorch's `query_pre_attn_scalar`).
- Q/K rows are not permuted by the converter for gemma3.
"""

from typing import Any

import numpy as np

from .dense import LAYER_TENSORS, base_config, rope_scaling, split_name
from .errors import GGUFImportError
from .reader import GGUFFile

MODEL_TYPE = "gemma3_text"
# From llama.cpp's llama-model.cpp (LLM_ARCH_GEMMA3), which does not read these from the file.
SLIDING_WINDOW_PATTERN = 6
LOCAL_ROPE_BASE = 10000.0
_27B_LAYERS = 62

_LAYER_TENSORS = {
    **LAYER_TENSORS,
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
# Soft-capping keys llama.cpp knows for the Gemma family; gemma3 models leave them unset and mlx-lm's
# gemma3_text has no soft-capping, so a file that sets them cannot be imported faithfully.
_SOFTCAP_KEYS = ("attn_logit_softcapping", "final_logit_softcapping")


def build_config(gguf: GGUFFile) -> dict[str, Any]:
    """mlx-lm's `config.json` for this file."""
    for key in _SOFTCAP_KEYS:
        if gguf.arch_key(key, None):
            raise GGUFImportError(f"gemma3 GGUF sets {key}; soft-capping is not supported by mlx-lm's gemma3_text")
    config = base_config(gguf, MODEL_TYPE, "Gemma3ForCausalLM")
    window = gguf.arch_key("attention.sliding_window", 0)
    layers, heads = config["num_hidden_layers"], config["num_attention_heads"]
    config.update(
        sliding_window=window or config["max_position_embeddings"],
        sliding_window_pattern=SLIDING_WINDOW_PATTERN if window else 1,
        rope_local_base_freq=LOCAL_ROPE_BASE,
        query_pre_attn_scalar=config["hidden_size"] // heads if layers == _27B_LAYERS else config["head_dim"],
        hidden_activation="gelu_pytorch_tanh",
    )
    scaling = rope_scaling(gguf)
    if scaling is not None:
        config["rope_scaling"] = scaling
    return config


def convert_tensor(name: str, values: np.ndarray, config: dict[str, Any]) -> tuple[str, np.ndarray]:
    """The mlx-lm name and values for one GGUF tensor, norms shifted back to Gemma's `1 + w` form."""
    mlx_name, kind = split_name(name, "gemma3", _LAYER_TENSORS)
    if kind.endswith("norm"):
        values = values - 1.0
    return mlx_name, values
