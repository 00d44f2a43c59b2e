"""The process-wide engine, built from settings on first use (never at import time)."""
from __future__ import annotations

import threading
from functools import partial

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

            from ..metrics import EngineMetrics
            from .backends import load_model
            from .prompt_cache import PromptCache

            def cache() -> PromptCache:
                return PromptCache(max_entries=settings.MLX_SERVER_PROMPT_CACHE_ENTRIES,
                                   max_bytes=settings.MLX_SERVER_PROMPT_CACHE_BYTES)

            _engine = Engine(
                materialize=materialize_spec,
                loader=partial(load_model, prefill_step=settings.MLX_SERVER_PREFILL_STEP,
                               full_kv_tokens=settings.MLX_SERVER_PROMPT_CACHE_FULL_KV_TOKENS
                               if settings.MLX_SERVER_PROMPT_CACHE else 0),
                default_max_tokens=settings.MLX_SERVER_DEFAULT_MAX_TOKENS,
                prompt_cache=cache if settings.MLX_SERVER_PROMPT_CACHE else None,
                max_queue=settings.MLX_SERVER_MAX_QUEUE,
                default_ttl=settings.MLX_SERVER_MODEL_TTL,
                batch_size=settings.MLX_SERVER_BATCH_SIZE,
                observer=EngineMetrics(),
            )
        return _engine
