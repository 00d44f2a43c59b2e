"""Backends by models.yaml `backend` name; each turns a model folder into a LoadedModel."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.specs import ModelSpec

from ..types import ModelLoadError
from .base import Batching, Detokenizer, LoadedModel, Prompt, Sampling

if TYPE_CHECKING:
    from .embedding import EmbeddingModel

__all__ = ["Batching", "Detokenizer", "LoadedModel", "Prompt", "Sampling", "load_model"]


def load_model(spec: ModelSpec, path: Path, *, prefill_step: int = 2048, full_kv_tokens: int = 0,
               embed_batch_tokens: int = 8192, group: Any = None) -> LoadedModel | EmbeddingModel:
    """full_kv_tokens: up to how many tokens a request's sliding-window layers keep every
    token, so the prefix cache can reuse them (backends/kv.py); 0: never.
    embed_batch_tokens: most padded tokens an embedding model encodes at once.
    group: the mx.distributed group a `distributed:` text model is split over (None: alone)."""
    if spec.backend == "embedding":
        from .embedding import EmbeddingModel

        return EmbeddingModel(spec, path, batch_tokens=embed_batch_tokens)
    if spec.backend == "text":
        from .text import TextModel

        return TextModel(spec, path, prefill_step=prefill_step, full_kv_tokens=full_kv_tokens, group=group)
    if spec.backend == "vision":
        from .vision import VisionModel

        return VisionModel(spec, path, prefill_step=prefill_step, full_kv_tokens=full_kv_tokens)
    raise ModelLoadError(f"backend {spec.backend!r} of model {spec.id} is not available yet")
