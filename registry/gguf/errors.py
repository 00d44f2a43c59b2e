"""The one error the GGUF importer raises, so callers (the CLI, the server) can report it cleanly."""


class GGUFImportError(Exception):
    """A GGUF cannot be imported: missing, corrupt, or using something we do not support."""
