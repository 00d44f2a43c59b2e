"""Backends by models.yaml `backend` name; each turns a model folder into a LoadedModel."""
from __future__ import annotations

from pathlib import Path

from registry.specs import ModelSpec

from ..types import ModelLoadError
from .base import Batching, Detokenizer, LoadedModel, Prompt, Sampling

__all__ = ["Batching", "Detokenizer", "LoadedModel", "Prompt", "Sampling", "load_model"]


def load_model(spec: ModelSpec, path: Path, *, prefill_step: int = 2048, full_kv_tokens: int = 0) -> LoadedModel:
    """full_kv_tokens: up to how many tokens a request's sliding-window layers keep every
    token, so the prefix cache can reuse them (backends/kv.py); 0: never."""
    if spec.backend == "text":
        from .text import TextModel

        return TextModel(spec, path, prefill_step=prefill_step, full_kv_tokens=full_kv_tokens)
    if spec.backend == "vision":
        from .vision import VisionModel

        return VisionModel(spec, path, prefill_step=prefill_step, full_kv_tokens=full_kv_tokens)
    raise ModelLoadError(f"backend {spec.backend!r} of model {spec.id} is not available yet")
