"""What a model folder says about itself (its config.json), apart from where it is found:
the backend that loads it and the /v1/models listing read the same facts."""
from __future__ import annotations

import json
from pathlib import Path

from .specs import ModelSpec

DEFAULT_CONTEXT = 4096


def is_model_dir(path: Path) -> bool:
    """A folder mlx-lm / mlx-vlm can load has a config.json."""
    return (path / "config.json").is_file()


def _read(path: Path | None, name: str) -> dict:
    try:
        return json.loads((Path(path) / name).read_text()) if path else {}
    except (OSError, ValueError):
        return {}


def context_length(spec: ModelSpec, path: Path | None) -> int:
    """models.yaml wins; else what the model says it was trained for: a sentence-transformers
    folder's max_seq_length (shorter than the encoder's positions: what its vectors were made
    from), else the config's positions."""
    if spec.context_length:
        return spec.context_length
    if seq := _read(path, "sentence_bert_config.json").get("max_seq_length"):
        return int(seq)
    config = _read(path, "config.json")
    text_config = config.get("text_config", config)
    return int(text_config.get("max_position_embeddings") or DEFAULT_CONTEXT)


def load_estimate(spec: ModelSpec, path: Path) -> int:
    """Bytes a load will take before it happens: the weight files on disk plus a KV cache for
    the whole context (keys and values of every layer at the config's dtype), so the load
    guard refuses a model that could not serve a full-length request."""
    path = Path(path)
    weights = sum(f.stat().st_size for f in path.glob("*.safetensors"))
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return weights
    text = config.get("text_config", config)
    layers = int(text.get("num_hidden_layers") or 0)
    heads = int(text.get("num_attention_heads") or 0)
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or (int(text.get("hidden_size") or 0) // heads if heads else 0))
    width = 4 if str(text.get("torch_dtype", config.get("torch_dtype"))) == "float32" else 2
    return weights + 2 * layers * kv_heads * head_dim * width * context_length(spec, path)
