"""The prompt cache on disk: a model's KV prefix entries saved when it is unloaded (swap, TTL,
budget, shutdown) in mlx-lm's prompt-cache files, and read back lazily, one entry when a
request would reuse more of it than memory holds, so the first turn after a swap-back or a
restart does not prefill its history again.

A model's entries live in a folder named by its id and a fingerprint of its weights and
importer version, so changed weights never meet a stale cache. Files are written aside and
renamed into place (a crash leaves no half file under a real name); a file that does not
read back (truncated, corrupt, another format) is deleted with a log line and counts as a
miss. The whole root is bounded in bytes, least recently used file first (reads touch it).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
from pathlib import Path
from typing import Any, Hashable, Iterable

from mlx_lm.models.cache import can_trim_prompt_cache, load_prompt_cache, save_prompt_cache, trim_prompt_cache

log = logging.getLogger(__name__)

SUFFIX = ".safetensors"
_SAMPLE = 64 * 1024  # bytes hashed at each end of a weight file


def weights_fingerprint(path: Path, version: str = "") -> str:
    """A short hash of a model folder's weights: each file's name, size, mtime and its first
    and last 64 KB (the safetensors header names every tensor's shape, dtype and offset),
    plus `version` (the importer's). Reads ~128 KB a file, not the gigabytes."""
    digest = hashlib.sha256(version.encode())
    for file in sorted(p for p in Path(path).iterdir() if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        if file.suffix in (SUFFIX, ".json", ".gguf"):
            with file.open("rb") as f:
                digest.update(f.read(_SAMPLE))
                if stat.st_size > 2 * _SAMPLE:
                    f.seek(-_SAMPLE, os.SEEK_END)
                    digest.update(f.read(_SAMPLE))
    return digest.hexdigest()[:16]


def _metadata(file: Path) -> dict[str, str]:
    """The safetensors header's __metadata__, read without loading the tensors."""
    with file.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        if size > 64 * 1024 * 1024:
            raise ValueError("header too large")
        return json.loads(f.read(size)).get("__metadata__", {})


class DiskPromptCache:
    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes

    def shelf(self, model_id: str, fingerprint: str) -> "Shelf":
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", model_id)
        return Shelf(self, self.root / f"{safe}-{fingerprint}")

    def files(self) -> list[Path]:
        return list(self.root.glob(f"*/*{SUFFIX}")) if self.root.is_dir() else []

    def nbytes(self) -> int:
        return sum(_size(f) for f in self.files())

    def trim(self) -> None:
        """Delete least recently used files until the root is within max_bytes."""
        files = sorted(self.files(), key=_mtime)
        total = sum(_size(f) for f in files)
        for file in files:
            if total <= self.max_bytes:
                break
            total -= _size(file)
            file.unlink(missing_ok=True)
            log.info("prompt cache on disk: dropped %s (over %d bytes)", file.name, self.max_bytes)


class Shelf:
    """One model's entries (one weights fingerprint): what is there, read one, write some."""

    def __init__(self, disk: DiskPromptCache, folder: Path):
        self.disk = disk
        self.folder = folder
        self._index: dict[Path, tuple[str, list[int]]] | None = None  # read on first use

    def _entries(self) -> dict[Path, tuple[str, list[int]]]:
        if self._index is None:
            self._index = {}
            for file in self.folder.glob(f"*{SUFFIX}") if self.folder.is_dir() else ():
                try:
                    meta = _metadata(file)
                    # save_prompt_cache flattens [our metadata, classes, scalars]: ours is "0.*"
                    self._index[file] = (meta["0.key"], json.loads(meta["0.tokens"]))
                except (OSError, ValueError, KeyError, struct.error) as exc:
                    self._drop(file, exc)
        return self._index

    def fetch(self, key: Hashable, tokens: list[int], better_than: int) -> tuple[list[int], list[Any]] | None:
        """The saved entry of `key` sharing the longest prefix with `tokens`, when that is more
        than `better_than` tokens: the shared tokens and the KV cache of them (a longer entry,
        such as the last turn's prompt plus its answer, trimmed back to what is shared). None:
        nothing better, or the file did not read back."""
        wanted = _key(key)
        best, best_len = None, better_than
        for file, (entry_key, entry_tokens) in self._entries().items():
            if entry_key == wanted and (shared := _shared(entry_tokens, tokens)) > best_len:
                best, best_len = file, shared
        if best is None:
            return None
        saved = self._entries()[best][1]
        try:
            cache = load_prompt_cache(str(best))
            if getattr(cache[0], "offset", None) != len(saved):
                raise ValueError(f"holds {getattr(cache[0], 'offset', None)} tokens, not {len(saved)}")
        except Exception as exc:  # a truncated or corrupt file: a miss, never a crash
            self._drop(best, exc)
            return None
        os.utime(best)  # recently used
        if best_len < len(saved):
            if not can_trim_prompt_cache(cache):
                return None
            trim_prompt_cache(cache, len(saved) - best_len)
        return saved[:best_len], cache

    def save(self, entries: Iterable[tuple[Hashable, list[int], list[Any]]]) -> int:
        """Write entries not already on disk (the name is a hash of key and tokens), then keep
        the root within its bound; the number written."""
        written = 0
        for key, tokens, cache in entries:
            name = hashlib.sha256(f"{_key(key)}\0{tokens}".encode()).hexdigest()[:32] + SUFFIX
            file = self.folder / name
            if file.exists():
                os.utime(file)
                continue
            self.folder.mkdir(parents=True, exist_ok=True)
            aside = self.folder / f".writing-{os.getpid()}-{name}"
            try:
                save_prompt_cache(str(aside), cache, {"key": _key(key), "tokens": json.dumps(tokens)})
                os.replace(aside, file)
            except Exception as exc:  # a full disk, an unsaveable cache: the entry is just not kept
                aside.unlink(missing_ok=True)
                log.warning("prompt cache on disk: could not save an entry of %s: %s", self.folder.name, exc)
                continue
            self._entries()[file] = (_key(key), list(tokens))
            written += 1
        self.disk.trim()
        if self._index is not None:
            self._index = {f: e for f, e in self._index.items() if f.exists()}
        return written

    def _drop(self, file: Path, exc: Exception) -> None:
        log.warning("prompt cache on disk: dropped unreadable %s (%s)", file, exc)
        file.unlink(missing_ok=True)
        if self._index is not None:
            self._index.pop(file, None)


def _shared(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _key(key: Hashable) -> str:
    return json.dumps(list(key) if isinstance(key, tuple) else key, default=str)


def _size(file: Path) -> int:
    try:
        return file.stat().st_size
    except OSError:
        return 0


def _mtime(file: Path) -> float:
    try:
        return file.stat().st_mtime
    except OSError:
        return 0.0
