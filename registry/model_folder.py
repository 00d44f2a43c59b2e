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


def context_length(spec: ModelSpec, path: Path | None) -> int:
    """models.yaml wins; else what the model's config says it was trained for."""
    if spec.context_length:
        return spec.context_length
    try:
        config = json.loads((Path(path) / "config.json").read_text()) if path else {}
    except (OSError, ValueError):
        config = {}
    text_config = config.get("text_config", config)
    return int(text_config.get("max_position_embeddings") or DEFAULT_CONTEXT)
