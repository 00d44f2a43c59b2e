"""The registry this process serves, read from settings.MLX_SERVER_MODELS.

Re-read when the file changes, so editing models.yaml needs no restart.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings

from .loader import Registry, load_registry
from .locate import Location, locate, materialize
from .specs import ModelSpec

_cache: dict[tuple[str, float], Registry] = {}


def get_registry() -> Registry:
    path = Path(settings.MLX_SERVER_MODELS)
    key = (str(path), path.stat().st_mtime if path.exists() else 0.0)
    if key not in _cache:
        registry = load_registry(path)
        _cache.clear()
        _cache[key] = registry
    return _cache[key]


def models_dirs() -> dict:
    return {
        "models_dir": Path(settings.MLX_SERVER_MODELS_DIR),
        "downloads_dir": Path(settings.MLX_SERVER_DOWNLOADS_DIR),
        "allow_downloads": settings.MLX_SERVER_ALLOW_DOWNLOADS,
    }


def locate_spec(spec: ModelSpec) -> Location:
    return locate(spec, **models_dirs())


def materialize_spec(spec: ModelSpec, *, allow_downloads: bool | None = None) -> Path:
    dirs = models_dirs()
    if allow_downloads is not None:
        dirs["allow_downloads"] = allow_downloads
    return materialize(spec, **dirs, gguf_dtype=settings.MLX_SERVER_GGUF_DTYPE)
