"""Write converted weights as mlx-lm expects them: `model.safetensors`, or shards plus an index.

Shards are flushed as they fill so that memory stays around one shard even when a multi-GB GGUF
expands to bf16/f32.
"""

import json
from pathlib import Path

import mlx.core as mx

from .errors import GGUFImportError

# About the size Hugging Face uses; small enough to bound memory, large enough to keep file counts low.
SHARD_BYTES = 4 * 2**30


class ShardWriter:
    """Collects named arrays and writes them to FOLDER in shards of at most `SHARD_BYTES` (one tensor may exceed it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._pending: dict[str, mx.array] = {}
        self._pending_bytes = 0
        self._files: list[str] = []
        self._weight_map: dict[str, str] = {}
        self._total_bytes = 0

    def add(self, name: str, array: mx.array) -> None:
        if name in self._pending or name in self._weight_map:
            raise GGUFImportError(f"Two GGUF tensors map to the same weight {name!r}")
        mx.eval(array)  # materialize now so the float32 source can be freed
        if self._pending and self._pending_bytes + array.nbytes > SHARD_BYTES:
            self._flush()
        self._pending[name] = array
        self._pending_bytes += array.nbytes
        self._total_bytes += array.nbytes

    def close(self) -> None:
        """Flush the last shard and give the files their final names."""
        self._flush()
        if len(self._files) == 1:
            (self.folder / self._files[0]).rename(self.folder / "model.safetensors")
            return
        count = len(self._files)
        final = {name: f"model-{index:05d}-of-{count:05d}.safetensors" for index, name in enumerate(self._files, 1)}
        for temporary, name in final.items():
            (self.folder / temporary).rename(self.folder / name)
        index = {
            "metadata": {"total_size": self._total_bytes},
            "weight_map": {weight: final[file] for weight, file in sorted(self._weight_map.items())},
        }
        (self.folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")

    def _flush(self) -> None:
        if not self._pending:
            return
        name = f"part-{len(self._files) + 1:05d}.safetensors"  # renamed by close()
        mx.save_safetensors(str(self.folder / name), self._pending, metadata={"format": "mlx"})
        self._files.append(name)
        self._weight_map.update(dict.fromkeys(self._pending, name))
        self._pending = {}
        self._pending_bytes = 0
