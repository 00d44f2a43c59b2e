"""Import GGUF files (llama.cpp's format) as MLX model folders that mlx-lm loads directly.

Kept free of Django so it can be used from scripts and tests as well as from the server.
"""

from .errors import GGUFImportError
from .importer import import_gguf

__all__ = ["GGUFImportError", "import_gguf"]
