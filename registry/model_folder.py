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
