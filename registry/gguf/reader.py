"""A thin layer over `gguf.GGUFReader` that speaks in plain Python values and numpy-ordered shapes.

The reader reports problems as assorted ValueErrors, and a truncated file only shows up as a failed
reshape; this turns all of that into `GGUFImportError` with the file named, so users get one clear
message instead of a numpy traceback.
"""

from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, ReaderTensor
from gguf.quants import dequantize

from .errors import GGUFImportError

_MISSING = object()

# The GGML types we import (the `gguf` package dequantizes them; the parity tests cover each of them).
SUPPORTED_TYPES = frozenset(
    GGMLQuantizationType[name]
    for name in ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
)


class _Reader(GGUFReader):
    """GGUFReader slicing a plain ndarray view of its memory map instead of the `np.memmap` itself.

    Parsing slices the map about a million times for a 49k-token vocabulary, and every memmap slice pays
    for `memmap.__array_finalize__`; the plain view reads the same mapped bytes about 3x faster.
    """

    @property
    def data(self) -> np.ndarray:
        return self._plain_data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self._plain_data = value.view(np.ndarray)


class GGUFFile:
    """An opened GGUF: its metadata, and its tensors dequantized to float32 on demand."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._reader = _Reader(self.path)
        except (ValueError, IndexError, OSError) as error:
            message = f"{self.path.name} is not a readable GGUF file (truncated or corrupt?): {error}"
            raise GGUFImportError(message) from error
        self._tensors: dict[str, ReaderTensor] = {tensor.name: tensor for tensor in self._reader.tensors}
        self.architecture: str = self.require("general.architecture")

    def get(self, key: str, default: Any = None) -> Any:
        field = self._reader.fields.get(key)
        if field is None:
            return default
        try:
            return field.contents()
        except (UnicodeDecodeError, ValueError, IndexError) as error:
            raise GGUFImportError(f"{self.path.name}: metadata {key!r} is corrupt: {error}") from error

    def require(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise GGUFImportError(f"{self.path.name} lacks required metadata {key!r}")
        return value

    def arch_key(self, key: str, default: Any = _MISSING) -> Any:
        """An architecture-scoped key like `llama.block_count`; required unless a default is given."""
        name = f"{self.architecture}.{key}"
        return self.require(name) if default is _MISSING else self.get(name, default)

    @property
    def tensor_names(self) -> list[str]:
        return list(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        """numpy order: GGUF lists dimensions fastest-varying first, i.e. reversed."""
        if name not in self._tensors:
            raise GGUFImportError(f"{self.path.name} lacks tensor {name!r}")
        return tuple(int(d) for d in reversed(self._tensors[name].shape))

    def tensor_type(self, name: str) -> str:
        return self._tensors[name].tensor_type.name

    def check_tensor_types(self) -> None:
        """Fail before any work is done when a tensor uses a GGML type we do not import."""
        for name, tensor in self._tensors.items():
            if tensor.tensor_type not in SUPPORTED_TYPES:
                supported = ", ".join(t.name for t in sorted(SUPPORTED_TYPES))
                raise GGUFImportError(
                    f"Tensor {name!r} in {self.path.name} uses GGML type {tensor.tensor_type.name}, "
                    f"which is not supported (supported: {supported})"
                )

    def load(self, name: str) -> np.ndarray:
        tensor = self._tensors[name]
        try:
            values = dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError as error:
            message = f"Tensor {name!r} uses GGML type {tensor.tensor_type.name}, which cannot be dequantized: {error}"
            raise GGUFImportError(message) from error
        shape = self.shape(name)
        if values.size != int(np.prod(shape)):
            raise GGUFImportError(f"Tensor {name!r} holds {values.size} values, expected shape {shape} (corrupt file?)")
        return values.reshape(shape).astype(np.float32, copy=False)
