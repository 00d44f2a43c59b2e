"""`dtype: auto`, the default of a GGUF source: imported in settings.MLX_SERVER_GGUF_DTYPE (float32 on
Linux CPU with the fast BLAS), while an explicit dtype is kept."""
from pathlib import Path

import pytest

import registry.gguf
from registry.active import materialize_spec
from registry.loader import parse_registry


def spec_of(source: dict):
    return parse_registry({"models": [{"id": "g", "source": source}]}, Path("models.yaml")).specs[0]


@pytest.fixture
def imports(monkeypatch, settings, tmp_path):
    """Every import_gguf call materialize makes, recorded instead of run."""
    calls = []
    settings.MLX_SERVER_MODELS_DIR = tmp_path / "models"
    settings.DATA_DIR = tmp_path
    monkeypatch.setattr(registry.gguf, "import_gguf", lambda src, out, **kw: calls.append(kw) or Path(out))
    return calls


def test_a_gguf_source_defaults_to_auto():
    assert spec_of({"gguf": "/x/model.gguf"}).source.dtype == "auto"


@pytest.mark.parametrize("platform_dtype", ["float32", "bfloat16"])
def test_auto_imports_in_the_platform_dtype(imports, settings, tmp_path, platform_dtype):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    settings.MLX_SERVER_GGUF_DTYPE = platform_dtype
    materialize_spec(spec_of({"gguf": str(gguf)}))
    assert imports[-1]["dtype"] == platform_dtype


def test_an_explicit_dtype_wins(imports, settings, tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    settings.MLX_SERVER_GGUF_DTYPE = "float32"
    materialize_spec(spec_of({"gguf": str(gguf), "dtype": "bfloat16"}))
    assert imports[-1]["dtype"] == "bfloat16"
