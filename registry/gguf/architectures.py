"""Which GGUF architectures we can import. Supporting another one is one more module and one more entry.

Each module provides:
- `build_config(gguf: GGUFFile) -> dict`: mlx-lm's config.json for the file;
- `convert_tensor(name, values, config) -> (mlx_name, values) | None`: rename (and fix up) one tensor,
  None for tensors that only feed the config.
"""

from types import ModuleType

from . import gemma3, llama, qwen
from .errors import GGUFImportError

ARCHITECTURES: dict[str, ModuleType] = {"llama": llama, "qwen2": qwen, "qwen3": qwen, "gemma3": gemma3}


def architecture_for(name: str) -> ModuleType:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        supported = ", ".join(sorted(ARCHITECTURES))
        raise GGUFImportError(f"GGUF architecture {name!r} is not supported (supported: {supported})") from None
