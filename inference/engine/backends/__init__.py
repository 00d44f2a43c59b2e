"""Backends by models.yaml `backend` name; each turns a model folder into a LoadedModel."""
from __future__ import annotations

from pathlib import Path

from registry.specs import ModelSpec

from ..types import ModelLoadError
from .base import LoadedModel, Prompt, Step

__all__ = ["LoadedModel", "Prompt", "Step", "load_model"]


def load_model(spec: ModelSpec, path: Path, *, prefill_step: int = 2048) -> LoadedModel:
    if spec.backend == "text":
        from .text import TextModel

        return TextModel(spec, path, prefill_step=prefill_step)
    if spec.backend == "vision":
        from .vision import VisionModel

        return VisionModel(spec, path, prefill_step=prefill_step)
    raise ModelLoadError(f"backend {spec.backend!r} of model {spec.id} is not available yet")
