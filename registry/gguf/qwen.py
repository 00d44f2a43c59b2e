"""The `qwen2` and `qwen3` architectures: GGUF -> mlx-lm's `qwen2` / `qwen3` models.

Both are llama-shaped. Qwen2 has biases on Q/K/V; Qwen3 drops them and normalizes each head of Q and K
(`attn_q_norm`/`attn_k_norm`). llama.cpp's converter does not permute Q/K rows for either (only its
`LlamaModel` does), so the weights are taken as they are.
"""

from typing import Any

import numpy as np

from .dense import base_config, rope_scaling, split_name
from .errors import GGUFImportError
from .reader import GGUFFile

_HF_ARCHITECTURES = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}


def build_config(gguf: GGUFFile) -> dict[str, Any]:
    """mlx-lm's `config.json` for this file."""
    config = base_config(gguf, gguf.architecture, _HF_ARCHITECTURES[gguf.architecture])
    if gguf.architecture == "qwen2" and config["head_dim"] * config["num_attention_heads"] != config["hidden_size"]:
        raise GGUFImportError("qwen2 GGUFs whose heads do not split hidden_size evenly are not supported by mlx-lm")
    scaling = rope_scaling(gguf)
    if scaling is not None:
        config["rope_scaling"] = scaling
    return config


def convert_tensor(name: str, values: np.ndarray, config: dict[str, Any]) -> tuple[str, np.ndarray]:
    """The mlx-lm name and values for one GGUF tensor."""
    return split_name(name, config["model_type"])[0], values
