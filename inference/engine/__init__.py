"""The process-wide engine, built from settings on first use (never at import time)."""
from __future__ import annotations

import threading

from .engine import Engine
from .types import ChatRequest, SamplingParams

__all__ = ["ChatRequest", "Engine", "SamplingParams", "get_engine"]

_engine: Engine | None = None
_lock = threading.Lock()


def get_engine() -> Engine:
    global _engine
    with _lock:
        if _engine is None:
            from django.conf import settings

            from registry.active import materialize_spec

            from .backends import load_model

            _engine = Engine(
                materialize=materialize_spec,
                loader=load_model,
                default_max_tokens=settings.MLX_SERVER_DEFAULT_MAX_TOKENS,
            )
        return _engine
