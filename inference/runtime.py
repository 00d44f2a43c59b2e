"""The process's engine, composed from Django settings on first use (never at import time),
and its metrics: the one place that knows both the engine and the rest of the app, so the
engine package stays plain Python and metrics.py never reaches for the engine itself."""
from __future__ import annotations

import atexit
import threading
from functools import partial

from django.conf import settings
from prometheus_client import REGISTRY

from registry.active import materialize_spec
from registry.gguf.importer import IMPORTER_VERSION
from registry.model_folder import load_estimate

from . import distributed, metrics
from .engine import Engine
from .engine.backends import load_model
from .engine.disk_cache import DiskPromptCache, weights_fingerprint
from .engine.engine import device_memory
from .engine.prompt_cache import PromptCache

_engine: Engine | None = None
_lock = threading.Lock()


def get_engine() -> Engine:
    global _engine
    with _lock:
        if _engine is None:
            device = device_memory()
            lockstep = distributed.current()
            budget = settings.MLX_SERVER_MEMORY_BUDGET
            disk_bytes = settings.MLX_SERVER_PROMPT_CACHE_DISK_BYTES if settings.MLX_SERVER_PROMPT_CACHE else 0
            _engine = Engine(
                materialize=materialize_spec,
                loader=partial(load_model, prefill_step=settings.MLX_SERVER_PREFILL_STEP,
                               full_kv_tokens=settings.MLX_SERVER_PROMPT_CACHE_FULL_KV_TOKENS
                               if settings.MLX_SERVER_PROMPT_CACHE else 0,
                               embed_batch_tokens=settings.MLX_SERVER_EMBED_BATCH_TOKENS,
                               group=lockstep.group if lockstep is not None else None),
                default_max_tokens=settings.MLX_SERVER_DEFAULT_MAX_TOKENS,
                prompt_cache=_prompt_cache if settings.MLX_SERVER_PROMPT_CACHE else None,
                max_queue=settings.MLX_SERVER_MAX_QUEUE,
                default_ttl=settings.MLX_SERVER_MODEL_TTL,
                batch_size=settings.MLX_SERVER_BATCH_SIZE,
                observer=metrics.EngineMetrics(),
                memory_budget=int(budget * device) if isinstance(budget, float) else budget,
                device_bytes=device, estimate=load_estimate,
                disk_cache=DiskPromptCache(settings.MLX_SERVER_PROMPT_CACHE_DIR, disk_bytes) if disk_bytes else None,
                fingerprint=partial(weights_fingerprint, version=f"gguf-importer-{IMPORTER_VERSION}"),
                lockstep=lockstep,
            )
            atexit.register(_engine.shutdown)  # save the prompt caches of the resident models
        return _engine


def _prompt_cache() -> PromptCache:
    return PromptCache(max_entries=settings.MLX_SERVER_PROMPT_CACHE_ENTRIES,
                       max_bytes=settings.MLX_SERVER_PROMPT_CACHE_BYTES)


def connect() -> None:
    """Called once from the app's ready(): request metrics, and the engine's state read at
    scrape time (the collector is handed the getter, so a scrape before any request still
    reports an idle engine, as it always has)."""
    metrics.connect()
    REGISTRY.register(metrics.EngineStateCollector(get_engine))
